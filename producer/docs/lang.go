package docs

import "unicode"

// Languages DetectLang returns.
const (
	LangEnglish  = "en"
	LangJapanese = "ja"
)

// jaShare is the share of Japanese-script characters among the letters of
// a text from which DetectLang calls it Japanese.
const jaShare = 0.2

// DetectLang returns "ja" when at least a fifth of the letters of text are
// Japanese script, else "en" (also for text without letters).
//
// Letters are the runes unicode.IsLetter accepts. Japanese script is
// hiragana, katakana (including half-width and the phonetic extensions),
// kanji (Han script, with 々 〆 〇) and full-width Latin letters and the
// prolonged sound mark, which occur almost only in Japanese text. The whole
// text is scanned. Counting letters, not words, lets Japanese text with
// embedded English terms ("Pythonで書いたCeleryワーカー") stay Japanese, while
// an English text quoting a Japanese word ("the Tokyo (東京) line") stays
// English. (Python's chunker called a text Japanese if any kana or kanji
// occurred in its first 100 characters; a02 sent lang "ja" for every
// upload.)
func DetectLang(text string) string {
	var letters, ja int
	for _, r := range text {
		switch {
		case r < 0x80:
			if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
				letters++
			}
		case isJapaneseScript(r):
			letters++
			ja++
		case unicode.IsLetter(r):
			letters++
		}
	}
	if letters > 0 && float64(ja) >= jaShare*float64(letters) {
		return LangJapanese
	}
	return LangEnglish
}

func isJapaneseScript(r rune) bool {
	switch {
	case 0x3040 <= r && r <= 0x30FF: // hiragana, katakana, ー
		return true
	case 0x31F0 <= r && r <= 0x31FF: // katakana phonetic extensions
		return true
	case 0xFF66 <= r && r <= 0xFF9F: // half-width katakana
		return true
	case 0xFF21 <= r && r <= 0xFF3A, 0xFF41 <= r && r <= 0xFF5A: // full-width Latin
		return true
	case r == '々' || r == '〆' || r == '〇':
		return true
	}
	return unicode.Is(unicode.Han, r)
}
