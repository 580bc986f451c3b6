package celery_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/celery"
)

// decodedEnvelope is the shape of a *.decoded.json fixture: the envelope with
// its body already base64-decoded, decompressed and parsed by the capture
// tool (i.e. an independent decoding done in Python).
type decodedEnvelope struct {
	Body            json.RawMessage            `json:"body"`
	ContentEncoding string                     `json:"content-encoding"`
	ContentType     string                     `json:"content-type"`
	Headers         map[string]json.RawMessage `json:"headers"`
	RawHeaders      json.RawMessage            `json:"-"`
	Properties      struct {
		CorrelationID string `json:"correlation_id"`
		ReplyTo       string `json:"reply_to"`
		DeliveryInfo  struct {
			Exchange    string `json:"exchange"`
			RoutingKey  string `json:"routing_key"`
			Redelivered bool   `json:"redelivered"`
		} `json:"delivery_info"`
		Priority    int    `json:"priority"`
		DeliveryTag string `json:"delivery_tag"`
	} `json:"properties"`
}

func parseDecoded(tb testing.TB, data []byte) decodedEnvelope {
	tb.Helper()
	var d decodedEnvelope
	if err := json.Unmarshal(data, &d); err != nil {
		tb.Fatalf("decoded fixture: %v", err)
	}
	var raw struct {
		Headers json.RawMessage `json:"headers"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		tb.Fatal(err)
	}
	d.RawHeaders = raw.Headers
	return d
}

// field reads key from a JSON object; ok is false when it is absent or null.
func field[T any](tb testing.TB, obj map[string]json.RawMessage, key string) (T, bool) {
	tb.Helper()
	var v T
	raw, present := obj[key]
	if !present || string(raw) == "null" {
		return v, false
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatalf("fixture field %q = %s: %v", key, raw, err)
	}
	return v, true
}

func checkTime(tb testing.TB, what string, got *time.Time, want string, wantSet bool) {
	tb.Helper()
	if !wantSet {
		if got != nil {
			tb.Errorf("%s = %v, want nil", what, got)
		}
		return
	}
	exp, err := time.Parse(time.RFC3339Nano, want)
	if err != nil {
		tb.Fatalf("fixture %s %q: %v", what, want, err)
	}
	if got == nil {
		tb.Fatalf("%s = nil, want %s", what, want)
	}
	if !got.Equal(exp) {
		tb.Errorf("%s = %s, want instant %s", what, got.Format(time.RFC3339Nano), want)
	}
	_, gotOff := got.Zone()
	_, wantOff := exp.Zone()
	if gotOff != wantOff {
		tb.Errorf("%s offset = %ds, want %ds (from %q)", what, gotOff, wantOff, want)
	}
}

func checkTimeLimit(tb testing.TB, got celery.TimeLimit, want []*float64) {
	tb.Helper()
	if want == nil {
		want = []*float64{nil, nil}
	}
	if len(want) != 2 {
		tb.Fatalf("fixture timelimit has %d elements", len(want))
	}
	for i, name := range []string{"hard", "soft"} {
		switch {
		case want[i] == nil && got[i] != nil:
			tb.Errorf("timelimit %s = %v, want null", name, *got[i])
		case want[i] != nil && got[i] == nil:
			tb.Errorf("timelimit %s = null, want %v", name, *want[i])
		case want[i] != nil && *got[i] != *want[i]:
			tb.Errorf("timelimit %s = %v, want %v", name, *got[i], *want[i])
		}
	}
	if want[0] != nil && got.Hard() != *want[0] {
		tb.Errorf("Hard() = %v, want %v", got.Hard(), *want[0])
	}
	if want[1] != nil && got.Soft() != *want[1] {
		tb.Errorf("Soft() = %v, want %v", got.Soft(), *want[1])
	}
}

// checkSignatures compares decoded signatures with the fixture's list (or
// null).
func checkSignatures(tb testing.TB, what string, got []celery.Signature, want json.RawMessage) {
	tb.Helper()
	if len(want) == 0 || string(want) == "null" {
		if got != nil {
			tb.Errorf("%s = %d signatures, want null", what, len(got))
		}
		return
	}
	var sigs []json.RawMessage
	if err := json.Unmarshal(want, &sigs); err != nil {
		tb.Fatalf("fixture %s: %v", what, err)
	}
	if got == nil {
		tb.Fatalf("%s = nil, want %d signatures", what, len(sigs))
	}
	if len(got) != len(sigs) {
		tb.Fatalf("%s has %d signatures, want %d", what, len(got), len(sigs))
	}
	for i := range sigs {
		checkSignature(tb, fmt.Sprintf("%s[%d]", what, i), &got[i], sigs[i])
	}
}

func checkSignature(tb testing.TB, what string, got *celery.Signature, want json.RawMessage) {
	tb.Helper()
	if len(want) == 0 || string(want) == "null" {
		if got != nil {
			tb.Errorf("%s = %+v, want null", what, got)
		}
		return
	}
	if got == nil {
		tb.Fatalf("%s = nil, want %s", what, want)
	}
	var w map[string]json.RawMessage
	if err := json.Unmarshal(want, &w); err != nil {
		tb.Fatal(err)
	}
	task, _ := field[string](tb, w, "task")
	if got.Task != task {
		tb.Errorf("%s.task = %q, want %q", what, got.Task, task)
	}
	for _, k := range []string{"args", "kwargs", "options"} {
		var g json.RawMessage
		switch k {
		case "args":
			g = got.Args
		case "kwargs":
			g = got.Kwargs
		case "options":
			g = got.Options
		}
		assertJSONEqual(tb, what+"."+k, g, w[k])
	}
	st, stSet := field[string](tb, w, "subtask_type")
	switch {
	case stSet && (got.SubtaskType == nil || *got.SubtaskType != st):
		tb.Errorf("%s.subtask_type = %v, want %q", what, got.SubtaskType, st)
	case !stSet && got.SubtaskType != nil:
		tb.Errorf("%s.subtask_type = %q, want null", what, *got.SubtaskType)
	}
	imm, _ := field[bool](tb, w, "immutable")
	if got.Immutable != imm {
		tb.Errorf("%s.immutable = %v, want %v", what, got.Immutable, imm)
	}
}

// checkTaskAgainstDecoded compares a decoded task message with the Python
// side decoding of the same envelope.
func checkTaskAgainstDecoded(t *testing.T, m *celery.TaskMessage, d decodedEnvelope) {
	t.Helper()
	h := d.Headers
	_, isV2 := h["task"]
	wantProto := 1
	if isV2 {
		wantProto = 2
	}
	if m.Protocol != wantProto {
		t.Fatalf("Protocol = %d, want %d", m.Protocol, wantProto)
	}

	// Transport fields.
	if m.ContentType != d.ContentType {
		t.Errorf("ContentType = %q, want %q", m.ContentType, d.ContentType)
	}
	if m.ContentEncoding != d.ContentEncoding {
		t.Errorf("ContentEncoding = %q, want %q", m.ContentEncoding, d.ContentEncoding)
	}
	comp, _ := field[string](t, h, "compression")
	if m.Compression != comp {
		t.Errorf("Compression = %q, want %q", m.Compression, comp)
	}
	p := d.Properties
	if m.Priority != p.Priority {
		t.Errorf("Priority = %d, want %d", m.Priority, p.Priority)
	}
	if m.DeliveryTag != p.DeliveryTag || m.DeliveryTag == "" {
		t.Errorf("DeliveryTag = %q, want %q", m.DeliveryTag, p.DeliveryTag)
	}
	if m.DeliveryInfo.Exchange != p.DeliveryInfo.Exchange || m.DeliveryInfo.RoutingKey != p.DeliveryInfo.RoutingKey ||
		m.DeliveryInfo.Redelivered != p.DeliveryInfo.Redelivered {
		t.Errorf("DeliveryInfo = %+v, want %+v", m.DeliveryInfo, p.DeliveryInfo)
	}
	hdrRedelivered, _ := field[bool](t, h, "redelivered")
	if want := hdrRedelivered || p.DeliveryInfo.Redelivered; m.Redelivered != want {
		t.Errorf("Redelivered = %v, want %v", m.Redelivered, want)
	}
	if m.ReplyTo != p.ReplyTo {
		t.Errorf("ReplyTo = %q, want %q", m.ReplyTo, p.ReplyTo)
	}
	if m.CorrelationID != p.CorrelationID {
		t.Errorf("CorrelationID = %q, want %q", m.CorrelationID, p.CorrelationID)
	}

	if isV2 {
		checkV2(t, m, d)
	} else {
		checkV1(t, m, d)
	}
	if m.CorrelationID != m.ID {
		t.Errorf("correlation_id %q != task id %q", m.CorrelationID, m.ID)
	}
}

func checkV2(t *testing.T, m *celery.TaskMessage, d decodedEnvelope) {
	t.Helper()
	h := d.Headers
	var body []json.RawMessage
	if err := json.Unmarshal(d.Body, &body); err != nil || len(body) != 3 {
		t.Fatalf("fixture v2 body: %v (len %d)", err, len(body))
	}
	str := func(k string) string { s, _ := field[string](t, h, k); return s }
	if m.Task != str("task") || m.ID != str("id") {
		t.Errorf("task/id = %q/%q, want %q/%q", m.Task, m.ID, str("task"), str("id"))
	}
	assertJSONEqual(t, "args", m.Args, body[0])
	assertJSONEqual(t, "kwargs", m.Kwargs, body[1])
	assertJSONEqual(t, "EmbedJSON", m.EmbedJSON(), body[2])
	var embed map[string]json.RawMessage
	if err := json.Unmarshal(body[2], &embed); err != nil {
		t.Fatal(err)
	}
	checkSignatures(t, "callbacks", m.Embed.Callbacks, embed["callbacks"])
	checkSignatures(t, "errbacks", m.Embed.Errbacks, embed["errbacks"])
	checkSignatures(t, "chain", m.Embed.Chain, embed["chain"])
	checkSignature(t, "chord", m.Embed.Chord, embed["chord"])

	eta, etaSet := field[string](t, h, "eta")
	checkTime(t, "eta", m.ETA, eta, etaSet)
	exp, expSet := field[string](t, h, "expires")
	checkTime(t, "expires", m.Expires, exp, expSet)

	for _, c := range []struct{ name, got string }{
		{"shadow", m.Shadow}, {"group", m.Group}, {"root_id", m.RootID}, {"parent_id", m.ParentID},
		{"argsrepr", m.ArgsRepr}, {"kwargsrepr", m.KwargsRepr}, {"origin", m.Origin},
	} {
		if c.got != str(c.name) {
			t.Errorf("%s = %q, want %q", c.name, c.got, str(c.name))
		}
	}
	gi, giSet := field[int](t, h, "group_index")
	switch {
	case giSet && (m.GroupIndex == nil || *m.GroupIndex != gi):
		t.Errorf("GroupIndex = %v, want %d", m.GroupIndex, gi)
	case !giSet && m.GroupIndex != nil:
		t.Errorf("GroupIndex = %d, want nil", *m.GroupIndex)
	}
	retries, _ := field[int](t, h, "retries")
	if m.Retries != retries {
		t.Errorf("Retries = %d, want %d", m.Retries, retries)
	}
	tl, _ := field[[]*float64](t, h, "timelimit")
	checkTimeLimit(t, m.TimeLimit, tl)
	ign, _ := field[bool](t, h, "ignore_result")
	if m.IgnoreResult != ign {
		t.Errorf("IgnoreResult = %v, want %v", m.IgnoreResult, ign)
	}
	rtn, _ := field[int](t, h, "replaced_task_nesting")
	if m.ReplacedTaskNesting != rtn {
		t.Errorf("ReplacedTaskNesting = %d, want %d", m.ReplacedTaskNesting, rtn)
	}
	sh, shSet := field[[]string](t, h, "stamped_headers")
	if shSet != (m.StampedHeaders != nil) || strings.Join(sh, ",") != strings.Join(m.StampedHeaders, ",") {
		t.Errorf("StampedHeaders = %#v, want %#v", m.StampedHeaders, sh)
	}
	if stamps, ok := h["stamps"]; ok {
		assertJSONEqual(t, "stamps", m.Stamps, stamps)
	} else if m.Stamps != nil {
		t.Errorf("Stamps = %s, want absent", m.Stamps)
	}
	// Every header, standard or not, is kept and reachable.
	assertJSONEqual(t, "all headers", allHeaders(m), d.RawHeaders)
	for k, v := range h {
		got, ok := m.Header(k)
		if !ok {
			t.Errorf("Header(%q) missing", k)
			continue
		}
		assertJSONEqual(t, "Header("+k+")", got, v)
	}
	if _, ok := m.Header("no-such-header"); ok {
		t.Errorf("Header(no-such-header) reported present")
	}
	wantName := str("shadow")
	if wantName == "" {
		wantName = str("task")
	}
	if m.Name() != wantName {
		t.Errorf("Name() = %q, want %q", m.Name(), wantName)
	}
}

// allHeaders returns every header of a decoded v2 message: through
// RawHeaders where the package has it (Headers then holds only what the
// caller set), else the Headers field, which originally held them all.
func allHeaders(m *celery.TaskMessage) json.RawMessage {
	if r, ok := any(m).(interface{ RawHeaders() json.RawMessage }); ok {
		return r.RawHeaders()
	}
	return m.Headers
}

func checkV1(t *testing.T, m *celery.TaskMessage, d decodedEnvelope) {
	t.Helper()
	var b map[string]json.RawMessage
	if err := json.Unmarshal(d.Body, &b); err != nil {
		t.Fatalf("fixture v1 body: %v", err)
	}
	str := func(k string) string { s, _ := field[string](t, b, k); return s }
	if m.Task != str("task") || m.ID != str("id") {
		t.Errorf("task/id = %q/%q, want %q/%q", m.Task, m.ID, str("task"), str("id"))
	}
	assertJSONEqual(t, "args", m.Args, b["args"])
	assertJSONEqual(t, "kwargs", m.Kwargs, b["kwargs"])
	checkSignatures(t, "callbacks", m.Embed.Callbacks, b["callbacks"])
	checkSignatures(t, "errbacks", m.Embed.Errbacks, b["errbacks"])
	checkSignature(t, "chord", m.Embed.Chord, b["chord"])
	if m.Embed.Chain != nil {
		t.Errorf("v1 message has a chain: %+v", m.Embed.Chain)
	}
	eta, etaSet := field[string](t, b, "eta")
	checkTime(t, "eta", m.ETA, eta, etaSet)
	exp, expSet := field[string](t, b, "expires")
	checkTime(t, "expires", m.Expires, exp, expSet)
	group := str("group")
	if group == "" {
		group = str("taskset")
	}
	if m.Group != group {
		t.Errorf("Group = %q, want %q", m.Group, group)
	}
	gi, giSet := field[int](t, b, "group_index")
	if giSet != (m.GroupIndex != nil) || (giSet && *m.GroupIndex != gi) {
		t.Errorf("GroupIndex = %v, want %d (set=%v)", m.GroupIndex, gi, giSet)
	}
	retries, _ := field[int](t, b, "retries")
	if m.Retries != retries {
		t.Errorf("Retries = %d, want %d", m.Retries, retries)
	}
	tl, _ := field[[]*float64](t, b, "timelimit")
	checkTimeLimit(t, m.TimeLimit, tl)
	// v1 carries no root id: the task is its own root.
	if m.RootID != m.ID {
		t.Errorf("v1 RootID = %q, want the task id %q", m.RootID, m.ID)
	}
	if m.ParentID != "" || m.Shadow != "" || m.ArgsRepr != "" || m.Origin != "" {
		t.Errorf("v1 message has v2-only fields: %+v", m)
	}
}

func TestFixtureBrokerEnvelopes(t *testing.T) {
	for _, version := range fixtureVersions {
		files := brokerEnvelopeFiles(t, version)
		counts := map[int]int{}
		for _, f := range files {
			name := version + "/" + filepath.Base(f)
			t.Run(name, func(t *testing.T) {
				raw := readFile(t, f)
				d := parseDecoded(t, readFile(t, decodedPath(f)))
				m, err := celery.DecodeTask(raw, celery.DecodeOptions{})
				if err != nil {
					t.Fatalf("DecodeTask: %v", err)
				}
				counts[m.Protocol]++
				checkTaskAgainstDecoded(t, m, d)
			})
		}
		if counts[1] < 7 || counts[2] < 20 {
			t.Errorf("%s: decoded %d v1 and %d v2 envelopes; expected at least 7 and 20", version, counts[1], counts[2])
		}
	}
}

// TestFixtureUnacked decodes the envelopes stored in the kombu "unacked" hash
// ([envelope, exchange, routing_key]).
func TestFixtureUnacked(t *testing.T) {
	for _, version := range fixtureVersions {
		for _, f := range unackedFiles(t, version) {
			t.Run(version+"/"+filepath.Base(f), func(t *testing.T) {
				var triple []json.RawMessage
				if err := json.Unmarshal(readFile(t, f), &triple); err != nil {
					t.Fatal(err)
				}
				if len(triple) != 3 {
					t.Fatalf("unacked value has %d elements, want 3", len(triple))
				}
				var exchange, routingKey string
				if err := json.Unmarshal(triple[1], &exchange); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(triple[2], &routingKey); err != nil {
					t.Fatal(err)
				}
				var dec struct {
					Message json.RawMessage `json:"message"`
				}
				if err := json.Unmarshal(readFile(t, decodedPath(f)), &dec); err != nil {
					t.Fatal(err)
				}
				m, err := celery.DecodeTask(triple[0], celery.DecodeOptions{})
				if err != nil {
					t.Fatalf("DecodeTask(unacked envelope): %v", err)
				}
				checkTaskAgainstDecoded(t, m, parseDecoded(t, dec.Message))
				if m.DeliveryInfo.Exchange != exchange || m.DeliveryInfo.RoutingKey != routingKey {
					t.Errorf("delivery_info %+v disagrees with unacked exchange/routing_key %q/%q",
						m.DeliveryInfo, exchange, routingKey)
				}
			})
		}
	}
}

// TestFixtureSpotChecks pins the facts INDEX.md calls out, with literal
// values, so a bug shared by the decoder and the generic comparison above
// cannot hide.
func TestFixtureSpotChecks(t *testing.T) {
	decode := func(t *testing.T, version, name string) *celery.TaskMessage {
		t.Helper()
		m, err := celery.DecodeTask(readFile(t, filepath.Join(fixtureDir(t, version, "broker"), name)), celery.DecodeOptions{})
		if err != nil {
			t.Fatalf("%s/%s: %v", version, name, err)
		}
		return m
	}
	tokyo := 9 * 3600

	t.Run("prod_v2_countdown30 eta +09:00", func(t *testing.T) {
		m := decode(t, "celery-5.5.3", "prod_v2_countdown30.json")
		want := time.Date(2026, 11, 27, 0, 39, 30, 138767000, time.UTC)
		if m.ETA == nil || !m.ETA.Equal(want) {
			t.Fatalf("ETA = %v, want %v", m.ETA, want)
		}
		if _, off := m.ETA.Zone(); off != tokyo {
			t.Errorf("ETA offset = %d, want %d", off, tokyo)
		}
		if m.Expires != nil {
			t.Errorf("Expires = %v, want nil", m.Expires)
		}
	})
	t.Run("prod_v2_expires60 expires +09:00", func(t *testing.T) {
		m := decode(t, "celery-5.5.3", "prod_v2_expires60.json")
		want := time.Date(2026, 11, 27, 0, 40, 0, 607534000, time.UTC)
		if m.Expires == nil || !m.Expires.Equal(want) {
			t.Fatalf("Expires = %v, want %v", m.Expires, want)
		}
		if _, off := m.Expires.Zone(); off != tokyo {
			t.Errorf("Expires offset = %d, want %d", off, tokyo)
		}
	})
	t.Run("prod_retry_republished_r1", func(t *testing.T) {
		m := decode(t, "celery-5.5.3", "prod_retry_republished_r1.json")
		if m.Retries != 1 || m.ParentID != m.ID || m.ETA == nil {
			t.Errorf("retries=%d parent=%q id=%q eta=%v", m.Retries, m.ParentID, m.ID, m.ETA)
		}
		if _, off := m.ETA.Zone(); off != tokyo {
			t.Errorf("ETA offset = %d, want %d", off, tokyo)
		}
	})
	t.Run("v1 vs v2", func(t *testing.T) {
		for _, v := range fixtureVersions {
			if p := decode(t, v, "v1_args.json").Protocol; p != 1 {
				t.Errorf("%s v1_args protocol %d", v, p)
			}
			if p := decode(t, v, "v2_args.json").Protocol; p != 2 {
				t.Errorf("%s v2_args protocol %d", v, p)
			}
		}
	})
	t.Run("gzip compression header", func(t *testing.T) {
		for _, c := range []struct{ version, file, want string }{
			{"celery-5.2.6", "v2_gzip.json", celery.CompressionZlib},
			{"celery-5.2.6", "v1_gzip.json", celery.CompressionZlib},
			{"celery-5.2.6", "v2_result_compression_gzip_setting.json", celery.CompressionZlib},
			{"celery-5.2.6", "v2_task_compression_gzip_setting.json", ""},
			{"celery-5.5.3", "v2_gzip.json", celery.CompressionZlib},
			{"celery-5.5.3", "v1_gzip.json", celery.CompressionZlib},
			{"celery-5.5.3", "v2_task_compression_gzip_setting.json", celery.CompressionZlib},
			{"celery-5.5.3", "v2_result_compression_gzip_setting.json", ""},
		} {
			m := decode(t, c.version, c.file)
			if m.Compression != c.want {
				t.Errorf("%s/%s Compression = %q, want %q", c.version, c.file, m.Compression, c.want)
			}
			if !strings.HasPrefix(string(m.Args), "[{") {
				t.Errorf("%s/%s args not decoded: %.40s", c.version, c.file, m.Args)
			}
		}
	})
	t.Run("restore_priority9 redelivered", func(t *testing.T) {
		m := decode(t, "celery-5.5.3", "restore_priority9.json")
		if !m.Redelivered || !m.DeliveryInfo.Redelivered {
			t.Errorf("Redelivered = %v, DeliveryInfo.Redelivered = %v, want true", m.Redelivered, m.DeliveryInfo.Redelivered)
		}
		if m.Priority != 9 || m.DeliveryTag != "5b7cde5e-7767-4516-9feb-275065a46883" {
			t.Errorf("priority %d tag %q", m.Priority, m.DeliveryTag)
		}
		if v, ok := m.Header("redelivered"); !ok || string(v) != "true" {
			t.Errorf(`Header("redelivered") = %s, %v`, v, ok)
		}
		if decode(t, "celery-5.5.3", "v2_priority9.json").Redelivered {
			t.Errorf("a fresh message is not redelivered")
		}
	})
	t.Run("priorities", func(t *testing.T) {
		if p := decode(t, "celery-5.2.6", "v2_priority5.json").Priority; p != 5 {
			t.Errorf("priority5 = %d", p)
		}
		if p := decode(t, "celery-5.2.6", "v2_priority9.json").Priority; p != 9 {
			t.Errorf("priority9 = %d", p)
		}
	})
	t.Run("timelimits hard then soft", func(t *testing.T) {
		for _, v := range fixtureVersions {
			for _, f := range []string{"v2_timelimits.json", "v1_timelimits.json"} {
				m := decode(t, v, f)
				if m.TimeLimit.Hard() != 120 || m.TimeLimit.Soft() != 90 {
					t.Errorf("%s/%s timelimit hard=%v soft=%v, want 120/90", v, f, m.TimeLimit.Hard(), m.TimeLimit.Soft())
				}
			}
		}
	})
	t.Run("chain3 reversed", func(t *testing.T) {
		m := decode(t, "celery-5.2.6", "v2_chain3.json")
		if m.ID != "4abff819-c54e-531c-bc72-777ca45af280" {
			t.Errorf("head id %q", m.ID)
		}
		c := m.Embed.Chain
		if len(c) != 2 {
			t.Fatalf("chain has %d steps, want 2", len(c))
		}
		// The LAST element runs next.
		if !strings.Contains(string(c[1].Options), "19eb5770-ebf2-5234-9ff2-48d6cba1631c") ||
			!strings.Contains(string(c[0].Options), "9b6c77bb-69ed-5e9c-bc83-eb376cafbeec") {
			t.Errorf("chain order: %s / %s", c[0].Options, c[1].Options)
		}
		if string(c[1].Args) != "[3]" || string(c[0].Args) != "[4]" {
			t.Errorf("chain args %s %s", c[0].Args, c[1].Args)
		}
	})
	t.Run("exhausted chain is [] not null", func(t *testing.T) {
		for _, v := range fixtureVersions {
			m := decode(t, v, "chain_step2_from_worker.json")
			if m.Embed.Chain == nil || len(m.Embed.Chain) != 0 {
				t.Errorf("%s chain = %#v, want empty non-nil", v, m.Embed.Chain)
			}
			if m.ParentID != "04dbe424-345e-5faf-8c04-6b2fc86aea51" || m.RootID != m.ParentID {
				t.Errorf("%s parent/root = %q/%q", v, m.ParentID, m.RootID)
			}
		}
	})
	t.Run("link callbacks and errbacks", func(t *testing.T) {
		for _, v := range fixtureVersions {
			for _, f := range []string{"v2_link.json", "v1_link.json"} {
				m := decode(t, v, f)
				if len(m.Embed.Callbacks) != 1 || m.Embed.Callbacks[0].Task != "celery_tasks.add" ||
					string(m.Embed.Callbacks[0].Args) != "[10]" {
					t.Errorf("%s/%s callbacks %+v", v, f, m.Embed.Callbacks)
				}
				if len(m.Embed.Errbacks) != 1 || m.Embed.Errbacks[0].Task != "celery_tasks.handle_error" {
					t.Errorf("%s/%s errbacks %+v", v, f, m.Embed.Errbacks)
				}
			}
		}
	})
	t.Run("chord header", func(t *testing.T) {
		for _, v := range fixtureVersions {
			for i, f := range []string{"v2_chord.0.json", "v2_chord.1.json"} {
				m := decode(t, v, f)
				if m.Group != "e8bd8912-c88c-59f1-a44c-dc05dfabcc11" || m.GroupIndex == nil || *m.GroupIndex != i {
					t.Errorf("%s/%s group %q index %v", v, f, m.Group, m.GroupIndex)
				}
				if m.Embed.Chord == nil || m.Embed.Chord.Task != "celery_tasks.tsum" ||
					!strings.Contains(string(m.Embed.Chord.Options), "84760d07-97b4-5c5e-8af3-673b23ae2364") {
					t.Errorf("%s/%s chord %+v", v, f, m.Embed.Chord)
				}
			}
		}
	})
	t.Run("plain group index null in 5.2.6, numbered in 5.5.3", func(t *testing.T) {
		m := decode(t, "celery-5.2.6", "v2_group.1.json")
		if m.GroupIndex != nil || m.Group != "d2baf0b1-301b-5a75-948e-adb49fa3790a" {
			t.Errorf("5.2.6 group %q index %v", m.Group, m.GroupIndex)
		}
		m = decode(t, "celery-5.5.3", "v2_group.1.json")
		if m.GroupIndex == nil || *m.GroupIndex != 1 {
			t.Errorf("5.5.3 group index %v, want 1", m.GroupIndex)
		}
	})
	t.Run("5.5.3 new headers", func(t *testing.T) {
		m := decode(t, "celery-5.5.3", "v2_args.json")
		if string(m.Stamps) != "{}" || m.StampedHeaders != nil || m.ReplacedTaskNesting != 0 {
			t.Errorf("stamps %s stamped_headers %v nesting %d", m.Stamps, m.StampedHeaders, m.ReplacedTaskNesting)
		}
		if _, ok := m.Header("replaced_task_nesting"); !ok {
			t.Errorf("replaced_task_nesting header missing")
		}
		if _, ok := decode(t, "celery-5.2.6", "v2_args.json").Header("stamps"); ok {
			t.Errorf("5.2.6 message has a stamps header")
		}
	})
	t.Run("chord callback args", func(t *testing.T) {
		m := decode(t, "celery-5.2.6", "chord_callback_from_worker.json")
		if string(m.Args) != "[[2, 2]]" {
			t.Errorf("args %s", m.Args)
		}
	})
}

// TestFixturePriorityLists checks that the list each message was LPUSHed to
// (manifest.json "key") is the one PriorityScheme.List computes.
func TestFixturePriorityLists(t *testing.T) {
	custom := celery.PriorityScheme{Steps: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, Sep: ":"}
	for _, version := range fixtureVersions {
		var manifest struct {
			Items []struct {
				File    string  `json:"file"`
				Key     *string `json:"key"`
				Command string  `json:"command"`
			} `json:"items"`
		}
		if err := json.Unmarshal(readFile(t, filepath.Join(fixtureDir(t, version), "manifest.json")), &manifest); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range manifest.Items {
			if !strings.HasPrefix(it.File, "broker/") || !strings.HasSuffix(it.File, ".json") || it.Key == nil ||
				!strings.Contains(it.Command, "PUSH") {
				continue
			}
			m, err := celery.DecodeTask(readFile(t, filepath.Join(fixtureDir(t, version), it.File)), celery.DecodeOptions{})
			if err != nil {
				t.Fatalf("%s: %v", it.File, err)
			}
			scheme := celery.DefaultPriorityScheme
			if strings.Contains(it.File, "custom_steps") {
				scheme = custom
			}
			want := unescapeHex(t, *it.Key)
			if got := scheme.List(m.DeliveryInfo.RoutingKey, m.Priority); got != want {
				t.Errorf("%s/%s: List(%q, %d) = %q, want %q", version, it.File, m.DeliveryInfo.RoutingKey, m.Priority, got, want)
			}
			if got := scheme.QueueOf(want); got != m.DeliveryInfo.RoutingKey {
				t.Errorf("%s/%s: QueueOf(%q) = %q", version, it.File, want, got)
			}
			n++
		}
		if n < 30 {
			t.Errorf("%s: checked only %d pushed messages", version, n)
		}
	}
}

func TestFixtureBrpopOrder(t *testing.T) {
	for _, version := range fixtureVersions {
		for _, c := range []struct {
			file   string
			scheme celery.PriorityScheme
		}{
			{"v2_priority9.worker_brpop.txt", celery.DefaultPriorityScheme},
			{"v2_priority9.worker_brpop.txt", celery.PriorityScheme{}}, // zero value = kombu defaults
			{"v2_priority9_custom_steps.worker_brpop.txt", celery.PriorityScheme{Steps: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, Sep: ":"}},
		} {
			args := unquoteRedisRepr(t, string(readFile(t, filepath.Join(fixtureDir(t, version, "broker"), c.file))))
			if len(args) < 3 || args[0] != "BRPOP" || args[len(args)-1] != "1" {
				t.Fatalf("unexpected MONITOR line %q", args)
			}
			want := args[1 : len(args)-1]
			got := c.scheme.Lists("qa_generation")
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("%s/%s Lists = %q, want %q", version, c.file, got, want)
			}
			got = c.scheme.ConsumeOrder([]string{"qa_generation"})
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("%s/%s ConsumeOrder = %q, want %q", version, c.file, got, want)
			}
		}
	}
}

func TestFixtureBindingMember(t *testing.T) {
	for _, version := range fixtureVersions {
		got := celery.BindingMember("qa_generation", "", "qa_generation")
		want := string(readFile(t, filepath.Join(fixtureDir(t, version, "keys"), "_kombu.binding.qa_generation.member0.bin")))
		if got != want {
			t.Errorf("%s: BindingMember = %q, want %q", version, got, want)
		}
	}
	if got := celery.BindingKey("qa_generation"); got != "_kombu.binding.qa_generation" {
		t.Errorf("BindingKey = %q", got)
	}
}

// TestFixtureArgsRepr checks ReprJSON against the argsrepr/kwargsrepr Python
// wrote, for the fixtures whose arguments are simple enough that reprlib's
// nesting limit ("[...]") and dict insertion order do not come into play.
func TestFixtureArgsRepr(t *testing.T) {
	n := 0
	for _, version := range fixtureVersions {
		for _, f := range brokerEnvelopeFiles(t, version) {
			m, err := celery.DecodeTask(readFile(t, f), celery.DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Protocol != 2 || !strings.HasPrefix(m.ArgsRepr, "(") || strings.ContainsAny(m.ArgsRepr, "{'") {
				continue
			}
			if got := celery.ReprJSON(m.Args, "()"); got != m.ArgsRepr {
				t.Errorf("%s/%s: ReprJSON(%s) = %q, Python argsrepr %q", version, filepath.Base(f), m.Args, got, m.ArgsRepr)
			}
			if m.KwargsRepr == "{}" {
				if got := celery.ReprJSON(m.Kwargs, "{}"); got != "{}" {
					t.Errorf("kwargsrepr %q", got)
				}
			}
			n++
		}
	}
	if n < 10 {
		t.Errorf("only %d fixtures compared", n)
	}
}
