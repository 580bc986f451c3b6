package chunk

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"
)

// runeTok counts one token per character: deterministic sizes for tests.
// It has no CountUpTo, so it also exercises the plain Tokenizer paths.
type runeTok struct{}

func (runeTok) Count(s string) int { return utf8.RuneCountInString(s) }

func (runeTok) TokenEnds(dst []int, s string) []int {
	for i := range s {
		if i > 0 {
			dst = append(dst, i)
		}
	}
	if s != "" {
		dst = append(dst, len(s))
	}
	return dst
}

// byteTok counts one token per byte, so token windows end inside
// multi-byte characters.
type byteTok struct{}

func (byteTok) Count(s string) int { return len(s) }

func (byteTok) TokenEnds(dst []int, s string) []int {
	for i := 1; i <= len(s); i++ {
		dst = append(dst, i)
	}
	return dst
}

// plusOneTok counts one token per character plus one for the whole text
// (like a start-of-text token), so text[a:b] always counts more than the
// token ends inside it: every forced window and every single sentence
// counts one more than the window or the sentence's share of its
// paragraph.
type plusOneTok struct{ runeTok }

func (plusOneTok) Count(s string) int {
	if s == "" {
		return 0
	}
	return utf8.RuneCountInString(s) + 1
}

func noSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

func texts(chunks []Chunk) []string {
	var out []string
	for _, c := range chunks {
		out = append(out, c.Text)
	}
	return out
}

func types(chunks []Chunk) []string {
	var out []string
	for _, c := range chunks {
		out = append(out, c.Type)
	}
	return out
}

func TestDocumentEmpty(t *testing.T) {
	c := New(cl100k(t))
	for _, text := range []string{"", "   ", "\n\n\t \r\n", "\u3000\n\u3000"} {
		if got := c.Document("d", 0, "cc_news", "en", text, Options{}); len(got) != 0 {
			t.Errorf("%q: %d chunks: %q", text, len(got), texts(got))
		}
	}
}

func TestDocumentParagraph(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	p := englishParagraphs[0]
	got := c.Document("cc_news_0_Daughter Duo is Dancing in The", 0, "cc_news", "en", "\n  "+p+"  \n", Options{MaxTokens: 300})
	if len(got) != 1 {
		t.Fatalf("%d chunks: %q", len(got), texts(got))
	}
	ch := got[0]
	want := Chunk{
		ID: "cc_news_0_Daughter Duo is Dancing in The_chunk_0", Text: p, Tokens: tok.Count(p), Type: TypeParagraph,
		Sentences: []string{
			"The city council met on Tuesday to discuss the new transit plan.",
			"Mr. Alvarez, who chairs the committee, said the proposal would cost about $3.5 million over five years.",
			"Critics argued that the money should go to road repairs instead.",
			"The vote was postponed until next month.",
		},
		DocID: "cc_news_0_Daughter Duo is Dancing in The", DocIdx: 0, ChunkIdx: Index(0), DatasetType: "cc_news",
	}
	if fmt.Sprintf("%#v", ch) != fmt.Sprintf("%#v", want) {
		t.Errorf("got  %#v\nwant %#v", ch, want)
	}
}

func TestDocumentExactLimit(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	for _, p := range []string{englishParagraphs[1], japaneseParagraphs[2]} {
		n := tok.Count(p)
		got := c.Document("d", 0, "x", "", p, Options{MaxTokens: n})
		if len(got) != 1 || got[0].Type != TypeParagraph || got[0].Text != p || got[0].Tokens != n {
			t.Errorf("at the limit (%d): %q %q", n, types(got), texts(got))
		}
		got = c.Document("d", 0, "x", "", p, Options{MaxTokens: n - 1, MinTokens: -1})
		if len(got) < 2 {
			t.Fatalf("one over the limit (%d): %q", n-1, texts(got))
		}
		for _, ch := range got {
			if ch.Type != TypeSentenceGroup || ch.Tokens > n-1 {
				t.Errorf("one over the limit: %s %d tokens", ch.Type, ch.Tokens)
			}
		}
	}
}

func TestDocumentCRLFParagraphs(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	a, b := englishParagraphs[2], englishParagraphs[3]
	got := c.Document("d", 0, "x", "en", a+"\r\n\r\n"+b+"\r\n", Options{MaxTokens: 300})
	if !slices.Equal(texts(got), []string{a, b}) || !slices.Equal(types(got), []string{TypeParagraph, TypeParagraph}) {
		t.Errorf("got %q %q", types(got), texts(got))
	}
	// A single CRLF is not a paragraph break.
	got = c.Document("d", 0, "x", "en", a+"\r\n"+b, Options{MaxTokens: 300})
	if len(got) != 1 || got[0].Text != a+"\r\n"+b {
		t.Errorf("single CRLF: %q", texts(got))
	}
}

func checkChunks(t *testing.T, tok Tokenizer, chunks []Chunk, limit int) {
	t.Helper()
	for i, ch := range chunks {
		if ch.Tokens != tok.Count(ch.Text) {
			t.Errorf("chunk %d: tokens %d, count %d", i, ch.Tokens, tok.Count(ch.Text))
		}
		if limit > 0 && ch.Tokens > limit {
			t.Errorf("chunk %d: %d tokens > %d: %q", i, ch.Tokens, limit, ch.Text)
		}
		if !utf8.ValidString(ch.Text) {
			t.Errorf("chunk %d: invalid UTF-8", i)
		}
		if ch.ID != fmt.Sprintf("%s_chunk_%d", ch.DocID, i) {
			t.Errorf("chunk %d: id %q", i, ch.ID)
		}
		if n, ok := ch.ChunkIdx.Int(); !ok || n != i {
			t.Errorf("chunk %d: chunk_idx %v", i, ch.ChunkIdx)
		}
		for _, s := range ch.Sentences {
			if !strings.Contains(ch.Text, s) {
				t.Errorf("chunk %d: sentence %q not in text", i, s)
			}
		}
		if noSpace(strings.Join(ch.Sentences, "")) != noSpace(ch.Text) {
			t.Errorf("chunk %d: sentences %q do not cover %q", i, ch.Sentences, ch.Text)
		}
	}
}

func TestDocumentEnglishPacking(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	para := strings.Join(englishParagraphs, " ") // a02's Combined_Text: one paragraph
	got := c.Document("d", 3, "cc_news", "en", para, Options{MaxTokens: 120, MinTokens: -1})
	checkChunks(t, tok, got, 120)
	if len(got) < 5 {
		t.Fatalf("%d chunks", len(got))
	}
	for _, ch := range got {
		if ch.Type != TypeSentenceGroup {
			t.Errorf("type %s", ch.Type)
		}
		// Sentences keep their spaces: the input has single spaces.
		if ch.Text != strings.Join(ch.Sentences, " ") {
			t.Errorf("text %q\nsentences %q", ch.Text, ch.Sentences)
		}
	}
	if strings.Join(texts(got), " ") != para {
		t.Errorf("chunks do not add up to the paragraph")
	}
	found := false
	for _, ch := range got {
		found = found || slices.Contains(ch.Sentences, "Analysts, e.g. those at J. P. Morgan, had expected slower growth.")
	}
	if !found {
		t.Errorf("abbreviations and initials split a sentence")
	}
}

func TestDocumentJapanesePacking(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	para := strings.Join(japaneseParagraphs, "")
	got := c.Document("d", 0, "wikipedia_ja", "ja", para, Options{MaxTokens: 100, MinTokens: -1})
	checkChunks(t, tok, got, 100)
	if strings.Join(texts(got), "") != para {
		t.Errorf("chunks do not add up to the paragraph")
	}
	for _, ch := range got {
		if ch.Type != TypeSentenceGroup {
			t.Errorf("type %s", ch.Type)
		}
		for _, s := range ch.Sentences {
			r, _ := utf8.DecodeLastRuneInString(s)
			if !strings.ContainsRune("。！？」』）", r) {
				t.Errorf("sentence %q ends with %q", s, r)
			}
		}
	}
}

func TestDocumentManyTinySentences(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	text := strings.Repeat("Yes. No! Why? ", 300)
	got := c.Document("d", 0, "x", "en", text, Options{MaxTokens: 50, ContinuityLimit: 51})
	checkChunks(t, tok, got, 50)
	if noSpace(strings.Join(texts(got), "")) != noSpace(text) {
		t.Errorf("text lost")
	}
	// Default continuity limit (300): chunks below 50 tokens join their
	// predecessor, which can then exceed MaxTokens (as in Python).
	got = c.Document("d", 0, "x", "en", text, Options{MaxTokens: 50})
	checkChunks(t, tok, got, 299)
	if noSpace(strings.Join(texts(got), "")) != noSpace(text) {
		t.Errorf("text lost")
	}
}

func TestForcedSplitEnglish(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	var words []string
	for i := range 2000 {
		words = append(words, englishWords[i*7%len(englishWords)])
	}
	text := strings.Join(words, " ")
	got := c.Document("d", 0, "x", "en", text, Options{MaxTokens: 100, MinTokens: -1})
	checkChunks(t, tok, got, 100)
	if strings.Join(texts(got), "") != text {
		t.Errorf("forced pieces do not add up to the sentence")
	}
	for _, ch := range got {
		if ch.Type != TypeForcedSplit || len(ch.Sentences) != 1 || ch.Sentences[0] != strings.TrimSpace(ch.Text) {
			t.Errorf("%s %q", ch.Type, ch.Sentences)
		}
	}
}

var englishWords = strings.Fields("the quick brown fox jumps over lazy dog while researchers measure " +
	"throughput of tokenizers across corpora containing newspapers novels and encyclopaedia articles")

func TestForcedSplitJapaneseUTF8(t *testing.T) {
	tok := cl100k(t)
	text := strings.Repeat("吾輩は猫である名前はまだ無いどこで生れたかとんと見当がつかぬ鬱蒼とした森の奥", 60)
	for _, tc := range []struct {
		tok   Tokenizer
		limit int
	}{{tok, 50}, {tok, 7}, {byteTok{}, 10}, {byteTok{}, 4}, {runeTok{}, 33}} {
		c := New(tc.tok)
		got := c.Document("d", 0, "x", "ja", text, Options{MaxTokens: tc.limit, MinTokens: -1})
		checkChunks(t, tc.tok, got, tc.limit)
		if strings.Join(texts(got), "") != text {
			t.Errorf("%T %d: pieces do not add up to the sentence", tc.tok, tc.limit)
		}
		for _, ch := range got {
			if ch.Type != TypeForcedSplit {
				t.Errorf("type %s", ch.Type)
			}
		}
	}
}

func TestForceSplitPieces(t *testing.T) {
	tok := cl100k(t)
	for _, s := range []string{
		strings.Repeat("鬱蒼とした森の奥深く", 40),
		strings.Repeat("a😀é ", 200),
		strings.Repeat("x", 5000),
		"short",
	} {
		for _, tk := range []Tokenizer{tok, byteTok{}, runeTok{}} {
			for _, limit := range []int{1, 3, 16, 100} {
				cuts := forceSplit(tk, s, limit)
				var sb strings.Builder
				for _, c := range cuts {
					p := s[c.start:c.end]
					sb.WriteString(p)
					if !utf8.ValidString(p) {
						t.Fatalf("%T %d: invalid piece %q", tk, limit, p)
					}
					if c.tokens != tk.Count(p) {
						t.Fatalf("%T %d: tokens %d, count %d", tk, limit, c.tokens, tk.Count(p))
					}
					if c.tokens > limit && utf8.RuneCountInString(p) > 1 {
						t.Fatalf("%T %d: %d tokens in %q", tk, limit, c.tokens, p)
					}
				}
				if sb.String() != s {
					t.Fatalf("%T %d: pieces do not add up", tk, limit)
				}
			}
		}
	}
	// A character that alone takes more tokens than the limit is a piece
	// of its own (the only case over the limit).
	cuts := forceSplit(byteTok{}, "鬱鬱", 2)
	if len(cuts) != 2 || cuts[0] != (cut{0, 3, 3}) || cuts[1] != (cut{3, 6, 3}) {
		t.Errorf("cuts %v", cuts)
	}
}

// Recounts larger than the window or the sentence counts: forced pieces
// shrink, sentence groups lose sentences, a sentence over the limit is
// force-split.
func TestRecountOverLimit(t *testing.T) {
	tk := plusOneTok{}
	c := New(tk)
	s := strings.Repeat("鬱a", 50)
	cuts := forceSplit(tk, s, 10)
	var sb strings.Builder
	for _, ct := range cuts {
		sb.WriteString(s[ct.start:ct.end])
		if ct.tokens > 10 || ct.tokens != tk.Count(s[ct.start:ct.end]) {
			t.Errorf("cut %v: %d tokens", ct, tk.Count(s[ct.start:ct.end]))
		}
	}
	if sb.String() != s {
		t.Errorf("cuts do not add up")
	}
	// Sentences of exactly 10 characters: their share of the paragraph is
	// 10 (11 with the space), alone they count 11.
	text := strings.Repeat("Abcdefghi. ", 6)
	got := c.Document("d", 0, "x", "en", text, Options{MaxTokens: 10, MinTokens: -1})
	checkChunks(t, tk, got, 10)
	if noSpace(strings.Join(texts(got), "")) != noSpace(text) {
		t.Errorf("text lost: %q", texts(got))
	}
	for _, ch := range got {
		if ch.Type != TypeForcedSplit {
			t.Errorf("type %s", ch.Type)
		}
	}
	got = c.Document("d", 0, "x", "en", text, Options{MaxTokens: 25, MinTokens: -1})
	checkChunks(t, tk, got, 25)
	if noSpace(strings.Join(texts(got), "")) != noSpace(text) {
		t.Errorf("text lost: %q", texts(got))
	}
}

func TestContinuityMerge(t *testing.T) {
	c := New(runeTok{})
	long := strings.Repeat("a", 99) + "."
	sent := "S" + strings.Repeat("s", 58) + "."

	// A small paragraph joins the paragraph before it ("\n\n" between).
	got := c.Document("d", 0, "x", "en", long+"\n\n"+"Tiny.", Options{MaxTokens: 200})
	if len(got) != 1 || got[0].Text != long+"\n\nTiny." || got[0].Tokens != 107 || got[0].Type != TypeParagraph ||
		!slices.Equal(got[0].Sentences, []string{long, "Tiny."}) {
		t.Errorf("paragraph + tiny: %q %d %s %q", texts(got), got[0].Tokens, got[0].Type, got[0].Sentences)
	}

	// Different types make "merged".
	para := strings.Join([]string{sent, sent, sent}, " ")
	got = c.Document("d", 0, "x", "en", para+"\n\nTiny.", Options{MaxTokens: 100})
	if !slices.Equal(types(got), []string{TypeSentenceGroup, TypeSentenceGroup, TypeMerged}) ||
		got[2].Text != sent+"\n\nTiny." || got[2].Tokens != 67 {
		t.Errorf("groups + tiny: %q %q", types(got), texts(got))
	}

	// Within a paragraph the source whitespace joins the pieces.
	got = c.Document("d", 0, "x", "en", sent+"  "+sent+" Small one.", Options{MaxTokens: 100})
	if !slices.Equal(texts(got), []string{sent, sent + " Small one."}) || got[1].Type != TypeSentenceGroup {
		t.Errorf("trailing small group: %q %q", types(got), texts(got))
	}

	// The first chunk is never merged, whatever its size.
	got = c.Document("d", 0, "x", "en", "Tiny.\n\n"+long, Options{MaxTokens: 200})
	if !slices.Equal(texts(got), []string{"Tiny.", long}) {
		t.Errorf("tiny first: %q", texts(got))
	}

	// No join when the joined text reaches the limit.
	got = c.Document("d", 0, "x", "en", long+"\n\nTiny.", Options{MaxTokens: 200, ContinuityLimit: 107})
	if !slices.Equal(texts(got), []string{long, "Tiny."}) {
		t.Errorf("at the continuity limit: %q", texts(got))
	}
	got = c.Document("d", 0, "x", "en", long+"\n\nTiny.", Options{MaxTokens: 200, ContinuityLimit: 108})
	if len(got) != 1 {
		t.Errorf("below the continuity limit: %q", texts(got))
	}

	// Disabled.
	got = c.Document("d", 0, "x", "en", long+"\n\nTiny.", Options{MaxTokens: 200, MinTokens: -1})
	if len(got) != 2 {
		t.Errorf("disabled: %q", texts(got))
	}

	// Chains of small chunks keep joining while the result stays small.
	got = c.Document("d", 0, "x", "en", "A.\n\nB.\n\nC.\n\n"+long+"\n\nD.\n\nE.", Options{MaxTokens: 200})
	if !slices.Equal(texts(got), []string{"A.\n\nB.\n\nC.", long + "\n\nD.\n\nE."}) {
		t.Errorf("chain: %q", texts(got))
	}
}

func TestContinuityMergeCL100K(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	p := englishParagraphs[4]
	got := c.Document("d", 0, "x", "en", p+"\n\nThanks for reading.", Options{MaxTokens: 300})
	want := p + "\n\nThanks for reading."
	if len(got) != 1 || got[0].Text != want || got[0].Tokens != tok.Count(want) || got[0].Type != TypeParagraph {
		t.Errorf("got %q", texts(got))
	}
	ja := japaneseParagraphs[0]
	got = c.Document("d", 0, "x", "ja", ja+"以上。", Options{MaxTokens: 40})
	checkChunks(t, tok, got, 299)
	if strings.Join(texts(got), "") != ja+"以上。" {
		t.Errorf("japanese: %q", texts(got))
	}
	if last := got[len(got)-1]; !strings.HasSuffix(last.Text, "を置いている。以上。") {
		t.Errorf("small trailing sentence not joined: %q", texts(got))
	}
}

func TestDocumentIDs(t *testing.T) {
	c := New(runeTok{})
	docID := "wikipedia_ja_12_東京 (日本の首都)"
	got := c.Document(docID, 12, "wikipedia_ja", "ja", strings.Repeat("これは文です。", 30), Options{MaxTokens: 60, MinTokens: -1})
	if len(got) < 3 {
		t.Fatalf("%d chunks", len(got))
	}
	for i, ch := range got {
		if ch.ID != docID+"_chunk_"+fmt.Sprint(i) || ch.DocID != docID || ch.DocIdx != 12 || ch.DatasetType != "wikipedia_ja" || ch.ChunkIdx != Index(i) {
			t.Errorf("chunk %d: %+v", i, ch)
		}
	}
}

func TestDocumentLanguage(t *testing.T) {
	c := New(cl100k(t))
	text := "見出し\n本文です。"
	for _, tc := range []struct {
		lang string
		want []string
	}{{"", []string{"見出し", "本文です。"}}, {"ja", []string{"見出し", "本文です。"}}, {"en", []string{text}}} {
		got := c.Document("d", 0, "x", tc.lang, text, Options{})
		if len(got) != 1 || !slices.Equal(got[0].Sentences, tc.want) {
			t.Errorf("lang %q: %q", tc.lang, got[0].Sentences)
		}
	}
}

func TestDocumentInvalidUTF8(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	got := c.Document("d", 0, "x", "en", "Bad \xff\xfe bytes. Fine.", Options{})
	if len(got) != 1 || got[0].Text != "Bad \uFFFD bytes. Fine." || got[0].Tokens != tok.Count(got[0].Text) {
		t.Errorf("got %q", texts(got))
	}
}

func TestDocumentConcurrent(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	docs := benchDocs(benchJapanese(60_000) + benchEnglish(60_000))
	want := make([][]Chunk, len(docs))
	for i, d := range docs {
		want[i] = c.Document("d", i, "x", "", d, Options{MaxTokens: 120})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(docs); i += 4 {
				got := c.Document("d", i, "x", "", docs[i], Options{MaxTokens: 120})
				if fmt.Sprint(got) != fmt.Sprint(want[i]) {
					t.Errorf("doc %d differs", i)
				}
			}
		})
	}
	wg.Wait()
}
