package celery_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/celery"
)

// wireTime is the only date shape Celery 5.2.6 parses reliably: six
// fraction digits and a numeric offset.
var wireTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}[+-]\d{2}:\d{2}$`)

type rawEnvelope struct {
	Body            string                     `json:"body"`
	ContentEncoding string                     `json:"content-encoding"`
	ContentType     string                     `json:"content-type"`
	Headers         map[string]json.RawMessage `json:"headers"`
	Properties      map[string]json.RawMessage `json:"properties"`
}

func splitEnvelope(t *testing.T, raw []byte) (rawEnvelope, json.RawMessage) {
	t.Helper()
	if !json.Valid(raw) {
		t.Fatalf("envelope is not valid JSON: %s", abbrev(raw))
	}
	var env rawEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Headers json.RawMessage `json:"headers"`
	}
	_ = json.Unmarshal(raw, &hdr)
	return env, hdr.Headers
}

func f64(v float64) *float64 { return &v }

func sampleMessage() *celery.TaskMessage {
	tokyo := time.FixedZone("JST", 9*3600)
	eta := time.Date(2026, 11, 27, 9, 39, 30, 138767891, tokyo)
	exp := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	gi := 3
	chord := "chord"
	return &celery.TaskMessage{
		ID:     "11111111-2222-3333-4444-555555555555",
		Task:   "celery_tasks.generate_qa_unified_async",
		Shadow: "shadowed",
		Args:   json.RawMessage(`[{"text":"Ünïcødé ✓ “quotes” \"q\" \\ \n","n":1.5,"big":12345678901234567890},"gemini",[null,true,false],1]`),
		Kwargs: json.RawMessage(`{"k":"v","nested":{"a":[1,2]}}`),
		Embed: celery.Embed{
			Callbacks: []celery.Signature{{Task: "cb", Args: json.RawMessage(`[10]`), Kwargs: json.RawMessage(`{}`), Options: json.RawMessage(`{"queue":"q"}`)}},
			Errbacks:  []celery.Signature{{Task: "eb", Args: json.RawMessage(`[]`), Kwargs: json.RawMessage(`{}`), Options: json.RawMessage(`{}`), Immutable: true}},
			Chain: []celery.Signature{
				{Task: "last", Args: json.RawMessage(`[4]`), Kwargs: json.RawMessage(`{}`), Options: json.RawMessage(`{"task_id":"c2"}`)},
				{Task: "next", Args: json.RawMessage(`[3]`), Kwargs: json.RawMessage(`{}`), Options: json.RawMessage(`{"task_id":"c1"}`)},
			},
			Chord: &celery.Signature{Task: "tsum", Args: json.RawMessage(`[]`), Kwargs: json.RawMessage(`{}`), Options: json.RawMessage(`{"task_id":"cb"}`), SubtaskType: &chord},
		},
		ETA:                 &eta,
		Expires:             &exp,
		Group:               "gggggggg-0000-0000-0000-000000000000",
		GroupIndex:          &gi,
		Retries:             2,
		TimeLimit:           celery.TimeLimit{f64(120), f64(90.5)},
		RootID:              "rrrrrrrr-0000-0000-0000-000000000000",
		ParentID:            "pppppppp-0000-0000-0000-000000000000",
		ArgsRepr:            "({...}, 'gemini')",
		KwargsRepr:          "{'k': 'v'}",
		Origin:              "gen1@host",
		IgnoreResult:        true,
		ReplacedTaskNesting: 1,
		StampedHeaders:      []string{"s1"},
		Stamps:              json.RawMessage(`{"s1":"v1"}`),
		Headers:             json.RawMessage(`{"x-trace":{"id":7,"tags":["a"]},"tenant":"acme"}`),
		Priority:            5,
		DeliveryInfo:        celery.DeliveryInfo{Exchange: "", RoutingKey: "qa_generation"},
		ReplyTo:             "reply-oid",
		DeliveryTag:         "dddddddd-0000-0000-0000-000000000000",
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	compressions := []struct {
		name, mime string
		magic      []byte
	}{
		{"", "", nil},
		{"gzip", celery.CompressionZlib, []byte{0x78}}, // kombu's "gzip" is a zlib stream
		{"zlib", celery.CompressionZlib, []byte{0x78}},
		{celery.CompressionZlib, celery.CompressionZlib, []byte{0x78}},
		{"xz", celery.CompressionXZ, []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}},
		{"lzma", celery.CompressionXZ, []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}},
	}
	for _, proto := range []int{2, 1} {
		for _, c := range compressions {
			name := "v" + string(rune('0'+proto)) + "/" + c.name
			t.Run(name, func(t *testing.T) {
				in := sampleMessage()
				raw, err := celery.EncodeTask(in, celery.EncodeOptions{Protocol: proto, Compression: c.name})
				if err != nil {
					t.Fatalf("EncodeTask: %v", err)
				}
				env, _ := splitEnvelope(t, raw)
				var gotComp string
				if v, ok := env.Headers["compression"]; ok {
					_ = json.Unmarshal(v, &gotComp)
				}
				if gotComp != c.mime {
					t.Errorf("headers.compression = %q, want %q", gotComp, c.mime)
				}
				body, err := base64.StdEncoding.DecodeString(env.Body)
				if err != nil {
					t.Fatalf("body is not padded standard base64: %v", err)
				}
				if c.magic != nil && !bytes.HasPrefix(body, c.magic) {
					t.Errorf("compressed body starts % x, want % x", body[:min(8, len(body))], c.magic)
				}
				if c.magic == nil && !json.Valid(body) {
					t.Errorf("uncompressed body is not JSON: %q", body)
				}

				out, err := celery.DecodeTask(raw, celery.DecodeOptions{})
				if err != nil {
					t.Fatalf("DecodeTask(EncodeTask()): %v", err)
				}
				checkRoundTrip(t, in, out, proto)
				if out.Compression != c.mime {
					t.Errorf("decoded Compression = %q, want %q", out.Compression, c.mime)
				}
			})
		}
	}
}

func checkRoundTrip(t *testing.T, in, out *celery.TaskMessage, proto int) {
	t.Helper()
	if out.Protocol != proto {
		t.Fatalf("Protocol = %d, want %d", out.Protocol, proto)
	}
	if out.ID != in.ID || out.Task != in.Task || out.CorrelationID != in.ID {
		t.Errorf("id/task/correlation = %q/%q/%q", out.ID, out.Task, out.CorrelationID)
	}
	assertJSONEqual(t, "args", out.Args, in.Args)
	assertJSONEqual(t, "kwargs", out.Kwargs, in.Kwargs)
	wantEmbed := in.Embed
	if proto == 1 {
		wantEmbed.Chain = nil // v1 cannot carry a chain
	}
	a, _ := json.Marshal(out.Embed)
	b, _ := json.Marshal(wantEmbed)
	assertJSONEqual(t, "embed", a, b)
	for _, c := range []struct {
		what    string
		got, in *time.Time
	}{{"eta", out.ETA, in.ETA}, {"expires", out.Expires, in.Expires}} {
		if (c.got == nil) != (c.in == nil) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.in)
			continue
		}
		if c.in == nil {
			continue
		}
		// Six fraction digits on the wire: nanoseconds are truncated.
		if want := c.in.Truncate(time.Microsecond); !c.got.Equal(want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, want)
		}
		_, go1 := c.got.Zone()
		_, wo := c.in.Zone()
		if go1 != wo {
			t.Errorf("%s offset %d, want %d", c.what, go1, wo)
		}
	}
	if out.Group != in.Group || out.Retries != in.Retries || out.Priority != in.Priority {
		t.Errorf("group/retries/priority = %q/%d/%d", out.Group, out.Retries, out.Priority)
	}
	if (out.GroupIndex == nil) != (in.GroupIndex == nil) || (in.GroupIndex != nil && *out.GroupIndex != *in.GroupIndex) {
		t.Errorf("GroupIndex = %v, want %v", out.GroupIndex, in.GroupIndex)
	}
	if out.TimeLimit.Hard() != in.TimeLimit.Hard() || out.TimeLimit.Soft() != in.TimeLimit.Soft() ||
		(out.TimeLimit[0] == nil) != (in.TimeLimit[0] == nil) || (out.TimeLimit[1] == nil) != (in.TimeLimit[1] == nil) {
		t.Errorf("TimeLimit = %v/%v, want %v/%v", out.TimeLimit.Hard(), out.TimeLimit.Soft(), in.TimeLimit.Hard(), in.TimeLimit.Soft())
	}
	if out.DeliveryTag != in.DeliveryTag || out.DeliveryInfo.RoutingKey != in.DeliveryInfo.RoutingKey ||
		out.DeliveryInfo.Exchange != in.DeliveryInfo.Exchange || out.ReplyTo != in.ReplyTo {
		t.Errorf("transport = %q %+v %q", out.DeliveryTag, out.DeliveryInfo, out.ReplyTo)
	}
	if out.ContentType != celery.ContentTypeJSON || out.ContentEncoding != "utf-8" {
		t.Errorf("content = %q/%q", out.ContentType, out.ContentEncoding)
	}
	if proto == 1 {
		if out.RootID != out.ID || out.Headers != nil {
			t.Errorf("v1 root %q headers %s", out.RootID, out.Headers)
		}
		return
	}
	for _, c := range []struct{ what, got, want string }{
		{"shadow", out.Shadow, in.Shadow}, {"root_id", out.RootID, in.RootID}, {"parent_id", out.ParentID, in.ParentID},
		{"argsrepr", out.ArgsRepr, in.ArgsRepr}, {"kwargsrepr", out.KwargsRepr, in.KwargsRepr}, {"origin", out.Origin, in.Origin},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if out.IgnoreResult != in.IgnoreResult || out.ReplacedTaskNesting != in.ReplacedTaskNesting {
		t.Errorf("ignore_result %v nesting %d", out.IgnoreResult, out.ReplacedTaskNesting)
	}
	if strings.Join(out.StampedHeaders, ",") != strings.Join(in.StampedHeaders, ",") || (out.StampedHeaders == nil) != (in.StampedHeaders == nil) {
		t.Errorf("StampedHeaders %v, want %v", out.StampedHeaders, in.StampedHeaders)
	}
	wantStamps := in.Stamps
	if wantStamps == nil {
		wantStamps = json.RawMessage("{}")
	}
	assertJSONEqual(t, "stamps", out.Stamps, wantStamps)
	if hs := allHeaders(in); len(hs) > 0 {
		var custom map[string]json.RawMessage
		if err := json.Unmarshal(hs, &custom); err != nil {
			t.Fatal(err)
		}
		for k, v := range custom {
			switch k {
			case "lang", "compression", "redelivered":
				// lang is "go" on qagen's messages; the transport markers
				// are set from EncodeOptions, never copied.
				continue
			}
			// Standard headers carried in Headers must agree with what the
			// fields produced; custom ones must pass through unchanged.
			got, ok := out.Header(k)
			if !ok {
				t.Errorf("custom header %q lost", k)
				continue
			}
			assertJSONEqual(t, "custom header "+k, got, v)
		}
	}
}

// TestEncodeHeaderKeysSuperset: a v2 message from qagen carries every header
// a 5.2.6 producer writes (and the 5.3+ additions), so Python workers and
// monitors find what they expect.
func TestEncodeHeaderKeysSuperset(t *testing.T) {
	for _, version := range fixtureVersions {
		plain, compressed := map[string]bool{}, map[string]bool{}
		for _, f := range brokerEnvelopeFiles(t, version) {
			env, _ := splitEnvelope(t, readFile(t, f))
			if _, v2 := env.Headers["task"]; !v2 {
				continue
			}
			for k := range env.Headers {
				if k == "redelivered" {
					continue // added by kombu on restore, not by producers
				}
				compressed[k] = true
				if _, c := env.Headers["compression"]; !c {
					plain[k] = true
				}
			}
		}
		if len(plain) < 16 {
			t.Fatalf("%s: only %d header keys found in fixtures", version, len(plain))
		}
		for _, c := range []struct {
			compression string
			want        map[string]bool
		}{{"", plain}, {"gzip", compressed}} {
			m := sampleMessage()
			m.Headers = nil
			raw, err := celery.EncodeTask(m, celery.EncodeOptions{Compression: c.compression})
			if err != nil {
				t.Fatal(err)
			}
			env, rawHeaders := splitEnvelope(t, raw)
			var missing []string
			for k := range c.want {
				if _, ok := env.Headers[k]; !ok {
					missing = append(missing, k)
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Errorf("%s (compression %q): encoded headers lack %v", version, c.compression, missing)
			}
			objectKeys(t, rawHeaders) // fails on duplicate keys
			if c.compression == "" {
				if _, ok := env.Headers["compression"]; ok {
					t.Errorf("uncompressed message has a compression header")
				}
			}
		}
	}
}

func TestEncodeEnvelopeShape(t *testing.T) {
	m := &celery.TaskMessage{ID: "id-1", Task: "tasks.add", Args: json.RawMessage(`[2, 3]`), DeliveryInfo: celery.DeliveryInfo{RoutingKey: "celery"}}
	raw, err := celery.EncodeTask(m, celery.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.DeliveryTag == "" || len(m.DeliveryTag) != 36 {
		t.Errorf("generated DeliveryTag %q not stored back", m.DeliveryTag)
	}
	env, rawHeaders := splitEnvelope(t, raw)
	if env.ContentType != "application/json" || env.ContentEncoding != "utf-8" {
		t.Errorf("content-type/encoding %q/%q", env.ContentType, env.ContentEncoding)
	}
	wantProps := map[string]string{
		"correlation_id": `"id-1"`,
		"reply_to":       `""`,
		"delivery_mode":  `2`,
		"delivery_info":  `{"exchange":"","routing_key":"celery"}`,
		"priority":       `0`,
		"body_encoding":  `"base64"`,
		"delivery_tag":   `"` + m.DeliveryTag + `"`,
	}
	for k, v := range wantProps {
		got, ok := env.Properties[k]
		if !ok {
			t.Errorf("property %q missing", k)
			continue
		}
		assertJSONEqual(t, "property "+k, got, []byte(v))
	}
	// Headers with every default.
	wantHeaders := map[string]string{
		"lang": `"go"`, "task": `"tasks.add"`, "id": `"id-1"`, "shadow": `null`, "eta": `null`, "expires": `null`,
		"group": `null`, "group_index": `null`, "retries": `0`, "timelimit": `[null, null]`, "root_id": `"id-1"`,
		"parent_id": `null`, "argsrepr": `"(2, 3)"`, "kwargsrepr": `"{}"`, "origin": `""`, "ignore_result": `false`,
		"replaced_task_nesting": `0`, "stamped_headers": `null`, "stamps": `{}`,
	}
	if len(env.Headers) != len(wantHeaders) {
		t.Errorf("headers %v, want exactly %d keys", objectKeys(t, rawHeaders), len(wantHeaders))
	}
	for k, v := range wantHeaders {
		assertJSONEqual(t, "header "+k, env.Headers[k], []byte(v))
	}
	body, _ := base64.StdEncoding.DecodeString(env.Body)
	assertJSONEqual(t, "body", body, []byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`))

	// An exhausted chain stays [] (Python treats null and [] differently).
	m2 := &celery.TaskMessage{ID: "id-2", Task: "t", Embed: celery.Embed{Chain: []celery.Signature{}}, DeliveryInfo: celery.DeliveryInfo{RoutingKey: "q"}}
	raw, err = celery.EncodeTask(m2, celery.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env, _ = splitEnvelope(t, raw)
	body, _ = base64.StdEncoding.DecodeString(env.Body)
	assertJSONEqual(t, "body", body, []byte(`[[], {}, {"callbacks": null, "errbacks": null, "chain": [], "chord": null}]`))

	// v1 layout.
	raw, err = celery.EncodeTask(&celery.TaskMessage{ID: "id-3", Task: "t", Args: json.RawMessage(`[1]`), DeliveryInfo: celery.DeliveryInfo{RoutingKey: "q"}}, celery.EncodeOptions{Protocol: 1})
	if err != nil {
		t.Fatal(err)
	}
	env, rawHeaders = splitEnvelope(t, raw)
	if string(rawHeaders) != "{}" {
		t.Errorf("v1 headers %s, want {}", rawHeaders)
	}
	body, _ = base64.StdEncoding.DecodeString(env.Body)
	assertJSONEqual(t, "v1 body", body, []byte(`{"task": "t", "id": "id-3", "args": [1], "kwargs": {}, "group": null, "group_index": null,
		"retries": 0, "eta": null, "expires": null, "utc": true, "callbacks": null, "errbacks": null,
		"timelimit": [null, null], "taskset": null, "chord": null}`))
}

func TestEncodeDates(t *testing.T) {
	cases := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05.000000+00:00"},
		{time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC), "2024-01-02T03:04:05.123456+00:00"},
		{time.Date(2024, 1, 2, 3, 4, 5, 5000, time.UTC), "2024-01-02T03:04:05.000005+00:00"},
		{time.Date(2026, 11, 27, 9, 39, 30, 138767000, time.FixedZone("", 9*3600)), "2026-11-27T09:39:30.138767+09:00"},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(5*3600+30*60))), "2024-01-02T03:04:05.000000-05:30"},
	}
	for _, c := range cases {
		if got := celery.FormatTime(c.in); got != c.want {
			t.Errorf("FormatTime(%v) = %q, want %q", c.in, got, c.want)
		}
		for _, proto := range []int{1, 2} {
			eta, exp := c.in, c.in.Add(time.Hour)
			m := &celery.TaskMessage{ID: "i", Task: "t", ETA: &eta, Expires: &exp, DeliveryInfo: celery.DeliveryInfo{RoutingKey: "q"}}
			raw, err := celery.EncodeTask(m, celery.EncodeOptions{Protocol: proto})
			if err != nil {
				t.Fatal(err)
			}
			env, _ := splitEnvelope(t, raw)
			fields := env.Headers
			if proto == 1 {
				body, _ := base64.StdEncoding.DecodeString(env.Body)
				if err := json.Unmarshal(body, &fields); err != nil {
					t.Fatal(err)
				}
			}
			var etaStr, expStr string
			_ = json.Unmarshal(fields["eta"], &etaStr)
			_ = json.Unmarshal(fields["expires"], &expStr)
			if etaStr != c.want {
				t.Errorf("v%d eta = %q, want %q", proto, etaStr, c.want)
			}
			if !wireTime.MatchString(expStr) {
				t.Errorf("v%d expires %q is not in wire format", proto, expStr)
			}
		}
		// Result metas use the same format.
		d := c.in
		out, _ := json.Marshal(&celery.ResultMeta{Status: celery.StateSuccess, DateDone: &d, TaskID: "x"})
		if !bytes.Contains(out, []byte(`"date_done":"`+c.want+`"`)) {
			t.Errorf("result date_done in %s, want %q", out, c.want)
		}
	}
	if celery.TimeLayout != "2006-01-02T15:04:05.000000-07:00" {
		t.Errorf("TimeLayout = %q", celery.TimeLayout)
	}
}

func TestEncodeCustomHeaders(t *testing.T) {
	m := &celery.TaskMessage{
		ID: "real-id", Task: "real.task", DeliveryInfo: celery.DeliveryInfo{RoutingKey: "q"},
		// Custom headers pass through; standard names cannot be overridden
		// from Headers, and transport markers are not copied.
		Headers: json.RawMessage(`{"x-request":{"id":7,"path":["a","b"]},"weird \"key\"":"ü","task":"evil","id":"evil","lang":"py","compression":"application/x-gzip","redelivered":true,"retries":9}`),
	}
	raw, err := celery.EncodeTask(m, celery.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env, rawHeaders := splitEnvelope(t, raw)
	keys := objectKeys(t, rawHeaders) // also rejects duplicate keys
	assertJSONEqual(t, "x-request", env.Headers["x-request"], []byte(`{"id":7,"path":["a","b"]}`))
	assertJSONEqual(t, `weird "key"`, env.Headers[`weird "key"`], []byte(`"ü"`))
	for k, want := range map[string]string{"task": `"real.task"`, "id": `"real-id"`, "lang": `"go"`, "retries": `0`} {
		assertJSONEqual(t, "header "+k, env.Headers[k], []byte(want))
	}
	for _, k := range []string{"compression", "redelivered"} {
		if _, ok := env.Headers[k]; ok {
			t.Errorf("header %q copied from custom headers: %v", k, keys)
		}
	}
	// The body must not be treated as compressed.
	out, err := celery.DecodeTask(raw, celery.DecodeOptions{})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if v, ok := out.Header("x-request"); !ok || !jsonEqual(t, v, []byte(`{"id":7,"path":["a","b"]}`)) {
		t.Errorf("Header(x-request) = %s, %v", v, ok)
	}

	// Non-object custom headers are refused.
	bad := &celery.TaskMessage{ID: "i", Task: "t", DeliveryInfo: celery.DeliveryInfo{RoutingKey: "q"}, Headers: json.RawMessage(`[1,2]`)}
	if _, err := celery.EncodeTask(bad, celery.EncodeOptions{}); err == nil {
		t.Errorf("EncodeTask accepted array headers")
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := func() *celery.TaskMessage {
		return &celery.TaskMessage{ID: "i", Task: "t", DeliveryInfo: celery.DeliveryInfo{RoutingKey: "q"}}
	}
	cases := map[string]struct {
		m    *celery.TaskMessage
		opts celery.EncodeOptions
	}{
		"no id":         {func() *celery.TaskMessage { m := ok(); m.ID = ""; return m }(), celery.EncodeOptions{}},
		"no task":       {func() *celery.TaskMessage { m := ok(); m.Task = ""; return m }(), celery.EncodeOptions{}},
		"no queue":      {func() *celery.TaskMessage { m := ok(); m.DeliveryInfo.RoutingKey = ""; return m }(), celery.EncodeOptions{}},
		"bzip2":         {ok(), celery.EncodeOptions{Compression: "bzip2"}},
		"brotli":        {ok(), celery.EncodeOptions{Compression: "brotli"}},
		"unknown codec": {ok(), celery.EncodeOptions{Compression: "snappy"}},
	}
	for name, c := range cases {
		if raw, err := celery.EncodeTask(c.m, c.opts); err == nil {
			t.Errorf("%s: EncodeTask succeeded: %s", name, abbrev(raw))
		}
	}
}

func TestNormalizeCompression(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "gzip": celery.CompressionZlib, "zlib": celery.CompressionZlib, "application/x-gzip": celery.CompressionZlib,
		"application/zlib": celery.CompressionZlib, "xz": celery.CompressionXZ, "lzma": celery.CompressionXZ,
		"application/x-lzma": celery.CompressionXZ,
	} {
		got, err := celery.NormalizeCompression(in)
		if err != nil || got != want {
			t.Errorf("NormalizeCompression(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"bzip2", "bzip", celery.CompressionBzip2, "brotli", "zstd", "GZIP"} {
		if got, err := celery.NormalizeCompression(in); err == nil {
			t.Errorf("NormalizeCompression(%q) = %q, want error", in, got)
		}
	}
}

// TestEncodeFixtureRoundTrip re-encodes every captured message and decodes
// it again: nothing Python sent may be lost on the way through qagen.
func TestEncodeFixtureRoundTrip(t *testing.T) {
	for _, version := range fixtureVersions {
		for _, f := range brokerEnvelopeFiles(t, version) {
			t.Run(version+"/"+filepath.Base(f), func(t *testing.T) {
				in, err := celery.DecodeTask(readFile(t, f), celery.DecodeOptions{})
				if err != nil {
					t.Fatal(err)
				}
				raw, err := celery.EncodeTask(in, celery.EncodeOptions{Protocol: in.Protocol, Compression: in.Compression})
				if err != nil {
					t.Fatalf("EncodeTask: %v", err)
				}
				out, err := celery.DecodeTask(raw, celery.DecodeOptions{})
				if err != nil {
					t.Fatalf("DecodeTask: %v", err)
				}
				checkRoundTrip(t, in, out, in.Protocol)
				if in.Protocol == 2 {
					assertJSONEqual(t, "embed", out.EmbedJSON(), in.EmbedJSON())
				}
			})
		}
	}
}

func TestResultMetaMarshal(t *testing.T) {
	done := time.Date(2026, 11, 27, 9, 39, 2, 778215000, time.FixedZone("", 9*3600))
	full := &celery.ResultMeta{
		Status:    celery.StateFailure,
		Result:    json.RawMessage(`{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`),
		Traceback: "Traceback (most recent call last):\n  File \"x.py\"\nValueError: boom ✓\n",
		Children:  json.RawMessage(`[[["c1", null], null]]`),
		DateDone:  &done,
		GroupID:   "g1",
		ParentID:  "p1",
		Extended:  &celery.Extended{Name: "tasks.fail", Args: json.RawMessage(`[1]`), Kwargs: json.RawMessage(`{"a":2}`), Worker: "w@h", Retries: 3, Queue: "qa"},
		TaskID:    "t1",
	}
	out, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"status", "result", "traceback", "children", "date_done", "group_id", "parent_id",
		"name", "args", "kwargs", "worker", "retries", "queue", "task_id"}
	if got := objectKeys(t, out); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("keys %v, want %v", got, want)
	}
	back, err := celery.ParseResult(out)
	if err != nil {
		t.Fatal(err)
	}
	if back.Status != full.Status || back.Traceback != full.Traceback || back.GroupID != "g1" || back.ParentID != "p1" ||
		back.TaskID != "t1" || back.DateDone == nil || !back.DateDone.Equal(done) {
		t.Errorf("round trip: %+v", back)
	}
	if _, off := back.DateDone.Zone(); off != 9*3600 {
		t.Errorf("date_done offset %d", off)
	}
	if e := back.Extended; e == nil || e.Name != "tasks.fail" || e.Worker != "w@h" || e.Retries != 3 || e.Queue != "qa" ||
		string(e.Args) != "[1]" || !jsonEqual(t, e.Kwargs, []byte(`{"a":2}`)) {
		t.Errorf("extended: %+v", back.Extended)
	}
	assertJSONEqual(t, "children", back.Children, full.Children)
	exc, err := back.Exception()
	if err != nil || exc.Type != "ValueError" || exc.Traceback != full.Traceback {
		t.Errorf("Exception() = %+v, %v", exc, err)
	}

	// Minimal meta: nil fields become the values Python writes.
	out, err = json.Marshal(&celery.ResultMeta{Status: celery.StateStarted, TaskID: "t2"})
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, "minimal", out, []byte(`{"status": "STARTED", "result": null, "traceback": null, "children": [], "date_done": null, "task_id": "t2"}`))
	if got := objectKeys(t, out); strings.Join(got, ",") != "status,result,traceback,children,date_done,task_id" {
		t.Errorf("minimal keys %v", got)
	}
	// AppendJSON appends.
	buf := celery.ResultMeta{Status: celery.StateSuccess, Result: json.RawMessage("5"), TaskID: "t3"}
	app := buf.AppendJSON([]byte("prefix:"))
	if !bytes.HasPrefix(app, []byte("prefix:{")) || !json.Valid(app[len("prefix:"):]) {
		t.Errorf("AppendJSON = %s", app)
	}
	if celery.ResultKey("abc") != "celery-task-meta-abc" {
		t.Errorf("ResultKey = %q", celery.ResultKey("abc"))
	}
}

// TestReencodeKeepsCustomHeaders: a worker that re-publishes a decoded
// message (retry, requeue) must not lose the custom headers Python set with
// apply_async(headers=...), and the result must not depend on whether
// Header() happened to be called first.
func TestReencodeKeepsCustomHeaders(t *testing.T) {
	orig := &celery.TaskMessage{ID: "id-1", Task: "t", DeliveryInfo: celery.DeliveryInfo{RoutingKey: "q"},
		Headers: json.RawMessage(`{"x-tenant": "acme", "x-trace": {"span": 7}}`)}
	raw, err := celery.EncodeTask(orig, celery.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, peekFirst := range []bool{false, true} {
		m, err := celery.DecodeTask(raw, celery.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if peekFirst {
			if _, ok := m.Header("x-tenant"); !ok {
				t.Fatalf("x-tenant not decoded")
			}
		}
		m.Retries++
		again, err := celery.EncodeTask(m, celery.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		env, _ := splitEnvelope(t, again)
		assertJSONEqual(t, "x-tenant after re-encode", env.Headers["x-tenant"], []byte(`"acme"`))
		assertJSONEqual(t, "x-trace after re-encode", env.Headers["x-trace"], []byte(`{"span": 7}`))
		assertJSONEqual(t, "retries after re-encode", env.Headers["retries"], []byte(`1`))
	}
}
