// Package jsonstr appends Go strings as JSON string literals for the
// project's hand-written encoders: UTF-8 kept as it is, no HTML escaping.
package jsonstr

import "unicode/utf8"

// Append appends s as a JSON string: quotes, backslashes and control
// characters escaped (\n \r \t \b \f in their short forms, as
// encoding/json and Python's json write them), U+2028 and U+2029 escaped
// (as encoding/json does), invalid UTF-8 replaced by U+FFFD, everything
// else verbatim.
func Append(dst []byte, s string) []byte { return appendString(dst, s, true) }

// AppendHexControls is Append with \b and \f written as \u0008 and \u000c,
// the bytes the Celery encoders have always produced.
func AppendHexControls(dst []byte, s string) []byte { return appendString(dst, s, false) }

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string, shortBF bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && shortBF:
				b = append(b, '\\', 'b')
			case c == '\f' && shortBF:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
