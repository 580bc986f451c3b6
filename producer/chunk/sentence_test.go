package chunk

import (
	"slices"
	"testing"
)

func sentences(s string, ja bool) []string {
	classOnce.Do(initClasses)
	return substrings(s, splitSentences(nil, s, ja))
}

func TestSplitSentencesEnglish(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"Hello world. How are you? Fine!", []string{"Hello world.", "How are you?", "Fine!"}},
		{"Mr. Smith met Dr. Jones and Prof. Lee. They talked.", []string{"Mr. Smith met Dr. Jones and Prof. Lee.", "They talked."}},
		{"It costs 3.5 dollars, i.e. cheap. Prices rose 4.2% in 2024. Next.", []string{"It costs 3.5 dollars, i.e. cheap.", "Prices rose 4.2% in 2024.", "Next."}},
		{"Cities, e.g. Paris, are big. See the U.S. Army report. Done.", []string{"Cities, e.g. Paris, are big.", "See the U.S. Army report.", "Done."}},
		{"The Lord of the Rings by J. R. R. Tolkien is long. I. M. Pei was an architect. So am I. Really.", []string{"The Lord of the Rings by J. R. R. Tolkien is long.", "I. M. Pei was an architect.", "So am I.", "Really."}},
		{"See No. 5 and p. 14 of vol. 3 (Fig. 2). It was on Jan. 5. The end.", []string{"See No. 5 and p. 14 of vol. 3 (Fig. 2).", "It was on Jan. 5.", "The end."}},
		{`He said "Go." Then he left. She asked 'why?' Nobody knew.`, []string{`He said "Go."`, "Then he left.", "She asked 'why?'", "Nobody knew."}},
		{"Wait... What? Really?! Yes. (It was true.) OK.", []string{"Wait...", "What?", "Really?!", "Yes.", "(It was true.)", "OK."}},
		{"Wait... and then approx. five people came at 7 p.m. yesterday.", []string{"Wait... and then approx. five people came at 7 p.m. yesterday."}},
		{"Visit example.com or node.js today. Yahoo! is a portal.", []string{"Visit example.com or node.js today.", "Yahoo! is a portal."}},
		{"  Leading and trailing spaces.   Two spaces between.  ", []string{"Leading and trailing spaces.", "Two spaces between."}},
		{"No terminator at the end", []string{"No terminator at the end"}},
		{"Line one\nstill the same sentence. Next.", []string{"Line one\nstill the same sentence.", "Next."}},
		{"", nil},
		{"   ", nil},
		{"...", []string{"..."}},
	} {
		if got := sentences(c.text, false); !slices.Equal(got, c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.text, got, c.want)
		}
	}
}

func TestSplitSentencesJapanese(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"今日は晴れです。明日は雨ですか？そうです！", []string{"今日は晴れです。", "明日は雨ですか？", "そうです！"}},
		{"彼は「はい。」と言った。『本当？』と聞いた。（注：未確認。）以上。", []string{"彼は「はい。」", "と言った。", "『本当？』", "と聞いた。", "（注：未確認。）", "以上。"}},
		{"本当ですか？！はい。。次へ．終わり｡", []string{"本当ですか？！", "はい。。", "次へ．", "終わり｡"}},
		{"円周率は３．１４です。Python.次はGo!その次", []string{"円周率は３．１４です。", "Python.", "次はGo!", "その次"}},
		{"見出し\n本文です。\r\n次の行", []string{"見出し", "本文です。", "次の行"}},
		{"価格は3.5ドル、約400円。Mr. Tanaka は来た。", []string{"価格は3.5ドル、約400円。", "Mr. Tanaka は来た。"}},
		{"文の後に空白。 次の文。\u3000全角空白の後。", []string{"文の後に空白。", "次の文。", "全角空白の後。"}},
	} {
		if got := sentences(c.text, true); !slices.Equal(got, c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.text, got, c.want)
		}
	}
	// Without the Japanese rules a line break does not end a sentence.
	if got := sentences("見出し\n本文です。", false); !slices.Equal(got, []string{"見出し\n本文です。"}) {
		t.Errorf("English rules: %q", got)
	}
}

func TestSplitParagraphs(t *testing.T) {
	classOnce.Do(initClasses)
	for _, c := range []struct {
		text string
		want []string
	}{
		{"One.\n\nTwo.", []string{"One.", "Two."}},
		{"One.\r\n\r\nTwo.\r\nStill two.", []string{"One.", "Two.\r\nStill two."}},
		{"  One. \n \t \n\n\n  Two.  \n", []string{"One.", "Two."}},
		{"One.\n\u3000\nTwo.", []string{"One.", "Two."}},
		{"\n\n\n", nil},
		{"", nil},
		{"Single line", []string{"Single line"}},
	} {
		if got := substrings(c.text, splitParagraphs(nil, c.text)); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.text, got, c.want)
		}
	}
}

func TestJapaneseRules(t *testing.T) {
	for _, c := range []struct {
		lang, text string
		want       bool
	}{
		{"ja", "English text", true},
		{"en", "日本語のテキスト", false},
		{"ja-JP", "", true},
		{"zh", "", true},
		{"", "日本語のテキスト", true},
		{"", "English text with カタカナ", true},
		{"", "English text only", false},
		{"", string(make([]byte, 100)) + "日本語", false}, // beyond the first 100 characters
	} {
		if got := japaneseRules(c.lang, c.text); got != c.want {
			t.Errorf("japaneseRules(%q, %q) = %v", c.lang, c.text, got)
		}
	}
}
