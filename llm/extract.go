package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// ErrNoJSON means a text answer held no JSON object.
var ErrNoJSON = errors.New("no JSON object in the answer")

// ExtractJSONObject finds the JSON object in a model's plain-text answer:
// inside ``` fences if any, else the span from the first "{" to the last
// "}" (what the Python system did), else the first balanced object that
// parses.
func ExtractJSONObject(text string) (json.RawMessage, error) {
	text = strings.TrimSpace(text)
	if i := strings.Index(text, "```"); i >= 0 {
		rest := text[i+3:]
		if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
			rest = rest[nl+1:]
		}
		if j := strings.Index(rest, "```"); j >= 0 {
			if obj, err := ExtractJSONObject(rest[:j]); err == nil {
				return obj, nil
			}
		}
	}
	first, last := strings.IndexByte(text, '{'), strings.LastIndexByte(text, '}')
	if first < 0 || last < first {
		return nil, ErrNoJSON
	}
	if candidate := []byte(text[first : last+1]); json.Valid(candidate) {
		return candidate, nil
	}
	// Prose with braces around the object: try each "{" with a decoder.
	for i := first; i >= 0 && i < len(text); {
		dec := json.NewDecoder(strings.NewReader(text[i:]))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == nil && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			return raw, nil
		}
		next := strings.IndexByte(text[i+1:], '{')
		if next < 0 {
			break
		}
		i += next + 1
	}
	return nil, ErrNoJSON
}
