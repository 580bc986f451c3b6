package chunk

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// randomDocument builds a document from sentences of the sample
// paragraphs, random words, long unpunctuated runs and tiny sentences,
// joined with assorted whitespace (including paragraph breaks).
func randomDocument(rng *rand.Rand) string {
	var sents []string
	for _, p := range englishParagraphs {
		sents = append(sents, substrings(p, splitSentences(nil, p, false))...)
	}
	for _, p := range japaneseParagraphs {
		sents = append(sents, substrings(p, splitSentences(nil, p, true))...)
	}
	seps := []string{" ", " ", "", "  ", "\n", "\n\n", "\r\n\r\n", "\t", "\u3000", "\n \n"}
	var sb strings.Builder
	for k := rng.IntN(40); k >= 0; k-- {
		switch rng.IntN(12) {
		case 0: // long run without punctuation
			for range rng.IntN(300) {
				sb.WriteString([]string{"word ", "語", "鬱", "ab", "😀", "é", "x"}[rng.IntN(7)])
			}
		case 1:
			sb.WriteString([]string{"Ok.", "はい。", "Yes!", "？", "Mr.", "3.5"}[rng.IntN(6)])
		case 2:
			sb.WriteString(randomText(rng, rng.IntN(40)))
		default:
			sb.WriteString(sents[rng.IntN(len(sents))])
		}
		sb.WriteString(seps[rng.IntN(len(seps))])
	}
	return sb.String()
}

// For random texts: the chunks' texts (ignoring whitespace) add up to the
// input (ignoring whitespace); every chunk's Tokens is the count of its
// Text; every chunk fits MaxTokens when the continuity limit is within it,
// except a single character that alone exceeds the limit; with the
// default continuity limit of 300, chunks stay below 300 or MaxTokens.
func TestDocumentProperties(t *testing.T) {
	tok := cl100k(t)
	rng := rand.New(rand.NewPCG(5, 6))
	iters := 400
	if testing.Short() {
		iters = 60
	}
	toks := []Tokenizer{tok, tok, runeTok{}, byteTok{}}
	for it := range iters {
		text := randomDocument(rng)
		tk := toks[it%len(toks)]
		c := New(tk)
		limit := 3 + rng.IntN(300)
		lang := []string{"en", "ja", ""}[rng.IntN(3)]
		for _, opts := range []Options{
			{MaxTokens: limit, ContinuityLimit: limit + 1},
			{MaxTokens: limit},
			{MaxTokens: limit, MinTokens: -1},
		} {
			chunks := c.Document("doc", it, "x", lang, text, opts)
			bound := limit
			if opts.ContinuityLimit == 0 && opts.MinTokens == 0 {
				bound = max(limit, DefaultContinuityLimit-1)
			}
			desc := fmt.Sprintf("iteration %d, %T, %+v, lang %q", it, tk, opts, lang)
			var sb strings.Builder
			for i, ch := range chunks {
				sb.WriteString(ch.Text)
				if ch.Tokens != tk.Count(ch.Text) {
					t.Fatalf("%s: chunk %d tokens %d, count %d", desc, i, ch.Tokens, tk.Count(ch.Text))
				}
				if ch.Tokens > bound && utf8.RuneCountInString(strings.TrimSpace(ch.Text)) > 1 {
					t.Fatalf("%s: chunk %d (%s) has %d tokens > %d: %q", desc, i, ch.Type, ch.Tokens, bound, ch.Text)
				}
				if !utf8.ValidString(ch.Text) || strings.TrimSpace(ch.Text) == "" {
					t.Fatalf("%s: chunk %d text %q", desc, i, ch.Text)
				}
				if ch.ID != fmt.Sprintf("doc_chunk_%d", i) || ch.ChunkIdx != Index(i) {
					t.Fatalf("%s: chunk %d id %q idx %v", desc, i, ch.ID, ch.ChunkIdx)
				}
				switch ch.Type {
				case TypeParagraph, TypeSentenceGroup, TypeForcedSplit, TypeMerged:
				default:
					t.Fatalf("%s: type %q", desc, ch.Type)
				}
				if noSpace(strings.Join(ch.Sentences, "")) != noSpace(ch.Text) {
					t.Fatalf("%s: chunk %d sentences %q for %q", desc, i, ch.Sentences, ch.Text)
				}
			}
			if noSpace(sb.String()) != noSpace(text) {
				t.Fatalf("%s: chunks do not add up to the text\n in  %q\n out %q", desc, noSpace(text), noSpace(sb.String()))
			}
		}
	}
}
