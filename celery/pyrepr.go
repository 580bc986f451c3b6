package celery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// ReprMaxLen is the length at which Celery truncates argsrepr/kwargsrepr.
const ReprMaxLen = 1024

// PyRepr renders a decoded JSON value (or a Go scalar) the way Python's
// repr() shows it: 'text', True, None, {'k': 1}. It is for display fields
// such as argsrepr and the exception text in events.
func PyRepr(v any) string {
	var b strings.Builder
	writeRepr(&b, v)
	return b.String()
}

// ReprJSON renders JSON text as a Python repr; JSON arrays are shown as
// tuples, like Celery's argsrepr of a task's positional arguments. Empty or
// invalid input gives def.
func ReprJSON(raw json.RawMessage, def string) string {
	if len(bytes.TrimSpace(raw)) == 0 {
		return def
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return def
	}
	var b strings.Builder
	if list, ok := v.([]any); ok {
		b.WriteByte('(')
		for i, e := range list {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(&b, e)
		}
		if len(list) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	} else {
		writeRepr(&b, v)
	}
	return truncateRepr(b.String())
}

func truncateRepr(s string) string {
	if len(s) <= ReprMaxLen {
		return s
	}
	cut := ReprMaxLen - 3
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8Start(c byte) bool { return c&0xC0 != 0x80 }

func writeRepr(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case string:
		writePyString(b, x)
	case json.Number:
		b.WriteString(x.String())
	case float64:
		if x == float64(int64(x)) && x < 1e16 && x > -1e16 {
			b.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
		} else {
			b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		}
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyString(b, k)
			b.WriteString(": ")
			writeRepr(b, x[k])
		}
		b.WriteByte('}')
	case json.RawMessage:
		b.WriteString(ReprJSON(x, "None"))
	default:
		fmt.Fprint(b, x)
	}
}

func writePyString(b *strings.Builder, s string) {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, `\x%02x`, r)
		case r > 0x7f && !unicode.IsPrint(r):
			if r <= 0xff {
				fmt.Fprintf(b, `\x%02x`, r)
			} else if r <= 0xffff {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				fmt.Fprintf(b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
}
