package jsonstr

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// encodingJSON is encoding/json's string without HTML escaping.
func encodingJSON(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

var samples = []string{
	"", "plain", `q"b\s/`, "\n\r\t\b\f\x00\x01\x1f\x7f", "<b>&", "日本語 ✓ 🎉",
	"ls\u2028ps\u2029", "bad\xffutf8\xe3\x81", "\xe2\x80", "mixed\x08\u2029\xc3(",
}

func TestAppendIsEncodingJSON(t *testing.T) {
	for _, s := range samples {
		if got, want := string(Append([]byte("x"), s)), "x"+encodingJSON(t, s); got != want {
			t.Errorf("Append(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendHexControls(t *testing.T) {
	long := strings.NewReplacer(`\b`, `\u0008`, `\f`, `\u000c`)
	for _, s := range samples {
		want := long.Replace(string(Append(nil, s)))
		if got := string(AppendHexControls(nil, s)); got != want {
			t.Errorf("AppendHexControls(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(Append(nil, s)), encodingJSON(t, s); got != want {
			t.Errorf("Append(%q) = %s, want %s", s, got, want)
		}
	})
}
