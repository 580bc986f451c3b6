package celery_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// fixtureVersions are the capture sets under testdata/fixtures.
var fixtureVersions = []string{"celery-5.2.6", "celery-5.5.3"}

// fixtureDir locates a capture set relative to this package directory
// (go test runs with the package directory as working directory).
func fixtureDir(tb testing.TB, version string, sub ...string) string {
	tb.Helper()
	dir := filepath.Join(append([]string{"..", "testdata", "fixtures", version}, sub...)...)
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("fixture directory %s: %v", dir, err)
	}
	return dir
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return b
}

// brokerEnvelopeFiles lists the raw envelopes in broker/: *.json that are
// not *.decoded.json (the *.txt MONITOR excerpts are excluded by the glob).
func brokerEnvelopeFiles(tb testing.TB, version string) []string {
	tb.Helper()
	all, err := filepath.Glob(filepath.Join(fixtureDir(tb, version, "broker"), "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if strings.HasSuffix(f, ".decoded.json") {
			continue
		}
		out = append(out, f)
	}
	sort.Strings(out)
	if len(out) < 30 {
		tb.Fatalf("%s: found only %d broker envelopes; fixture set incomplete?", version, len(out))
	}
	return out
}

// unackedFiles lists keys/unacked_*.hash_value.0.json (not the decoded copies).
func unackedFiles(tb testing.TB, version string) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir(tb, version, "keys"), "unacked_*.hash_value.*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".decoded.json") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		tb.Fatalf("%s: no unacked hash values", version)
	}
	return out
}

// decodedPath maps broker/x.json to broker/x.decoded.json.
func decodedPath(raw string) string {
	return strings.TrimSuffix(raw, ".json") + ".decoded.json"
}

// unmarshalNumber parses JSON into generic values, keeping numbers as text
// so that comparisons are exact.
func unmarshalNumber(tb testing.TB, data []byte) any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("parse JSON %q: %v", abbrev(data), err)
	}
	if dec.More() {
		tb.Fatalf("trailing data after JSON value in %q", abbrev(data))
	}
	return normalizeNumbers(v)
}

// normalizeNumbers rewrites json.Number values so that spellings Python reads
// as the same value compare equal (1.0 and 1e0 are the same float), while an
// int and a float stay different (1 is not 1.0 for a Python task).
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return fmt.Sprintf("i:%d", i)
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return fmt.Sprintf("f:%v", f)
		}
		return "n:" + string(x)
	case []any:
		for i := range x {
			x[i] = normalizeNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeNumbers(x[k])
		}
	}
	return v
}

// assertJSONEqual compares two JSON texts as parsed values.
func assertJSONEqual(tb testing.TB, what string, got, want []byte) {
	tb.Helper()
	if !jsonEqual(tb, got, want) {
		tb.Errorf("%s: JSON differs\n got: %s\nwant: %s", what, abbrev(got), abbrev(want))
	}
}

func jsonEqual(tb testing.TB, a, b []byte) bool {
	tb.Helper()
	return reflect.DeepEqual(unmarshalNumber(tb, a), unmarshalNumber(tb, b))
}

// objectKeys returns the top-level keys of a JSON object in document order,
// reporting duplicates as an error.
func objectKeys(tb testing.TB, data []byte) []string {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		tb.Fatalf("not a JSON object: %q", abbrev(data))
	}
	var keys []string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			tb.Fatalf("tokenize %q: %v", abbrev(data), err)
		}
		k := tok.(string)
		if seen[k] {
			tb.Errorf("duplicate key %q in %q", k, abbrev(data))
		}
		seen[k] = true
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			tb.Fatalf("value of %q: %v", k, err)
		}
	}
	return keys
}

func abbrev(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// unquoteRedisRepr splits MONITOR text (sdscatrepr quoting: "a" "b\x06")
// into its arguments.
func unquoteRedisRepr(tb testing.TB, s string) []string {
	tb.Helper()
	var out []string
	s = strings.TrimSpace(s)
	for len(s) > 0 {
		if s[0] != '"' {
			tb.Fatalf("expected quote at %q", s)
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] != '\\' {
				b.WriteByte(s[i])
				continue
			}
			i++
			switch s[i] {
			case 'x':
				n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					tb.Fatalf("bad escape in %q", s)
				}
				b.WriteByte(byte(n))
				i += 2
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			default:
				b.WriteByte(s[i])
			}
		}
		out = append(out, b.String())
		s = strings.TrimSpace(s[i+1:])
	}
	return out
}

// unescapeHex turns the \xNN escapes used in INDEX.md / manifest.json key
// names into bytes.
func unescapeHex(tb testing.TB, s string) string {
	tb.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			n, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				tb.Fatalf("bad escape in %q", s)
			}
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
