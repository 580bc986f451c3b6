package chunk

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// span is a byte range [start, end) of a text.
type span struct{ start, end int }

func isSpace(r rune) bool { return class(r) == clsSpace }

// skipSpace returns the first position at or after i that is not
// whitespace.
func skipSpace(s string, i int) int {
	return runEnd(s, i, clsSpace)
}

// trimEnd returns the end of s[start:end] without trailing whitespace.
func trimEnd(s string, start, end int) int {
	for end > start {
		r, n := utf8.DecodeLastRuneInString(s[start:end])
		if !isSpace(r) {
			break
		}
		end -= n
	}
	return end
}

// splitParagraphs appends the paragraphs of s: the text between runs of
// whitespace that hold at least two line feeds (Python: re.split(r"\n\s*\n")
// then strip, dropping empty ones), trimmed of surrounding whitespace.
// "\r\n\r\n" separates paragraphs too.
func splitParagraphs(dst []span, s string) []span {
	start := 0
	for i := 0; i < len(s); {
		k := strings.IndexByte(s[i:], '\n')
		if k < 0 {
			break
		}
		nl := i + k
		j, lfs := nl+1, 1
		for j < len(s) {
			r, n := decodeAt(s, j)
			if !isSpace(r) {
				break
			}
			if r == '\n' {
				lfs++
			}
			j += n
		}
		if lfs >= 2 {
			dst = appendTrimmed(dst, s, start, nl)
			start = j
		}
		i = j
	}
	return appendTrimmed(dst, s, start, len(s))
}

func appendTrimmed(dst []span, s string, start, end int) []span {
	start = skipSpace(s, start)
	if end = trimEnd(s, start, end); end > start {
		dst = append(dst, span{start, end})
	}
	return dst
}

// sentenceByte marks the bytes splitSentences must look at: ASCII
// terminators, line breaks, and the lead bytes of the full-width
// terminators (。 is E3 80 82; ．！？｡ start with EF).
var sentenceByte = [256]bool{'.': true, '!': true, '?': true, '\n': true, '\r': true, 0xE3: true, 0xEF: true}

// Sentence terminators. The full-width ones (and the half-width
// ideographic full stop) always end a sentence; the ASCII ones only when
// what follows looks like a new sentence (see sentenceEnds).
func isTerminator(r rune) bool {
	switch r {
	case '.', '!', '?', '。', '．', '！', '？', '｡':
		return true
	}
	return false
}

func isCJKTerminator(r rune) bool {
	switch r {
	case '。', '．', '！', '？', '｡':
		return true
	}
	return false
}

// isCloser reports closing brackets and quotes that stay with the sentence
// they close: 「はい。」 and "Go." are one sentence each.
func isCloser(r rune) bool {
	switch r {
	case '"', '\'', ')', ']', '}', '”', '’', '»', '›',
		'」', '』', '）', '］', '｝', '〕', '〉', '》', '】', '〙', '〛', '＂', '＇':
		return true
	}
	return false
}

// isOpener reports characters stripped from the front of a word before the
// abbreviation checks: ("Mr. → Mr.
func isOpener(r rune) bool {
	switch r {
	case '"', '\'', '(', '[', '{', '“', '‘', '«', '‹', '「', '『', '（', '［':
		return true
	}
	return false
}

// isCJK reports characters of Japanese/Chinese text (kana, kanji, CJK
// punctuation, full-width forms): after "!" or "." directly followed by
// one of them a new sentence starts even without a space.
func isCJK(r rune) bool {
	switch {
	case r >= 0x3000 && r <= 0x30FF, // CJK punctuation, hiragana, katakana
		r >= 0x3400 && r <= 0x4DBF, r >= 0x4E00 && r <= 0x9FFF, r >= 0xF900 && r <= 0xFAFF, // kanji
		r >= 0xFF01 && r <= 0xFF9F: // full-width forms, half-width katakana
		return true
	}
	return r >= 0x20000 && unicode.Is(unicode.Han, r)
}

// Abbreviations (lower case, without the period) after which a period
// followed by a space never ends a sentence.
var titleAbbrevs = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "mx": true, "dr": true, "prof": true, "sr": true, "jr": true,
	"st": true, "mt": true, "messrs": true, "mme": true, "mlle": true, "rev": true, "fr": true,
	"gen": true, "col": true, "capt": true, "cpt": true, "lt": true, "sgt": true, "cmdr": true, "adm": true,
	"gov": true, "sen": true, "rep": true, "pres": true, "hon": true, "supt": true,
	"vs": true, "cf": true, "approx": true, "al": true, "ca": true, "esp": true, "viz": true,
	"dept": true, "univ": true, "ave": true, "blvd": true,
}

// Abbreviations that do not end a sentence when a number follows:
// "No. 5", "p. 14", "Fig. 3", "Jan. 5".
var numberAbbrevs = map[string]bool{
	"no": true, "nos": true, "p": true, "pp": true, "vol": true, "vols": true, "fig": true, "figs": true,
	"eq": true, "eqs": true, "ch": true, "chap": true, "sec": true, "art": true, "op": true, "ed": true,
	"jan": true, "feb": true, "mar": true, "apr": true, "jun": true, "jul": true, "aug": true,
	"sep": true, "sept": true, "oct": true, "nov": true, "dec": true,
}

// splitSentences appends the sentences of paragraph s, each trimmed of
// surrounding whitespace; the text between two sentences is whitespace
// only, so every sentence group is a substring of s. With lineBreaks (the
// Japanese rules) a line break also ends a sentence.
func splitSentences(dst []span, s string, lineBreaks bool) []span {
	start := skipSpace(s, 0)
	for i := start; i < len(s); {
		if !sentenceByte[s[i]] { // most bytes: nothing to decide
			i++
			continue
		}
		r, n := decodeAt(s, i)
		if lineBreaks && (r == '\n' || r == '\r') {
			dst = appendTrimmed(dst, s, start, i)
			start = skipSpace(s, i)
			i = start
			continue
		}
		if !isTerminator(r) {
			i += n
			continue
		}
		j, cjk := i, false
		for j < len(s) {
			r2, n2 := decodeAt(s, j)
			if !isTerminator(r2) {
				break
			}
			cjk = cjk || isCJKTerminator(r2)
			j += n2
		}
		period := j == i+1 && s[i] == '.'
		for j < len(s) {
			r2, n2 := decodeAt(s, j)
			if !isCloser(r2) {
				break
			}
			j += n2
		}
		if sentenceEnds(s, start, i, j, cjk, period && j == i+1) {
			dst = append(dst, span{start, j})
			start = skipSpace(s, j)
			j = start
		}
		i = j
	}
	return appendTrimmed(dst, s, start, len(s))
}

// sentenceEnds decides whether the terminators at s[i:] (through closers,
// up to j) end the sentence that started at start. cjk: a full-width
// terminator is among them; period: they are a single "." without closers,
// which gets the abbreviation checks.
func sentenceEnds(s string, start, i, j int, cjk, period bool) bool {
	if j >= len(s) {
		return true
	}
	if cjk {
		// "３．５" is a number, not two sentences.
		if s[i:j] == "．" && i > start {
			prev, _ := utf8.DecodeLastRuneInString(s[start:i])
			next, _ := decodeAt(s, j)
			return !(unicode.IsDigit(prev) && unicode.IsDigit(next))
		}
		return true
	}
	next, _ := decodeAt(s, j)
	if !isSpace(next) {
		// "3.5", "e.g.,", "U.S.-based", "example.com" go on; "Python.次は" ends.
		return isCJK(next)
	}
	k := skipSpace(s, j)
	if k >= len(s) {
		return true
	}
	first, _ := decodeAt(s, k)
	if unicode.IsLower(first) { // "approx. five", "... and then"
		return false
	}
	if !period { // "!", "?", "...", `."` before a capital
		return true
	}
	word := lastWord(s, start, i)
	lw := strings.ToLower(word)
	switch {
	case titleAbbrevs[lw]:
		return false
	case numberAbbrevs[lw] && unicode.IsDigit(first):
		return false
	case isInitials(word):
		// "J. R. R. Tolkien", "U.S. Army", "e.g. Paris"; a lone "I." ends a
		// sentence unless another initial follows ("I. M. Pei").
		return word == "I" && !startsWithInitial(s, k)
	}
	return true
}

// lastWord returns the non-space run ending at i, without leading opening
// brackets and quotes.
func lastWord(s string, start, i int) string {
	w := i
	for w > start {
		r, n := utf8.DecodeLastRuneInString(s[start:w])
		if isSpace(r) {
			break
		}
		w -= n
	}
	for w < i {
		r, n := decodeAt(s, w)
		if !isOpener(r) {
			break
		}
		w += n
	}
	return s[w:i]
}

// isInitials matches single letters separated by periods: "J", "U.S",
// "e.g", "a.m".
func isInitials(w string) bool {
	if w == "" {
		return false
	}
	for part := range strings.SplitSeq(w, ".") {
		r, n := utf8.DecodeRuneInString(part)
		if n != len(part) || !unicode.IsLetter(r) {
			return false
		}
	}
	return true
}

// startsWithInitial reports "X." (a single letter and a period) at s[k:].
func startsWithInitial(s string, k int) bool {
	r, n := decodeAt(s, k)
	return unicode.IsUpper(r) && k+n < len(s) && s[k+n] == '.'
}

// isJapanese is the Python detection: any hiragana, katakana or CJK
// ideograph (U+3040–30FF, U+4E00–9FFF) in the first 100 characters.
func isJapanese(text string) bool {
	k := 0
	for _, r := range text {
		if k == 100 {
			break
		}
		if r >= 0x3040 && r <= 0x30FF || r >= 0x4E00 && r <= 0x9FFF {
			return true
		}
		k++
	}
	return false
}

// japaneseRules reports whether lang (or, when lang is empty, the text
// itself) calls for the Japanese sentence rules.
func japaneseRules(lang, text string) bool {
	l := strings.ToLower(strings.TrimSpace(lang))
	switch {
	case l == "":
		return isJapanese(text)
	case l == "ja" || l == "jp" || l == "japanese" || strings.HasPrefix(l, "ja-") || strings.HasPrefix(l, "ja_"),
		l == "zh" || strings.HasPrefix(l, "zh-") || strings.HasPrefix(l, "zh_"):
		return true
	}
	return false
}
