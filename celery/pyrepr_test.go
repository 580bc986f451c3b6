package celery_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qagen/qagen/celery"
)

func TestPyRepr(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{nil, "None"},
		{true, "True"},
		{false, "False"},
		{"plain", "'plain'"},
		{"", "''"},
		{"it's", `"it's"`},
		{`say "hi"`, `'say "hi"'`},
		{`both ' and "`, `'both \' and "'`},
		{`back\slash`, `'back\\slash'`},
		{"tab\tnl\ncr\r", `'tab\tnl\ncr\r'`},
		{"\x00\x1f\x7f", `'\x00\x1f\x7f'`},
		{"Ünïcødé ✓ “quotes” 日本 😀", "'Ünïcødé ✓ “quotes” 日本 😀'"},
		{"nbsp\u00a0", `'nbsp\xa0'`},
		{"zw\u200bsp", `'zw\u200bsp'`},
		{"tag\U000E0001", `'tag\U000e0001'`},
		{float64(3), "3.0"},
		{0.5, "0.5"},
		{-2.25, "-2.25"},
		{1e20, "1e+20"},
		{1e-7, "1e-07"},
		{json.Number("12345678901234567890"), "12345678901234567890"},
		{json.Number("0.2"), "0.2"},
		{7, "7"},
		{[]any{}, "[]"},
		{[]any{json.Number("1"), "a", nil, []any{true}}, "[1, 'a', None, [True]]"},
		{map[string]any{}, "{}"},
		{map[string]any{"b": json.Number("1"), "a": "x"}, "{'a': 'x', 'b': 1}"},
		{map[string]any{"k'": []any{map[string]any{"n": nil}}}, `{"k'": [{'n': None}]}`},
		{json.RawMessage(`[1,2]`), "(1, 2)"},
	}
	for _, c := range cases {
		if got := celery.PyRepr(c.in); got != c.want {
			t.Errorf("PyRepr(%#v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestReprJSON(t *testing.T) {
	cases := []struct {
		in, def, want string
	}{
		{`[]`, "()", "()"},
		{`[1]`, "()", "(1,)"},
		{`[[2, 2]]`, "()", "([2, 2],)"},
		{`[1, 2]`, "()", "(1, 2)"},
		{`["a", true, false, null, 1.5]`, "()", "('a', True, False, None, 1.5)"},
		{`{}`, "{}", "{}"},
		{`{"x": [1, {"y": null}]}`, "{}", "{'x': [1, {'y': None}]}"},
		{`"text"`, "()", "'text'"},
		{`12`, "()", "12"},
		{``, "()", "()"},
		{`   `, "{}", "{}"},
		{`not json`, "()", "()"},
		{`[1,`, "()", "()"},
		{`["ü \u2713"]`, "()", "('ü ✓',)"},
	}
	for _, c := range cases {
		if got := celery.ReprJSON(json.RawMessage(c.in), c.def); got != c.want {
			t.Errorf("ReprJSON(%q, %q) = %q, want %q", c.in, c.def, got, c.want)
		}
	}
}

func TestReprJSONTruncation(t *testing.T) {
	if celery.ReprMaxLen != 1024 {
		t.Fatalf("ReprMaxLen = %d", celery.ReprMaxLen)
	}
	argsOf := func(s string) json.RawMessage {
		b, _ := json.Marshal([]string{s})
		return b
	}
	// repr of a 1-tuple of a string is len(s)+5 bytes: ('s',)
	exact := celery.ReprJSON(argsOf(strings.Repeat("x", 1019)), "()")
	if len(exact) != 1024 || strings.HasSuffix(exact, "...") {
		t.Errorf("1024-byte repr changed: len %d, suffix %q", len(exact), exact[len(exact)-5:])
	}
	over := celery.ReprJSON(argsOf(strings.Repeat("x", 1020)), "()")
	if len(over) != 1024 || over != "('"+strings.Repeat("x", 1019)+"..." {
		t.Errorf("1025-byte repr: len %d, tail %q", len(over), over[len(over)-8:])
	}
	for _, r := range []string{"ü", "✓", "😀"} { // 2, 3 and 4 byte runes at every alignment
		for pad := 0; pad < 4; pad++ {
			s := strings.Repeat("a", pad) + strings.Repeat(r, 2000)
			got := celery.ReprJSON(argsOf(s), "()")
			if !utf8.ValidString(got) {
				t.Errorf("rune %q pad %d: truncation split a character: %q", r, pad, got[len(got)-8:])
			}
			if len(got) > celery.ReprMaxLen || len(got) < celery.ReprMaxLen-len(r) {
				t.Errorf("rune %q pad %d: len %d", r, pad, len(got))
			}
			if !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, "('"+strings.Repeat("a", pad)+r) {
				t.Errorf("rune %q pad %d: %q...%q", r, pad, got[:8], got[len(got)-8:])
			}
		}
	}
	// EncodeTask uses it for a missing argsrepr.
	m := &celery.TaskMessage{ID: "i", Task: "t", Args: argsOf(strings.Repeat("✓", 1000)), DeliveryInfo: celery.DeliveryInfo{RoutingKey: "q"}}
	raw, err := celery.EncodeTask(m, celery.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := celery.DecodeTask(raw, celery.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.ArgsRepr) > celery.ReprMaxLen || !strings.HasSuffix(out.ArgsRepr, "...") || !utf8.ValidString(out.ArgsRepr) {
		t.Errorf("encoded argsrepr len %d", len(out.ArgsRepr))
	}
}

func TestExceptionHelpers(t *testing.T) {
	cases := []struct {
		exc                *celery.Exception
		json, errStr, repr string
	}{
		{celery.NewException("ValueError", celery.ModuleBuiltins, "boom"),
			`{"exc_type":"ValueError","exc_message":["boom"],"exc_module":"builtins"}`, "ValueError: boom", "ValueError('boom')"},
		{celery.ErrNotRegistered("tasks.nope"),
			`{"exc_type":"NotRegistered","exc_message":["tasks.nope"],"exc_module":"celery.exceptions"}`, "NotRegistered: tasks.nope", "NotRegistered('tasks.nope')"},
		{celery.ErrRevoked("expired"),
			`{"exc_type":"TaskRevokedError","exc_message":["expired"],"exc_module":"celery.exceptions"}`, "TaskRevokedError: expired", "TaskRevokedError('expired')"},
		{celery.ErrSoftTimeLimit(),
			`{"exc_type":"SoftTimeLimitExceeded","exc_message":[],"exc_module":"billiard.exceptions"}`, "SoftTimeLimitExceeded", "SoftTimeLimitExceeded()"},
		{celery.ErrTimeLimit(300),
			`{"exc_type":"TimeLimitExceeded","exc_message":[300],"exc_module":"billiard.exceptions"}`, "TimeLimitExceeded: 300", "TimeLimitExceeded(300.0)"},
		{&celery.Exception{Type: "KeyError", Module: "builtins", Args: []any{"a", 2.0}},
			`{"exc_type":"KeyError","exc_message":["a",2],"exc_module":"builtins"}`, "KeyError: a, 2", "KeyError('a', 2.0)"},
		{&celery.Exception{Type: "E", Module: "m"},
			`{"exc_type":"E","exc_message":[],"exc_module":"m"}`, "E", "E()"},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.exc)
		if err != nil {
			t.Fatal(err)
		}
		assertJSONEqual(t, c.exc.Type, got, []byte(c.json))
		if c.exc.Error() != c.errStr || c.exc.Repr() != c.repr {
			t.Errorf("Error/Repr = %q / %q, want %q / %q", c.exc.Error(), c.exc.Repr(), c.errStr, c.repr)
		}
		back, err := celery.ExceptionFromJSON(got)
		if err != nil || back.Type != c.exc.Type || back.Module != c.exc.Module {
			t.Errorf("ExceptionFromJSON(%s) = %+v, %v", got, back, err)
		}
	}
	// A non-list exc_message is one argument, as in Python.
	e, err := celery.ExceptionFromJSON([]byte(`{"exc_type":"X","exc_message":"one arg","exc_module":null}`))
	if err != nil || len(e.Args) != 1 || e.Args[0] != "one arg" || e.Module != "" {
		t.Errorf("string exc_message: %+v, %v", e, err)
	}
	if e.Message() != "one arg" {
		t.Errorf("Message() = %q", e.Message())
	}
	for _, bad := range []string{`5`, `null`, `"boom"`, `{"exc_message":["x"]}`, `[1]`, `{`} {
		if e, err := celery.ExceptionFromJSON([]byte(bad)); err == nil {
			t.Errorf("ExceptionFromJSON(%s) = %+v, want an error", bad, e)
		}
	}
	mr := celery.ErrMaxRetriesExceeded("tasks.add", "id-1", json.RawMessage(`[1]`), json.RawMessage(`{"a":"b"}`))
	if mr.Message() != "Can't retry tasks.add[id-1] args:(1,) kwargs:{'a': 'b'}" {
		t.Errorf("MaxRetriesExceeded message %q", mr.Message())
	}
}

func TestStates(t *testing.T) {
	ready := map[celery.State]bool{
		celery.StateSuccess: true, celery.StateFailure: true, celery.StateRevoked: true,
		celery.StatePending: false, celery.StateReceived: false, celery.StateStarted: false,
		celery.StateRetry: false, celery.StateRejected: false,
	}
	for s, want := range ready {
		if s.Ready() != want {
			t.Errorf("%s.Ready() = %v", s, !want)
		}
	}
	if string(celery.ResultTuple(`a"b`)) != `[["a\"b",null],null]` {
		t.Errorf("ResultTuple = %s", celery.ResultTuple(`a"b`))
	}
}
