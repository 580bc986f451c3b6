package docs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

func TestDetectLang(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"english", "The river moved its bed after a wet spring.", "en"},
		{"japanese", "川は同じ場所にとどまらない。", "ja"},
		{"kana only", "ありがとう", "ja"},
		{"katakana only", "コンピューター", "ja"},
		{"half-width katakana", "ｺﾝﾋﾟｭｰﾀ", "ja"},
		{"kanji only", "東京都", "ja"},
		{"full-width latin", "ＡＢＣ", "ja"},
		{"iteration mark", "時々", "ja"},
		{"japanese with english terms", "CeleryのworkerはRedisのqueueからtaskを取り出して処理する。", "ja"},
		{"mostly english terms", "Kubernetes の Deployment で replicas を 3 に設定", "en"},
		{"english quoting japanese", "Tsundoku (積ん読) describes buying books and letting them pile up unread.", "en"},
		{"half and half", "The tea is grown in Shizuoka. 静岡の茶畑で育てられる。", "ja"},
		{"short english", "OK", "en"},
		{"short japanese", "はい", "ja"},
		{"short mixed", "Tokyo 東京", "ja"}, // 2 of 7 letters
		{"one kanji in a sentence", "The 駅 is near.", "en"},
		{"empty", "", "en"},
		{"no letters", "3.5 + 100 = 103.5 ！？", "en"},
		{"punctuation only japanese", "「」。、", "en"},
		{"accented latin", "Crème brûlée à la française", "en"},
		{"hangul is not japanese", "안녕하세요", "en"},
		{"threshold just below", "abcdefghi" + "日" + "xyz", "en"}, // 1 of 13
		{"threshold at 0.2", "abcd日", "ja"},                       // 1 of 5
	} {
		if got := DetectLang(tc.text); got != tc.want {
			t.Errorf("%s: DetectLang(%q) = %s, want %s", tc.name, tc.text, got, tc.want)
		}
	}
}

// Every sample file's documents are in the language its name says.
func TestDetectLangSamples(t *testing.T) {
	for _, f := range []string{"en.csv", "en.txt", "en.json", "ja.csv", "ja.txt", "ja.jsonl"} {
		c, err := LoadInput(filepath.Join(corpusDir, f), 0, InputOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := f[:2]
		for _, d := range c.Docs {
			if d.Lang != want {
				t.Errorf("%s: %s detected as %s", f, d.Source, d.Lang)
			}
		}
	}
	// The sample corpus stays small.
	var total int64
	_ = filepath.Walk(corpusDir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	if total > 200<<10 {
		t.Errorf("testdata/corpus is %d bytes, keep it under 200 KB", total)
	}
}

// isPySpace agrees with unicode.IsSpace above ASCII.
func TestIsPySpace(t *testing.T) {
	for r := rune(0x80); r <= 0x10FFFF; r++ {
		if isPySpace(r) != unicode.IsSpace(r) {
			t.Errorf("isPySpace(%U) = %v", r, isPySpace(r))
		}
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  plain  ", "plain"},
		{"line one\nline two\r\nline three\rend", "line one line two line three end"},
		{"tabs\tand\v\fform feeds", "tabs and form feeds"},
		{"a \u3000 b\u00a0c\u2003d", "a b c d"},
		{"\x1cfile\x1dsep\x1e\x1f", "file sep"},
		{"“double” and ‘single’ quotes", `"double" and 'single' quotes`},
		{"para one\n\npara two", "para one para two"},
		{"日本語。　全角スペース", "日本語。 全角スペース"},
		{"zero\u200bwidth", "zero\u200bwidth"}, // not white space in Python either
	} {
		if got := CleanText(tc.in); got != tc.want {
			t.Errorf("CleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if !isBlank(" \t\u3000\n") || isBlank(" x ") || !isBlankBytes([]byte("\r\n\u3000")) || isBlankBytes([]byte("\u200b")) {
		t.Error("isBlank")
	}
	if got := trimPy("\u3000 x y \n"); got != "x y" {
		t.Errorf("trimPy = %q", got)
	}
	if strings.Contains(CleanText("a\nb"), "\n") {
		t.Error("newline kept")
	}
}
