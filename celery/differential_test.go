package celery_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/celery"
)

// decodeSlow is the reflection-based reference: ParseEnvelope, then
// DecodeEnvelope.
func decodeSlow(raw []byte, opts celery.DecodeOptions) (*celery.TaskMessage, error) {
	env, err := celery.ParseEnvelope(raw)
	if err != nil {
		return nil, &celery.MessageError{Exc: err.(*celery.Exception)}
	}
	return celery.DecodeEnvelope(env, opts)
}

// foldedKeys reports whether an envelope-level object key (envelope,
// headers, properties, delivery_info) is not plain lowercase ASCII. The
// reference decodes through encoding/json, which matches keys
// case-insensitively ("Content-Type", "TASK", even "\u212a" for "k");
// Python's dicts, and DecodeTask, do not. Such inputs are not compared.
func foldedKeys(raw []byte) bool {
	var top map[string]any
	if celery.Unmarshal(raw, &top) != nil {
		return false
	}
	odd := func(m map[string]any) bool {
		for k := range m {
			for _, c := range k {
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
					return true
				}
			}
		}
		return false
	}
	if odd(top) {
		return true
	}
	for _, k := range []string{"headers", "properties"} {
		if m, ok := top[k].(map[string]any); ok {
			if odd(m) {
				return true
			}
			if di, ok := m["delivery_info"].(map[string]any); ok && odd(di) {
				return true
			}
		}
	}
	return false
}

// duplicateKeys reports whether an object in raw repeats a key. encoding/json
// then keeps the earlier value when the later one is null, while Python (and
// DecodeTask) take the last value; such inputs are not compared.
func duplicateKeys(raw []byte) bool {
	// Neutralize Python's non-finite tokens (same length) so the standard
	// tokenizer can walk the text.
	s := strings.NewReplacer("-Infinity", "0        ", "Infinity", "0       ", "NaN", "0  ").Replace(string(raw))
	dec := json.NewDecoder(strings.NewReader(s))
	type frame struct {
		keys  map[string]bool
		isObj bool
		key   bool // next token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.isObj && top.key {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return true
				}
				top.keys[k] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, isObj: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].isObj {
			stack[len(stack)-1].key = true
		}
	}
}

// diffDecoders reports how DecodeTask and the reference disagree on raw.
func diffDecoders(raw []byte) string {
	if foldedKeys(raw) || duplicateKeys(raw) {
		return ""
	}
	opts := celery.DecodeOptions{NaiveLocation: time.FixedZone("", 3600)}
	fast, ferr := celery.DecodeTask(raw, opts)
	slow, serr := decodeSlow(raw, opts)
	switch {
	case ferr != nil && serr == nil:
		return fmt.Sprintf("DecodeTask rejects what the reference accepts: %v", ferr)
	case ferr == nil && serr != nil:
		// The scanner may be more lenient about value types (e.g. a string
		// delivery_mode, which kombu ignores anyway), but never about syntax.
		var v any
		if celery.Unmarshal(raw, &v) != nil {
			return fmt.Sprintf("DecodeTask accepts malformed JSON (reference: %v)", serr)
		}
		return ""
	case ferr != nil:
		// Both reject. The verdicts are not compared: the reference stops at
		// Go-specific points (a type mismatch, null read as an empty object)
		// and DecodeTask's own classification is pinned by
		// TestDecodeTaskMalformed.
		var fe *celery.MessageError
		if !errors.As(ferr, &fe) || fe.Exc == nil {
			return fmt.Sprintf("DecodeTask error %T is not a *MessageError", ferr)
		}
		return ""
	}
	var diffs []string
	fv, sv := reflect.ValueOf(fast).Elem(), reflect.ValueOf(slow).Elem()
	for i := 0; i < fv.NumField(); i++ {
		f := fv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		a, b := fv.Field(i).Interface(), sv.Field(i).Interface()
		switch x := a.(type) {
		case json.RawMessage:
			y := b.(json.RawMessage)
			if !rawEqual(x, y) {
				diffs = append(diffs, fmt.Sprintf("%s: %s vs %s", f.Name, x, y))
			}
			continue
		case *time.Time:
			y := b.(*time.Time)
			if (x == nil) != (y == nil) || (x != nil && (!x.Equal(*y) || x.Format(time.RFC3339Nano) != y.Format(time.RFC3339Nano))) {
				diffs = append(diffs, fmt.Sprintf("%s: %v vs %v", f.Name, x, y))
			}
			continue
		case celery.Embed:
			ea, _ := json.Marshal(x)
			eb, _ := json.Marshal(b)
			if string(ea) != string(eb) {
				diffs = append(diffs, fmt.Sprintf("Embed: %s vs %s", ea, eb))
			}
			continue
		}
		if !reflect.DeepEqual(a, b) {
			diffs = append(diffs, fmt.Sprintf("%s: %#v vs %#v", f.Name, a, b))
		}
	}
	if !rawEqual(fast.EmbedJSON(), slow.EmbedJSON()) {
		diffs = append(diffs, fmt.Sprintf("EmbedJSON: %s vs %s", fast.EmbedJSON(), slow.EmbedJSON()))
	}
	return strings.Join(diffs, "\n")
}

func rawEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	// Compare as Python reads it: bare NaN/Infinity are equivalent to the
	// null the reference path rewrites them to.
	var x, y any
	if celery.Unmarshal(a, &x) != nil || celery.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
}

func TestDecodeTaskMatchesReference(t *testing.T) {
	var inputs [][]byte
	for _, version := range fixtureVersions {
		for _, f := range brokerEnvelopeFiles(t, version) {
			inputs = append(inputs, readFile(t, f))
		}
		for _, f := range unackedFiles(t, version) {
			var triple []json.RawMessage
			_ = json.Unmarshal(readFile(t, f), &triple)
			inputs = append(inputs, triple[0])
		}
	}
	body := `W1sxXSwge30sIHt9XQ==` // [[1], {}, {}]
	for _, s := range []string{
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i", "retries": "2", "priority": 3}, "properties": {"body_encoding": "base64", "priority": "5", "delivery_info": {"exchange": "", "routing_key": "q", "redelivered": true}}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i", "timelimit": [NaN, Infinity], "retries": -Infinity}, "properties": {"body_encoding": "base64", "priority": NaN}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t\u00fc\ud83d\ude00", "id": "\u0069", "shadow": "a\"b\\c\/d\b\f\n\r\t"}, "properties": {"body_encoding": "base64"}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i", "task": "u"}, "properties": {"body_encoding": "base64", "body_encoding": "base64"}}`,
		` { "body" : "` + body + `" , "content-type" : "application/json" , "headers" : { "task" : "t" , "id" : "i" , "x" : [ 1 , { "y" : null } ] } , "properties" : { "body_encoding" : "base64" } } `,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i", "group_index": 1.5}, "properties": {"body_encoding": "base64"}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i", "stamped_headers": ["a", 1]}, "properties": {"body_encoding": "base64"}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": null, "id": "i"}, "properties": {"body_encoding": "base64"}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": null}`,
		`{"body": null, "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i", "ignore_result": "yes"}, "properties": {"body_encoding": "base64"}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {"body_encoding": "base64", "delivery_mode": "2"}}`,
		// Invalid UTF-8 (a real 0xff byte and a truncated sequence) inside strings.
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i` + "\xff" + `", "origin": "o` + "\xe2\x9c" + `"}, "properties": {"body_encoding": "base64", "reply_to": "` + "\xc3" + `"}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "\ud800"}, "properties": {"body_encoding": "base64"}}`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {"body_encoding": "base64"}} x`,
		`{"body": "` + body + `", "content-type": "application/json", "headers": {"task": "t", "id": "i",}, "properties": {"body_encoding": "base64"}}`,
	} {
		inputs = append(inputs, []byte(s))
	}
	for i, raw := range inputs {
		if d := diffDecoders(raw); d != "" {
			t.Errorf("input %d %s:\n%s", i, abbrev(raw), d)
		}
	}
}

func FuzzDecodeTaskMatchesReference(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte(`{"body": "W1sxXSwge30sIHt9XQ==", "content-type": "application/json", "headers": {"task": "t", "id": "i", "timelimit": [NaN, 1]}, "properties": {"body_encoding": "base64", "priority": "5"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if d := diffDecoders(raw); d != "" {
			t.Fatalf("DecodeTask disagrees with ParseEnvelope+DecodeEnvelope on %q:\n%s", raw, d)
		}
	})
}
