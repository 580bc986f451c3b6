package celery_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/celery"
)

// addFixtureSeeds adds every raw broker envelope and every envelope held in
// an unacked hash value.
func addFixtureSeeds(f *testing.F) {
	for _, version := range fixtureVersions {
		for _, p := range brokerEnvelopeFiles(f, version) {
			f.Add(readFile(f, p))
		}
		for _, p := range unackedFiles(f, version) {
			var triple []json.RawMessage
			if err := json.Unmarshal(readFile(f, p), &triple); err != nil || len(triple) != 3 {
				f.Fatalf("%s: %v", p, err)
			}
			f.Add([]byte(triple[0]))
		}
	}
}

func FuzzDecodeTask(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"body": "W1tdLCB7fSwge31d", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {"body_encoding": "base64"}}`))
	f.Add([]byte(`{"body": "[NaN, {}, {}]", "content-type": "application/json", "headers": {"task": "t", "id": "i", "eta": "2024-02-30"}, "properties": {}}`))
	f.Add([]byte(`{"body": "{\"task\": \"t\", \"id\": \"i\", \"args\": [], \"kwargs\": {}, \"utc\": false, \"eta\": \"2024-01-02T03:04:05\"}", "content-type": "application/json", "headers": {}, "properties": {}}`))
	f.Add([]byte(`{"body": "eJyLjjbUUTCK1VGoVspWslJQiik1MEhLVqoFCSQn5uQkJSZnFwMl8kpzcnQUlFKLitBEkjMSM/OQuflFKVBubSwAKUcdNw==", "content-type": "application/json", "headers": {"task": "t", "id": "i", "compression": "application/x-gzip"}, "properties": {"body_encoding": "base64"}}`))
	naive := time.FixedZone("", 3600)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := celery.DecodeTask(raw, celery.DecodeOptions{NaiveLocation: naive})
		if err != nil {
			var me *celery.MessageError
			if !errors.As(err, &me) || me.Exc == nil || me.Exc.Type == "" {
				t.Fatalf("error %T %v is not a *MessageError with an exception", err, err)
			}
			_ = err.Error()
			return
		}
		if m.Protocol != 1 && m.Protocol != 2 {
			t.Fatalf("Protocol %d", m.Protocol)
		}
		if m.ID == "" || m.Task == "" {
			t.Fatalf("decoded a task without id/name: %+v", m)
		}
		if !json.Valid(m.Args) || bytes.TrimSpace(m.Args)[0] != '[' {
			t.Fatalf("args %q", m.Args)
		}
		if !json.Valid(m.Kwargs) || bytes.TrimSpace(m.Kwargs)[0] != '{' {
			t.Fatalf("kwargs %q", m.Kwargs)
		}
		if !json.Valid(m.EmbedJSON()) {
			t.Fatalf("embed %q", m.EmbedJSON())
		}
		_ = celery.ReprJSON(m.Args, "()")
		// Whatever qagen accepts it can publish again, losslessly.
		if m.DeliveryInfo.RoutingKey == "" {
			m.DeliveryInfo.RoutingKey = "q"
		}
		out, err := celery.EncodeTask(m, celery.EncodeOptions{Protocol: m.Protocol})
		if err != nil {
			t.Fatalf("EncodeTask of a decoded message: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("EncodeTask wrote invalid JSON: %s", out)
		}
		back, err := celery.DecodeTask(out, celery.DecodeOptions{})
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, out)
		}
		if back.ID != m.ID || back.Task != m.Task || back.Protocol != m.Protocol {
			t.Fatalf("re-decode changed id/task/protocol: %q/%q/%d vs %q/%q/%d", back.ID, back.Task, back.Protocol, m.ID, m.Task, m.Protocol)
		}
		if !jsonEqual(t, back.Args, m.Args) || !jsonEqual(t, back.Kwargs, m.Kwargs) {
			t.Fatalf("re-decode changed args: %s %s vs %s %s", back.Args, back.Kwargs, m.Args, m.Kwargs)
		}
		for _, p := range [][2]*time.Time{{back.ETA, m.ETA}, {back.Expires, m.Expires}} {
			if (p[0] == nil) != (p[1] == nil) || (p[0] != nil && !p[0].Equal(p[1].Truncate(time.Microsecond))) {
				t.Fatalf("re-decode changed a time: %v vs %v", p[0], p[1])
			}
		}
	})
}

func FuzzParseResult(f *testing.F) {
	for _, version := range fixtureVersions {
		files, _ := filepath.Glob(filepath.Join(fixtureDir(f, version, "result"), "*"))
		for _, p := range files {
			f.Add(readFile(f, p))
		}
	}
	f.Add([]byte(`{"status": "SUCCESS", "result": NaN, "task_id": "x", "date_done": "2024-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"status": "FAILURE", "result": {"exc_type": "E", "exc_message": "m", "exc_module": null}, "name": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := celery.ParseResult(data)
		if err != nil {
			return
		}
		if r.Status == "" {
			t.Fatalf("accepted a meta without status")
		}
		_, _ = r.Exception()
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		back, err := celery.ParseResult(out)
		if err != nil {
			t.Fatalf("ParseResult(MarshalJSON): %v\n%s", err, out)
		}
		if back.Status != r.Status || back.TaskID != r.TaskID || back.Traceback != r.Traceback ||
			back.GroupID != r.GroupID || back.ParentID != r.ParentID || (back.Extended == nil) != (r.Extended == nil) {
			t.Fatalf("round trip changed the meta\n in: %+v\nout: %+v", r, back)
		}
		if (back.DateDone == nil) != (r.DateDone == nil) || (r.DateDone != nil && !back.DateDone.Equal(r.DateDone.Truncate(time.Microsecond))) {
			t.Fatalf("round trip changed date_done: %v vs %v", back.DateDone, r.DateDone)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2024-01-02T03:04:05Z", "2026-11-27T09:39:30.138767+09:00", "2024-01-02T03:04:05-0530", "2026-11-26T23:33:39.139842",
		"2024-01-02T03:04:05.123456789Z", "2024-01-02", "2024", "2024-02-30T00:00:00", "2024-01-02T03:04:05+24:00",
		"0001-01-01T00:00:00+23:59", "9999-12-31T23:59:60.9999999999-23:59", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := celery.ParseTime(s, nil)
		if err != nil {
			return
		}
		w := celery.FormatTime(tm)
		if !wireTime.MatchString(w) {
			t.Fatalf("ParseTime(%q) formats as %q", s, w)
		}
		back, err := celery.ParseTime(w, nil)
		if err != nil {
			t.Fatalf("ParseTime(FormatTime(ParseTime(%q))) = %q: %v", s, w, err)
		}
		if !back.Equal(tm.Truncate(time.Microsecond)) {
			t.Fatalf("%q -> %q -> %v, want %v", s, w, back, tm)
		}
		if _, o1 := back.Zone(); true {
			if _, o2 := tm.Zone(); o1 != o2 {
				t.Fatalf("%q offset %d -> %d", s, o2, o1)
			}
		}
	})
}

func FuzzUnwrapMarkers(f *testing.F) {
	m, err := celery.DecodeTask(readFile(f, filepath.Join(fixtureDir(f, "celery-5.5.3", "broker"), "v2_typed_args.json")), celery.DecodeOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(m.Args))
	f.Add([]byte(m.Kwargs))
	if b, err := os.ReadFile(filepath.Join(fixtureDir(f, "celery-5.5.3", "result"), "success_echo_typed.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"__type__": "uuid", "__value__": {"hex": "00000000000000000000000000000005", "version": 4}}`))
	f.Add([]byte(`[{"__type__": "x", "__value__": 1, "n": 2}, {"__type__": "nope", "__value__": 1}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := celery.UnwrapMarkers(data)
		if !celery.HasMarkers(data) {
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("input without markers changed: %q -> %q, %v", data, out, err)
			}
			return
		}
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("UnwrapMarkers(%q) = invalid JSON %q", data, out)
		}
		again, err := celery.UnwrapMarkers(out)
		if err != nil {
			t.Fatalf("second pass failed on %q: %v", out, err)
		}
		if !jsonEqual(t, again, out) {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"a": NaN, "b": Infinity, "c": -Infinity}`, `["NaN", "\"Infinity", NaN]`, `{"s": "x\\", "n": NaN}`, `NaN`, `-Infinity`,
		`[1, 2, {"k": null}]`, `{"a": NaNa}`, `"unterminated`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got any
		err := celery.Unmarshal(data, &got)
		if json.Valid(data) {
			var want any
			if json.Unmarshal(data, &want) != nil {
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal rejected valid JSON %q: %v", data, err)
			}
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(want)
			if !bytes.Equal(a, b) {
				t.Fatalf("Unmarshal(%q) = %s, encoding/json gives %s", data, a, b)
			}
			return
		}
		if err != nil {
			return
		}
		// Invalid JSON may only be accepted because of a non-finite token.
		if !strings.Contains(string(data), "NaN") && !strings.Contains(string(data), "Infinity") {
			t.Fatalf("Unmarshal accepted invalid JSON %q", data)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Fatalf("decoded value does not re-encode: %v", err)
		}
	})
}

// FuzzDecodeTaskBody fuzzes the serialized body and the headers directly
// (FuzzDecodeTask mostly mutates base64 text, which rarely yields a JSON body).
func FuzzDecodeTaskBody(f *testing.F) {
	for _, version := range fixtureVersions {
		for _, p := range brokerEnvelopeFiles(f, version) {
			env, err := celery.ParseEnvelope(readFile(f, p))
			if err != nil {
				f.Fatal(err)
			}
			var h struct {
				Compression string `json:"compression"`
			}
			_ = json.Unmarshal(env.Headers, &h)
			body, err := env.DecodeBody(h.Compression, nil)
			if err != nil {
				f.Fatal(err)
			}
			hdr := bytes.Replace(env.Headers, []byte(`"compression"`), []byte(`"was-compression"`), 1)
			f.Add(string(hdr), body)
		}
	}
	f.Add(`{"task": "t", "id": "i"}`, []byte(`[[1], {"a": NaN}, {"chain": [{"task": "x", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": true}]}]`))
	f.Add(`{}`, []byte(`{"task": "t", "id": "i", "args": [], "kwargs": {}, "eta": "2024-01-02T03:04:05", "utc": false, "timelimit": [1, null]}`))
	f.Fuzz(func(t *testing.T, headers string, body []byte) {
		raw, err := json.Marshal(map[string]any{
			"body": string(body), "content-type": "application/json", "content-encoding": "utf-8",
			"headers":    json.RawMessage(headers),
			"properties": map[string]any{"delivery_info": map[string]any{"exchange": "", "routing_key": "q"}, "delivery_tag": "t"},
		})
		if err != nil {
			return // headers is not JSON
		}
		m, err := celery.DecodeTask(raw, celery.DecodeOptions{})
		if err != nil {
			var me *celery.MessageError
			if !errors.As(err, &me) || me.Exc == nil {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		out, err := celery.EncodeTask(m, celery.EncodeOptions{Protocol: m.Protocol})
		if err != nil {
			t.Fatalf("EncodeTask: %v", err)
		}
		back, err := celery.DecodeTask(out, celery.DecodeOptions{})
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, out)
		}
		if back.ID != m.ID || !jsonEqual(t, back.Args, m.Args) || !jsonEqual(t, back.Kwargs, m.Kwargs) ||
			back.Retries != m.Retries || back.Group != m.Group {
			t.Fatalf("round trip changed the task:\n in %+v\nout %+v", m, back)
		}
		if m.Protocol == 2 && !jsonEqual(t, back.EmbedJSON(), m.EmbedJSON()) {
			t.Fatalf("round trip changed the embed: %s vs %s", back.EmbedJSON(), m.EmbedJSON())
		}
	})
}
