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
	cjk, other := 0, 0
	for _, r := range s {
		if IsCJK(r) {
			cjk++
		} else {
			other += utf8.RuneLen(r)
		}
	}
	return cjk + (other+3)/4
}

// IsCJK reports whether r is a Han, kana, Hangul or full-width character.
func IsCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) ||
		(r >= 0xFF00 && r <= 0xFFEF) || (r >= 0x3000 && r <= 0x303F)
}
