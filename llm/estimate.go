package llm

import (
	"unicode"
	"unicode/utf8"
)

// EstimateTokens approximates a token count without a tokenizer: each CJK
// character (Han, kana, Hangul, full-width forms) is one token, and every
// other 4 bytes are one token (rounded up). It budgets rate limits and
// bills the fake server; real tokenizers differ by a few percent.
func EstimateTokens(s string) int {
	var c tokenCounter
	for _, r := range s {
		c.add(r)
	}
	return c.tokens()
}

// TruncateTokens returns the longest prefix of s (cut on a rune boundary)
// that EstimateTokens counts as at most n tokens.
func TruncateTokens(s string, n int) string {
	var c tokenCounter
	for i, r := range s {
		if c.add(r); c.tokens() > n {
			return s[:i]
		}
	}
	return s
}

// tokenCounter is EstimateTokens' running count.
type tokenCounter struct{ cjk, other int }

func (c *tokenCounter) add(r rune) {
	if IsCJK(r) {
		c.cjk++
	} else {
		c.other += utf8.RuneLen(r)
	}
}

func (c *tokenCounter) tokens() int { return c.cjk + (c.other+3)/4 }

// IsCJK reports whether r is a Han, kana, Hangul or full-width character.
func IsCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) ||
		(r >= 0xFF00 && r <= 0xFFEF) || (r >= 0x3000 && r <= 0x303F)
}
