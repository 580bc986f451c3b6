package docs

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzJSONScan checks the scanners of valid JSON against encoding/json:
// object members and array elements come out as json.Unmarshal sees them.
func FuzzJSONScan(f *testing.F) {
	for _, s := range []string{
		`{"a": 1, "b": "x\"y\\", "c": [1, {"d": "]"}], "e": null, "a": true}`,
		`[ "s", {"k": "v"} , 3.5e2, [], {} ]`,
		`{"text": "改行\n\u3042", "t": {"nested": ["}", "{"]}}`,
		`"plain"`, `  {  }  `, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		start := skipSpace(data, 0)
		end := scanValue(data, start)
		if skipSpace(data, end) != len(data) {
			t.Fatalf("scanValue stopped at %d of %q", end, data)
		}
		switch data[start] {
		case '{':
			var m map[string]json.RawMessage
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			fields := objectFields(data[start:end])
			if len(fields) != len(m) {
				t.Fatalf("%d fields, json has %d: %q", len(fields), len(m), data)
			}
			for _, f := range fields {
				want, has := jsonText(bytes.TrimSpace(m[f.key]))
				if f.val != want || f.has != has {
					t.Fatalf("field %q = %q, json says %q", f.key, f.val, want)
				}
			}
		case '[':
			var l []json.RawMessage
			if err := json.Unmarshal(data, &l); err != nil {
				t.Fatal(err)
			}
			els := elements(data, start)
			if len(els) != len(l) {
				t.Fatalf("%d elements, json has %d: %q", len(els), len(l), data)
			}
			for i, el := range els {
				if !bytes.Equal(data[el[0]:el[1]], bytes.TrimSpace(l[i])) {
					t.Fatalf("element %d = %q, json says %q", i, data[el[0]:el[1]], l[i])
				}
			}
		case '"':
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				t.Fatal(err)
			}
			if got := jsonString(data[start:end]); got != s && !bytes.ContainsRune([]byte(s), 0xFFFD) {
				t.Fatalf("jsonString = %q, json says %q", got, s)
			}
		}
	})
}
