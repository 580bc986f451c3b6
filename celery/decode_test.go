package celery_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/celery"
)

const v2Headers = `{"lang": "py", "task": "tasks.add", "id": "id-1", "root_id": "id-1", "retries": 0}`

// envelope builds a kombu envelope. body is base64-encoded unless
// bodyEncoding is "" or "utf-8"; contentType "" omits the key.
func envelope(headers string, body []byte, contentType, bodyEncoding string) []byte {
	env := map[string]any{
		"content-encoding": "utf-8",
		"headers":          json.RawMessage(headers),
		"properties": map[string]any{
			"correlation_id": "id-1", "reply_to": "", "delivery_mode": 2, "priority": 0,
			"delivery_info": map[string]any{"exchange": "", "routing_key": "celery"},
			"body_encoding": bodyEncoding, "delivery_tag": "tag-1",
		},
	}
	if bodyEncoding == "base64" {
		env["body"] = base64.StdEncoding.EncodeToString(body)
	} else {
		env["body"] = string(body)
	}
	if contentType != "" {
		env["content-type"] = contentType
	}
	b, err := json.Marshal(env)
	if err != nil {
		panic(err)
	}
	return b
}

func v2Env(body string) []byte {
	return envelope(v2Headers, []byte(body), "application/json", "base64")
}

func TestDecodeTaskMalformed(t *testing.T) {
	validBody := `[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`
	replace := func(raw []byte, old, new string) []byte {
		s := string(raw)
		if !strings.Contains(s, old) {
			panic("no " + old)
		}
		return []byte(strings.Replace(s, old, new, 1))
	}
	cases := []struct {
		name     string
		raw      []byte
		opts     celery.DecodeOptions
		excType  string
		excMod   string
		taskID   string
		contains string
	}{
		{"not JSON", []byte("this is not json"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "", "not valid JSON"},
		{"truncated envelope", []byte(`{"body": "W1td`), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "", ""},
		{"envelope is an array", []byte(`[1, 2, 3]`), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "", ""},
		{"headers not an object", envelope(`[1, 2]`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "", "headers"},
		{"invalid base64", replace(v2Env(validBody), base64.StdEncoding.EncodeToString([]byte(validBody)), "!!not*base64!!"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", "base64"},
		{"unknown body_encoding", envelope(v2Headers, []byte(validBody), "application/json", "rot13"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", "body_encoding"},
		{"body not JSON", v2Env(`[[2, 3], {}, {`), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", ""},
		{"body an object", v2Env(`{"args": []}`), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", ""},
		{"2-element body", v2Env(`[[2, 3], {}]`), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", "2 elements"},
		{"4-element body", v2Env(`[[2, 3], {}, {}, {}]`), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", "4 elements"},
		{"kwargs not an object", v2Env(`[[2, 3], [4], {}]`), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "id-1", "kwargs"},
		{"kwargs a string", v2Env(`[[2, 3], "k", {}]`), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "id-1", "kwargs"},
		{"args not a list", v2Env(`[{"a": 1}, {}, {}]`), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "id-1", "args"},
		{"args a string", v2Env(`["abc", {}, {}]`), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "id-1", "args"},
		{"embed malformed", v2Env(`[[], {}, {"callbacks": 5}]`), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", "embed"},
		{"pickle", envelope(v2Headers, []byte("\x80\x04\x95"), "application/x-python-serialize", "base64"), celery.DecodeOptions{}, "ContentDisallowed", celery.ModuleKombu, "id-1", "untrusted"},
		{"pickle even when accepted", envelope(v2Headers, []byte("\x80\x04\x95"), "application/x-python-serialize", "base64"), celery.DecodeOptions{Accept: []string{"json", "pickle"}}, "ContentDisallowed", celery.ModuleKombu, "id-1", "JSON only"},
		{"yaml", envelope(v2Headers, []byte("- - 1\n"), "application/x-yaml", "base64"), celery.DecodeOptions{}, "ContentDisallowed", celery.ModuleKombu, "id-1", ""},
		{"json not in accept", v2Env(validBody), celery.DecodeOptions{Accept: []string{"yaml"}}, "ContentDisallowed", celery.ModuleKombu, "id-1", ""},
		{"missing content-type", envelope(v2Headers, []byte(validBody), "", "base64"), celery.DecodeOptions{}, "ContentDisallowed", celery.ModuleKombu, "id-1", "content-type"},
		{"bad eta", envelope(`{"task": "tasks.add", "id": "id-1", "eta": "tomorrow"}`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "id-1", "eta"},
		{"impossible eta", envelope(`{"task": "tasks.add", "id": "id-1", "eta": "2026-02-30T00:00:00+00:00"}`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "id-1", "eta"},
		{"bad expires", envelope(`{"task": "tasks.add", "id": "id-1", "expires": "2026-11-27T25:00:00"}`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "id-1", "expires"},
		{"v2 without id", envelope(`{"task": "tasks.add"}`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "", "id"},
		{"unknown format (array body, no task header)", envelope(`{}`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "", "unknown message format"},
		{"unknown format (object without task)", envelope(`{}`, []byte(`{"args": [], "kwargs": {}}`), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "", "unknown message format"},
		{"unknown format (null headers, string body)", envelope(`null`, []byte(`"hello"`), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "", "unknown message format"},
		{"v1 without id", envelope(`{}`, []byte(`{"task": "tasks.add", "args": [], "kwargs": {}}`), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "", "id"},
		{"v1 kwargs not an object", envelope(`{}`, []byte(`{"task": "tasks.add", "id": "v1-id", "args": [], "kwargs": [1]}`), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "v1-id", "kwargs"},
		{"v1 args not a list", envelope(`{}`, []byte(`{"task": "tasks.add", "id": "v1-id", "args": 5, "kwargs": {}}`), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "v1-id", "args"},
		{"v1 bad eta", envelope(`{}`, []byte(`{"task": "tasks.add", "id": "v1-id", "args": [], "kwargs": {}, "eta": "2026-13-01T00:00:00"}`), "application/json", "base64"), celery.DecodeOptions{}, "InvalidTaskError", celery.ModuleCelery, "v1-id", "eta"},
		{"compression header, plain body", envelope(`{"task": "tasks.add", "id": "id-1", "compression": "application/x-gzip"}`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", "decompress"},
		{"gzip file instead of zlib", envelope(`{"task": "tasks.add", "id": "id-1", "compression": "application/x-gzip"}`, []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"), "application/json", "base64"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", "decompress"},
		{"unsupported compression", envelope(`{"task": "tasks.add", "id": "id-1", "compression": "application/x-brotli"}`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", "brotli"},
		{"bad xz", envelope(`{"task": "tasks.add", "id": "id-1", "compression": "application/x-lzma"}`, []byte("\xfd7zXZ\x00garbage"), "application/json", "base64"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", ""},
		{"bad bzip2", envelope(`{"task": "tasks.add", "id": "id-1", "compression": "application/x-bz2"}`, []byte("BZh9garbage"), "application/json", "base64"), celery.DecodeOptions{}, "DecodeError", celery.ModuleKombu, "id-1", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := celery.DecodeTask(c.raw, c.opts)
			if err == nil {
				t.Fatalf("DecodeTask succeeded: %+v", m)
			}
			if m != nil {
				t.Errorf("DecodeTask returned a message with the error")
			}
			var me *celery.MessageError
			if !errors.As(err, &me) {
				t.Fatalf("error %T %v is not a *MessageError", err, err)
			}
			if me.Exc == nil {
				t.Fatalf("MessageError without Exc")
			}
			if me.Exc.Type != c.excType || me.Exc.Module != c.excMod {
				t.Errorf("Exc = %s.%s (%v), want %s.%s", me.Exc.Module, me.Exc.Type, me.Exc, c.excMod, c.excType)
			}
			if me.TaskID != c.taskID {
				t.Errorf("TaskID = %q, want %q", me.TaskID, c.taskID)
			}
			if c.taskID != "" && (me.Task != "tasks.add" || !strings.Contains(err.Error(), c.taskID)) {
				t.Errorf("Task = %q, Error() = %q", me.Task, err.Error())
			}
			if !strings.Contains(err.Error(), c.contains) {
				t.Errorf("Error() = %q, want it to mention %q", err.Error(), c.contains)
			}
			var exc *celery.Exception
			if !errors.As(err, &exc) || exc != me.Exc {
				t.Errorf("errors.As(*Exception) does not reach Exc")
			}
			// The exception can be stored as a FAILURE result.
			if b, err := json.Marshal(me.Exc); err != nil || !json.Valid(b) {
				t.Errorf("Exc does not encode: %v", err)
			}
		})
	}
}

func TestDecodeTaskVariants(t *testing.T) {
	validBody := `[[2, 3], {"k": 1}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`
	check := func(t *testing.T, raw []byte, opts celery.DecodeOptions) *celery.TaskMessage {
		t.Helper()
		m, err := celery.DecodeTask(raw, opts)
		if err != nil {
			t.Fatalf("DecodeTask: %v", err)
		}
		return m
	}
	t.Run("raw body without body_encoding", func(t *testing.T) {
		m := check(t, envelope(v2Headers, []byte(validBody), "application/json", ""), celery.DecodeOptions{})
		assertJSONEqual(t, "args", m.Args, []byte("[2, 3]"))
	})
	t.Run("body_encoding utf-8 (kombu >= 5.4)", func(t *testing.T) {
		m := check(t, envelope(v2Headers, []byte(validBody), "application/json", "utf-8"), celery.DecodeOptions{})
		assertJSONEqual(t, "kwargs", m.Kwargs, []byte(`{"k": 1}`))
	})
	t.Run("unpadded base64", func(t *testing.T) {
		body := `[[1], {}, {}]` // 13 bytes: padded encoding ends in "="
		padded := base64.StdEncoding.EncodeToString([]byte(body))
		if !strings.HasSuffix(padded, "=") {
			t.Fatal("test body needs padding")
		}
		env := string(v2Env(body))
		if !strings.Contains(env, `"`+padded+`"`) {
			t.Fatalf("padded body not in %s", env)
		}
		raw := []byte(strings.Replace(env, `"`+padded+`"`, `"`+strings.TrimRight(padded, "=")+`"`, 1))
		m := check(t, raw, celery.DecodeOptions{})
		assertJSONEqual(t, "args", m.Args, []byte("[1]"))
	})
	t.Run("serializer names in accept", func(t *testing.T) {
		check(t, v2Env(validBody), celery.DecodeOptions{Accept: []string{"json"}})
		check(t, v2Env(validBody), celery.DecodeOptions{Accept: []string{"yaml", "application/json"}})
	})
	t.Run("NaN in args and headers", func(t *testing.T) {
		raw := envelope(`{"task": "tasks.add", "id": "id-1", "timelimit": ["PLACEHOLDER", 10]}`, []byte(`[[NaN, 1, -Infinity], {"x": Infinity}, {}]`), "application/json", "base64")
		// json.Marshal refuses bare NaN, so patch it into the headers.
		raw = []byte(strings.Replace(string(raw), `"PLACEHOLDER"`, "NaN", 1))
		m := check(t, raw, celery.DecodeOptions{})
		assertJSONEqual(t, "args", m.Args, []byte("[null, 1, null]"))
		assertJSONEqual(t, "kwargs", m.Kwargs, []byte(`{"x": null}`))
		if m.TimeLimit[0] != nil || m.TimeLimit.Soft() != 10 {
			t.Errorf("timelimit %v %v", m.TimeLimit[0], m.TimeLimit.Soft())
		}
	})
	t.Run("redelivered from delivery_info alone", func(t *testing.T) {
		patch := func(raw []byte, old, new string) []byte {
			if !strings.Contains(string(raw), old) {
				t.Fatalf("%q not in %s", old, raw)
			}
			return []byte(strings.Replace(string(raw), old, new, 1))
		}
		raw := patch(v2Env(validBody), `"routing_key":"celery"`, `"routing_key":"celery","redelivered":true`)
		m := check(t, raw, celery.DecodeOptions{})
		if !m.Redelivered || !m.DeliveryInfo.Redelivered {
			t.Errorf("Redelivered %v / %v, want true", m.Redelivered, m.DeliveryInfo.Redelivered)
		}
		raw = patch(v2Env(validBody), `"id":"id-1"`, `"id":"id-1","redelivered":true`)
		if m := check(t, raw, celery.DecodeOptions{}); !m.Redelivered || m.DeliveryInfo.Redelivered {
			t.Errorf("header only: Redelivered %v / %v", m.Redelivered, m.DeliveryInfo.Redelivered)
		}
		if m := check(t, v2Env(validBody), celery.DecodeOptions{}); m.Redelivered {
			t.Errorf("fresh message reported redelivered")
		}
	})
	t.Run("null args, kwargs and embed", func(t *testing.T) {
		m := check(t, v2Env(`[null, null, null]`), celery.DecodeOptions{})
		if string(m.Args) != "[]" || string(m.Kwargs) != "{}" {
			t.Errorf("args %s kwargs %s", m.Args, m.Kwargs)
		}
		if m.Embed.Callbacks != nil || m.Embed.Chain != nil || m.Embed.Chord != nil {
			t.Errorf("embed %+v", m.Embed)
		}
	})
	t.Run("empty embed object", func(t *testing.T) {
		m := check(t, v2Env(`[[], {}, {}]`), celery.DecodeOptions{})
		if m.Embed.Chain != nil {
			t.Errorf("chain %v", m.Embed.Chain)
		}
	})
	t.Run("unknown headers and shadow", func(t *testing.T) {
		m := check(t, envelope(`{"task": "tasks.add", "id": "id-1", "shadow": "nice.name", "x-custom": [1], "retries": "3"}`, []byte(validBody), "application/json", "base64"), celery.DecodeOptions{})
		if m.Name() != "nice.name" || m.Task != "tasks.add" || m.Retries != 3 {
			t.Errorf("name %q task %q retries %d", m.Name(), m.Task, m.Retries)
		}
		if v, ok := m.Header("x-custom"); !ok || string(v) != "[1]" {
			t.Errorf("x-custom = %s %v", v, ok)
		}
	})
	t.Run("v2 naive eta is UTC even with NaiveLocation", func(t *testing.T) {
		m := check(t, envelope(`{"task": "tasks.add", "id": "id-1", "eta": "2024-01-02T03:04:05"}`, []byte(validBody), "application/json", "base64"),
			celery.DecodeOptions{NaiveLocation: time.FixedZone("JST", 9*3600)})
		if want := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC); m.ETA == nil || !m.ETA.Equal(want) {
			t.Errorf("ETA %v, want %v", m.ETA, want)
		}
	})
	t.Run("v1 utc=false uses NaiveLocation", func(t *testing.T) {
		body := `{"task": "tasks.add", "id": "v1", "args": [], "kwargs": {}, "eta": "2024-01-02T03:04:05", "expires": "2024-01-02T04:04:05", "utc": false, "taskset": "ts-1"}`
		m := check(t, envelope(`{}`, []byte(body), "application/json", "base64"), celery.DecodeOptions{NaiveLocation: time.FixedZone("JST", 9*3600)})
		if want := time.Date(2024, 1, 1, 18, 4, 5, 0, time.UTC); m.ETA == nil || !m.ETA.Equal(want) {
			t.Errorf("ETA %v, want %v", m.ETA, want)
		}
		if want := time.Date(2024, 1, 1, 19, 4, 5, 0, time.UTC); m.Expires == nil || !m.Expires.Equal(want) {
			t.Errorf("Expires %v, want %v", m.Expires, want)
		}
		if m.Group != "ts-1" {
			t.Errorf("taskset not used as group: %q", m.Group)
		}
		// utc defaults to true.
		body = strings.Replace(body, `"utc": false`, `"utc": true`, 1)
		m = check(t, envelope(`{}`, []byte(body), "application/json", "base64"), celery.DecodeOptions{NaiveLocation: time.FixedZone("JST", 9*3600)})
		if want := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC); !m.ETA.Equal(want) {
			t.Errorf("utc=true ETA %v, want %v", m.ETA, want)
		}
	})
	t.Run("minimal v1", func(t *testing.T) {
		m := check(t, envelope(`{}`, []byte(`{"task": "tasks.add", "id": "v1", "args": [20, 22], "kwargs": {}}`), "application/json", "base64"), celery.DecodeOptions{})
		if m.Protocol != 1 || m.RootID != "v1" || string(m.Args) != "[20, 22]" {
			t.Errorf("%+v", m)
		}
	})
	// Bodies compressed by Python 3.11 (bz2/lzma/zlib .compress()).
	for _, c := range []struct{ mime, b64 string }{
		{celery.CompressionBzip2, "QlpoOTFBWSZTWd41FmMAABObgFAEcBAADj9tmgogAEhppQ0GI2oNqPUEqmTCYCMho9JYAEAjl/DaXxQtdKQ0cNrZAuStn2HpFfdEcYrRwzdY4K7MUv+wRgiZE+B5SOhdyRThQkN41FmM"},
		{celery.CompressionXZ, "/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4ABdAENdAC3gwFghFc2aLE8PhabQwy14jW9YUfERofZr0i6j1ovgmU7aB3VIjcPI3BYesvI4XSFXoy3XcSCkEUQteewRDgMcEAAAAJvICGrC5Pw4AAFfXkOIdpEftvN9AQAAAAAEWVo="},
		{celery.CompressionZlib, "eJyLjjbUUTCK1VGoVspWslJQiik1MEhLVqoFCSQn5uQkJSZnFwMl8kpzcnQUlFKLitBEkjMSM/OQuflFKVBubSwAKUcdNw=="},
	} {
		t.Run("python "+c.mime, func(t *testing.T) {
			raw := []byte(`{"body": "` + c.b64 + `", "content-encoding": "utf-8", "content-type": "application/json",
				"headers": {"task": "tasks.add", "id": "id-1", "compression": "` + c.mime + `"},
				"properties": {"delivery_info": {"exchange": "", "routing_key": "celery"}, "body_encoding": "base64", "delivery_tag": "t"}}`)
			m := check(t, raw, celery.DecodeOptions{})
			assertJSONEqual(t, "args", m.Args, []byte("[1, 2]"))
			assertJSONEqual(t, "kwargs", m.Kwargs, []byte(`{"k": "ü"}`))
			if m.Compression != c.mime {
				t.Errorf("Compression %q", m.Compression)
			}
		})
	}
}

// TestDecodeEnvelope covers the two-step API (ParseEnvelope + DecodeEnvelope)
// the broker uses for unacked values.
func TestDecodeEnvelope(t *testing.T) {
	raw := readFile(t, filepath.Join(fixtureDir(t, "celery-5.2.6", "broker"), "v2_gzip.json"))
	env, err := celery.ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	if env.Properties.BodyEncoding != "base64" || env.Properties.DeliveryInfo.RoutingKey != "qa_generation" {
		t.Errorf("properties %+v", env.Properties)
	}
	body, err := env.DecodeBody(celery.CompressionZlib, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(body), `[[{"chunk_id": "chunk-0001"`) {
		t.Errorf("body %.60s", body)
	}
	m, err := celery.DecodeEnvelope(env, celery.DecodeOptions{})
	if err != nil || m.Compression != celery.CompressionZlib {
		t.Errorf("DecodeEnvelope: %v %v", m, err)
	}
	if _, err := celery.ParseEnvelope([]byte("{")); err == nil {
		t.Errorf("ParseEnvelope accepted garbage")
	}
	// Retried 5.2.6 messages carry extra properties.
	raw = readFile(t, filepath.Join(fixtureDir(t, "celery-5.2.6", "broker"), "retry_republished_r1.json"))
	env, err = celery.ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	if env.Properties.Origin == "" {
		t.Errorf("retry origin property not read")
	}
	// Expiration is kept (ms as a string).
	raw = readFile(t, filepath.Join(fixtureDir(t, "celery-5.2.6", "broker"), "v2_expires60.json"))
	env, err = celery.ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	var exp string
	if err := json.Unmarshal(env.Properties.Expiration, &exp); err != nil {
		t.Fatalf("expiration %s: %v", env.Properties.Expiration, err)
	}
	if n, err := time.ParseDuration(exp + "ms"); err != nil || n <= 0 || n > 61*time.Second {
		t.Errorf("expiration %q", exp)
	}
}
