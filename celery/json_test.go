package celery_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qagen/qagen/celery"
)

func TestUnmarshalNonFinite(t *testing.T) {
	cases := []struct {
		in   string
		want string // JSON of the decoded value
	}{
		{`{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1.5}`, `{"a":null,"b":null,"c":null,"d":1.5}`},
		{`[NaN, -Infinity, Infinity]`, `[null,null,null]`},
		{`NaN`, `null`},
		// Inside strings the tokens are text and must survive untouched.
		{`{"s": "NaN Infinity -Infinity", "x": NaN}`, `{"s":"NaN Infinity -Infinity","x":null}`},
		{`{"s": "say \"NaN\"", "x": Infinity}`, `{"s":"say \"NaN\"","x":null}`},
		{`{"s": "ends with backslash \\", "n": NaN, "t": "\\\"Infinity\\\""}`, `{"s":"ends with backslash \\","n":null,"t":"\\\"Infinity\\\""}`},
		{`{"NaN": NaN}`, `{"NaN":null}`},
		{`{"k": "\u0022NaN"}`, `{"k":"\"NaN"}`},
		// Standard JSON is untouched.
		{`{"s": "NaN"}`, `{"s":"NaN"}`},
		{`[1e308, -0, 0.1]`, `[1e308,-0,0.1]`},
	}
	for _, c := range cases {
		var v any
		if err := celery.Unmarshal([]byte(c.in), &v); err != nil {
			t.Errorf("Unmarshal(%s): %v", c.in, err)
			continue
		}
		got, _ := json.Marshal(v)
		assertJSONEqual(t, c.in, got, []byte(c.want))
	}
	// Typed targets: a non-finite float decodes as null, leaving zero.
	var s struct {
		F  float64  `json:"f"`
		P  *float64 `json:"p"`
		OK int      `json:"ok"`
	}
	if err := celery.Unmarshal([]byte(`{"f": Infinity, "p": NaN, "ok": 3}`), &s); err != nil || s.F != 0 || s.P != nil || s.OK != 3 {
		t.Errorf("typed: %+v, %v", s, err)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	for _, in := range []string{
		``, `{`, `{"a": nan}`, `{"a": NaNa}`, `{"a": -NaN}`, `{"a": Inf}`, `[1 NaN]`, `{"a": "NaN}`, `not json`,
		`{"a": 1} trailing`, `["Infinity" NaN]`,
	} {
		var v any
		if err := celery.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("Unmarshal(%q) = %v, want an error", in, v)
		}
	}
	// Type errors are reported as such (not retried as syntax errors).
	var n int
	if err := celery.Unmarshal([]byte(`"x"`), &n); err == nil {
		t.Errorf("Unmarshal string into int succeeded")
	}
}

// typedArgs returns args and kwargs of the 5.5.3 v2_typed_args capture.
func typedArgs(t *testing.T) (args, kwargs json.RawMessage) {
	t.Helper()
	m, err := celery.DecodeTask(readFile(t, filepath.Join(fixtureDir(t, "celery-5.5.3", "broker"), "v2_typed_args.json")), celery.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m.Args, m.Kwargs
}

func TestUnwrapMarkersTypedArgsFixture(t *testing.T) {
	args, kwargs := typedArgs(t)
	if !celery.HasMarkers(args) || !celery.HasMarkers(kwargs) {
		t.Fatalf("fixture has no markers?")
	}
	gotArgs, err := celery.UnwrapMarkers(args)
	if err != nil {
		t.Fatalf("UnwrapMarkers(args): %v", err)
	}
	assertJSONEqual(t, "args", gotArgs, []byte(`[{
		"datetime_utc": "2024-01-02T03:04:05.678901+00:00",
		"datetime_tokyo": "2024-01-02T12:04:05+09:00",
		"datetime_naive": "2024-01-02T03:04:05",
		"date": "2024-01-02",
		"time": "03:04:05.000600",
		"decimal": "1.50",
		"uuid": "00000000-0000-0000-0000-000000000005",
		"bytes_utf8": "abc",
		"bytes_binary": "/wA=",
		"tuple": [1, 2],
		"three_key_lookalike": {"__type__": "x", "__value__": 1, "n": 2}
	}]`))
	gotKwargs, err := celery.UnwrapMarkers(kwargs)
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, "kwargs", gotKwargs, []byte(`{"when": "2024-01-02T03:04:05+00:00"}`))

	// Unwrapped datetimes are strings ParseTime reads.
	var v []map[string]any
	if err := json.Unmarshal(gotArgs, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"datetime_utc", "datetime_tokyo", "datetime_naive", "date"} {
		if _, err := celery.ParseTime(v[0][k].(string), nil); err != nil {
			t.Errorf("%s %q: %v", k, v[0][k], err)
		}
	}

	// The result of the same echo task (result/success_echo_typed.json).
	r, err := celery.ParseResult(readFile(t, filepath.Join(fixtureDir(t, "celery-5.5.3", "result"), "success_echo_typed.json")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := celery.UnwrapMarkers(r.Result)
	if err != nil {
		t.Fatalf("UnwrapMarkers(result): %v", err)
	}
	if celery.HasMarkers(res) && strings.Contains(string(res), `"__type__":"datetime"`) {
		t.Errorf("result still has markers: %s", res)
	}
	if !strings.Contains(string(res), `"00000000-0000-0000-0000-000000000005"`) {
		t.Errorf("uuid not unwrapped in result: %s", res)
	}
}

func TestUnwrapMarkers(t *testing.T) {
	ok := []struct{ in, want string }{
		{`{"__type__": "uuid", "__value__": {"hex": "0123456789ABCDEF0123456789abcdef"}}`, `"01234567-89ab-cdef-0123-456789abcdef"`},
		// kombu 5.3.0 added a version key.
		{`{"__type__": "uuid", "__value__": {"hex": "00000000000000000000000000000005", "version": 4}}`, `"00000000-0000-0000-0000-000000000005"`},
		{`{"__type__": "uuid", "__value__": "00000000-0000-0000-0000-000000000005"}`, `"00000000-0000-0000-0000-000000000005"`},
		{`{"__value__": "2024-01-02", "__type__": "date"}`, `"2024-01-02"`},
		{`[[{"__type__": "decimal", "__value__": "1.10"}]]`, `[["1.10"]]`},
		{`{"a": {"b": {"__type__": "time", "__value__": "01:02:03"}}}`, `{"a": {"b": "01:02:03"}}`},
		// Lookalikes are not markers.
		{`{"__type__": "x"}`, `{"__type__": "x"}`},
		{`{"__type__": "frozenset", "__value__": [1], "extra": 1}`, `{"__type__": "frozenset", "__value__": [1], "extra": 1}`},
		{`{"__type__": "x", "value": 1}`, `{"__type__": "x", "value": 1}`},
		// Big integers next to markers keep every digit.
		{`{"n": 12345678901234567890, "f": 0.1, "d": {"__type__": "decimal", "__value__": "1"}}`, `{"n": 12345678901234567890, "f": 0.1, "d": "1"}`},
	}
	for _, c := range ok {
		got, err := celery.UnwrapMarkers(json.RawMessage(c.in))
		if err != nil {
			t.Errorf("UnwrapMarkers(%s): %v", c.in, err)
			continue
		}
		assertJSONEqual(t, c.in, got, []byte(c.want))
	}
	bad := []string{
		`{"__type__": "frozenset", "__value__": [1]}`,
		`[1, {"__type__": "pickle", "__value__": "gASV"}]`,
		`{"__type__": 5, "__value__": "x"}`,
		`{"__type__": null, "__value__": "x"}`,
		`{"__type__": "datetime", "__value__": 17}`,
		`{"__type__": "bytes", "__value__": null}`,
		`{"__type__": "uuid", "__value__": {"hex": "xyz"}}`,
		`{"__type__": "uuid", "__value__": {"hex": "0000"}}`,
		`{"__type__": "uuid", "__value__": 5}`,
		`{"__type__": "datetime", "__value__": "x"`, // truncated
	}
	for _, in := range bad {
		if got, err := celery.UnwrapMarkers(json.RawMessage(in)); err == nil {
			t.Errorf("UnwrapMarkers(%s) = %s, want an error", in, got)
		}
	}
	// Without markers the input comes back as is (same bytes).
	in := json.RawMessage(`[1,  {"a" : "__type"}]`)
	got, err := celery.UnwrapMarkers(in)
	if err != nil || string(got) != string(in) {
		t.Errorf("UnwrapMarkers(no markers) = %s, %v", got, err)
	}
	if celery.HasMarkers([]byte(`{"type": 1}`)) || !celery.HasMarkers([]byte(`{"__type__": 1}`)) {
		t.Errorf("HasMarkers wrong")
	}
}

func TestLenientInt(t *testing.T) {
	cases := map[string]int{
		`5`: 5, `-3`: -3, `0`: 0, `"9"`: 9, `"-2"`: -2, `null`: 0, `5.7`: 5, `"5.0"`: 5, `1e3`: 1000,
		`"abc"`: 0, `true`: 0, `[]`: 0, `{}`: 0, `1e30`: 0, `""`: 0, `"\u0037"`: 7,
	}
	for in, want := range cases {
		var v struct {
			P celery.LenientInt `json:"p"`
		}
		v.P = 42 // must be overwritten
		if err := json.Unmarshal([]byte(`{"p":`+in+`}`), &v); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if int(v.P) != want {
			t.Errorf("LenientInt(%s) = %d, want %d", in, v.P, want)
		}
	}
	// A string priority in a real envelope.
	raw := readFile(t, filepath.Join(fixtureDir(t, "celery-5.2.6", "broker"), "v2_priority9.json"))
	raw = []byte(strings.Replace(string(raw), `"priority": 9`, `"priority": "7"`, 1))
	m, err := celery.DecodeTask(raw, celery.DecodeOptions{})
	if err != nil || m.Priority != 7 {
		t.Errorf("string priority: %v, %v", m, err)
	}
}
