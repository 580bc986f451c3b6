package celery

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a small pull parser for the hot path: decoding task envelopes
// without reflection. It validates what it reads; values it does not need
// are skipped (and validated) without being built. Python's bare NaN,
// Infinity and -Infinity are accepted as numbers.
type scanner struct {
	data []byte
	pos  int
}

var errSyntax = errors.New("invalid JSON")

func (s *scanner) fail(what string) error {
	if s.pos >= len(s.data) {
		return fmt.Errorf("%w: unexpected end of input, want %s", errSyntax, what)
	}
	return fmt.Errorf("%w: unexpected %q at offset %d, want %s", errSyntax, s.data[s.pos], s.pos, what)
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return true
	}
	return false
}

// end checks that only whitespace follows.
func (s *scanner) end() error {
	s.ws()
	if s.pos != len(s.data) {
		return s.fail("end of input")
	}
	return nil
}

// object calls fn for every member; fn must consume the value.
func (s *scanner) object(fn func(key []byte) error) error {
	if s.peek() != '{' {
		return s.fail("an object")
	}
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.fail("a member name")
		}
		key, err := s.strBytes()
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return s.fail("':'")
		}
		s.pos++
		s.ws()
		if err := fn(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.fail("',' or '}'")
		}
	}
}

// array calls fn for every element; fn must consume the value.
func (s *scanner) array(fn func(i int) error) error {
	if s.peek() != '[' {
		return s.fail("an array")
	}
	s.pos++
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		s.ws()
		if err := fn(i); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.fail("',' or ']'")
		}
	}
}

// skip consumes one value and returns its raw bytes.
func (s *scanner) skip() ([]byte, error) {
	s.ws()
	start := s.pos
	var err error
	switch c := s.peek(); {
	case c == '{':
		err = s.object(func([]byte) error { _, err := s.skip(); return err })
	case c == '[':
		err = s.array(func(int) error { _, err := s.skip(); return err })
	case c == '"':
		_, err = s.strBytes()
	case c == 't':
		if !s.literal("true") {
			err = s.fail("true")
		}
	case c == 'f':
		if !s.literal("false") {
			err = s.fail("false")
		}
	case c == 'n':
		if !s.literal("null") {
			err = s.fail("null")
		}
	default:
		err = s.number()
	}
	if err != nil {
		return nil, err
	}
	return s.data[start:s.pos], nil
}

func (s *scanner) number() error {
	if s.literal("NaN") || s.literal("Infinity") || s.literal("-Infinity") {
		return nil
	}
	start := s.pos
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		s.pos++
	}
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	intStart := s.pos
	if n := digits(); n == 0 || (n > 1 && s.data[intStart] == '0') {
		s.pos = start
		return s.fail("a value")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return s.fail("a digit")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return s.fail("a digit")
		}
	}
	return nil
}

// strBytes reads a string and returns its unescaped bytes. Without escapes
// the result aliases the input.
func (s *scanner) strBytes() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.fail("a string")
	}
	s.pos++
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			out := s.data[start:s.pos]
			s.pos++
			return out, nil
		case c == '\\':
			return s.strSlow(start)
		case c < 0x20:
			return nil, s.fail("a string character")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return s.strSlow(start)
			}
			s.pos += size
		default:
			s.pos++
		}
	}
	return nil, s.fail("'\"'")
}

// strSlow decodes a string with escapes (or invalid UTF-8, which becomes
// U+FFFD as in encoding/json) from start, just after the opening quote.
func (s *scanner) strSlow(start int) ([]byte, error) {
	out := append([]byte(nil), s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return out, nil
		case c < 0x20:
			return nil, s.fail("a string character")
		case c == '\\':
			s.pos++
			if s.pos >= len(s.data) {
				return nil, s.fail("an escape")
			}
			e := s.data[s.pos]
			s.pos++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := s.hex4()
				if !ok {
					return nil, s.fail("four hex digits")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(utf8.RuneError)
					save := s.pos
					if s.literal(`\u`) {
						if lo, ok := s.hex4(); ok {
							if d := utf16.DecodeRune(r, lo); d != utf8.RuneError {
								r2 = d
							} else {
								s.pos = save
							}
						} else {
							s.pos = save
						}
					}
					r = r2
				}
				out = utf8.AppendRune(out, r)
			default:
				s.pos--
				return nil, s.fail("an escape character")
			}
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, s.data[s.pos:s.pos+size]...)
			}
			s.pos += size
		default:
			out = append(out, c)
			s.pos++
		}
	}
	return nil, s.fail("'\"'")
}

func (s *scanner) hex4() (rune, bool) {
	if len(s.data)-s.pos < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s.data[s.pos:s.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	s.pos += 4
	return rune(n), true
}

// strOrNull reads a string, or null as "".
func (s *scanner) strOrNull() (string, error) {
	if s.peek() == 'n' {
		if !s.literal("null") {
			return "", s.fail("null")
		}
		return "", nil
	}
	b, err := s.strBytes()
	return string(b), err
}

// boolOrNull reads true, false, or null as false.
func (s *scanner) boolOrNull() (bool, error) {
	switch {
	case s.literal("true"):
		return true, nil
	case s.literal("false"), s.literal("null"):
		return false, nil
	}
	return false, s.fail("a boolean")
}

// lenientInt reads a value with kombu's int() leniency (numbers, numeric
// strings; anything else is 0).
func (s *scanner) lenientInt() (int, error) {
	raw, err := s.skip()
	if err != nil {
		return 0, err
	}
	var n LenientInt
	_ = n.UnmarshalJSON(raw)
	return int(n), nil
}

// intOrNull reads an integer, or null as nil.
func (s *scanner) intOrNull() (*int, error) {
	if s.peek() == 'n' {
		if !s.literal("null") {
			return nil, s.fail("null")
		}
		return nil, nil
	}
	raw, err := s.skip()
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not an integer", errSyntax, raw)
	}
	return &n, nil
}

// isNullValue reports whether raw is the literal null.
func isNullValue(raw []byte) bool { return len(raw) == 4 && string(raw) == "null" }
