package docs

import (
	"strings"
	"unicode/utf8"
)

// CleanText is helper_rag.clean_text, used by Python when it builds
// Combined_Text from another column: newlines and carriage returns become
// spaces, runs of whitespace collapse to one space, the ends are trimmed,
// and curly quotes “ ” ‘ ’ become " and '. Whitespace is Python's \s for
// str patterns: Unicode white space (including the ideographic space
// U+3000 and no-break space) plus U+001C–U+001F.
//
// (Python's quote replacements were meant to do the last step but, their
// curly quotes having been lost in the source, replace nothing; the intent
// is implemented here.)
//
// CleanText removes paragraph breaks, so it is not applied to Markdown files
// or whole-file text documents.
func CleanText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false // white space seen since the last kept character
	run := 0       // start of the pending run of characters kept as they are
	flush := func(end int) {
		if run < end {
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteString(s[run:end])
		}
	}
	for i, r := range s {
		var repl byte
		switch {
		case isPySpace(r):
		case r == '“' || r == '”':
			repl = '"'
		case r == '‘' || r == '’':
			repl = '\''
		default:
			continue
		}
		flush(i)
		run = i + utf8.RuneLen(r)
		if repl == 0 {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(repl)
	}
	flush(len(s))
	return b.String()
}

func isPySpace(r rune) bool {
	if r < 0x80 {
		return r == ' ' || '\t' <= r && r <= '\r' || 0x1C <= r && r <= 0x1F
	}
	// unicode.IsSpace, spelled out: the White_Space runes above ASCII.
	switch r {
	case 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return 0x2000 <= r && r <= 0x200A
}

// isBlank is Python's s.strip() == "".
func isBlank(s string) bool {
	for _, r := range s {
		if !isPySpace(r) {
			return false
		}
	}
	return true
}

// trimPy is Python's str.strip().
func trimPy(s string) string {
	return strings.TrimFunc(s, isPySpace)
}

func isBlankBytes(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if !isPySpace(r) {
			return false
		}
		b = b[n:]
	}
	return true
}
