package celery

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Unmarshal decodes JSON written by Python's json module. Besides standard
// JSON it accepts the bare NaN, Infinity and -Infinity tokens Python emits for
// non-finite floats; they decode as null because Go's JSON cannot hold them.
// The standard decoder runs first, so well-formed input pays nothing extra.
func Unmarshal(data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return err
	}
	fixed, changed := replaceNonFinite(data)
	if !changed {
		return err
	}
	return json.Unmarshal(fixed, v)
}

// replaceNonFinite rewrites NaN, Infinity and -Infinity outside of strings to
// null. It reports whether anything changed.
func replaceNonFinite(data []byte) ([]byte, bool) {
	if !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) {
		return data, false
	}
	out := make([]byte, 0, len(data))
	inString, escaped, changed := false, false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case bytes.HasPrefix(data[i:], []byte("NaN")):
			out = append(out, "null"...)
			i += len("NaN") - 1
			changed = true
		case bytes.HasPrefix(data[i:], []byte("-Infinity")):
			out = append(out, "null"...)
			i += len("-Infinity") - 1
			changed = true
		case bytes.HasPrefix(data[i:], []byte("Infinity")):
			out = append(out, "null"...)
			i += len("Infinity") - 1
			changed = true
		default:
			out = append(out, c)
		}
	}
	return out, changed
}

var markerKey = []byte(`"__type__"`)

// HasMarkers reports whether data may contain kombu ≥ 5.3 type markers.
func HasMarkers(data []byte) bool { return bytes.Contains(data, markerKey) }

// UnwrapMarkers turns kombu ≥ 5.3 {"__type__": T, "__value__": V} objects into
// the plain JSON that kombu 5.2 sent for the same values: datetimes, dates,
// times and decimals become their string form, UUIDs their canonical text,
// bytes their text (or base64 text). Like kombu, only objects whose keys are
// exactly __type__ and __value__ are markers; an unknown __type__ is an error.
// Input without markers is returned unchanged.
func UnwrapMarkers(data json.RawMessage) (json.RawMessage, error) {
	if !HasMarkers(data) {
		return data, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v, err := unwrapValue(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func unwrapValue(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if t, ok := x["__type__"]; ok && len(x) == 2 {
			if val, ok := x["__value__"]; ok {
				return unwrapMarker(t, val)
			}
		}
		for k, e := range x {
			u, err := unwrapValue(e)
			if err != nil {
				return nil, err
			}
			x[k] = u
		}
		return x, nil
	case []any:
		for i, e := range x {
			u, err := unwrapValue(e)
			if err != nil {
				return nil, err
			}
			x[i] = u
		}
		return x, nil
	default:
		return v, nil
	}
}

func unwrapMarker(t, val any) (any, error) {
	name, _ := t.(string)
	switch name {
	case "datetime", "date", "time", "decimal", "bytes", "base64":
		if s, ok := val.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("celery: __type__ %q marker with a non-string __value__", name)
	case "uuid":
		switch u := val.(type) {
		case string:
			return u, nil
		case map[string]any:
			h, _ := u["hex"].(string)
			if b, err := hex.DecodeString(h); err == nil && len(b) == 16 {
				return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
			}
		}
		return nil, fmt.Errorf("celery: malformed uuid marker %v", val)
	default:
		return nil, fmt.Errorf("celery: unknown __type__ marker %q", name)
	}
}
