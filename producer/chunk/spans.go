package chunk

import (
	"sort"
	"sync"
)

// spanCounter counts the tokens of one paragraph and of its substrings
// (sentence groups). The chunker tokenizes a long paragraph once, takes
// per-sentence counts for packing from that tokenization, and counts each
// final group exactly; with the cl100k tokenizer that exact count reuses
// the paragraph's pieces, so a paragraph costs about one tokenization
// instead of two.
type spanCounter interface {
	reset(text string)
	// upTo counts the text's tokens, stopping once more than limit
	// (LimitCounter's contract).
	upTo(limit int) int
	// ends returns the token ends of the whole text.
	ends() []int
	// count returns the exact number of tokens of text[a:b].
	count(a, b int) int
	// release ends the use of the counter.
	release()
}

func newSpanCounter(tok Tokenizer) spanCounter {
	if b, ok := tok.(*bpe); ok {
		s := bpeSpansPool.Get().(*bpeSpans)
		s.b = b
		return s
	}
	return &tokSpans{tok: tok}
}

var bpeSpansPool = sync.Pool{New: func() any { return new(bpeSpans) }}

// tokSpans is the spanCounter of any Tokenizer.
type tokSpans struct {
	tok     Tokenizer
	text    string
	tokEnds []int
	done    bool
}

func (s *tokSpans) reset(text string) { s.text, s.tokEnds, s.done = text, s.tokEnds[:0], false }

func (s *tokSpans) upTo(limit int) int { return countUpTo(s.tok, s.text, limit) }

func (s *tokSpans) ends() []int {
	if !s.done {
		s.tokEnds, s.done = s.tok.TokenEnds(s.tokEnds[:0], s.text), true
	}
	return s.tokEnds
}

func (s *tokSpans) count(a, b int) int { return s.tok.Count(s.text[a:b]) }

func (s *tokSpans) release() {}

// bpeSpans tokenizes its text piece by piece on demand and remembers each
// pre-tokenizer piece with its tokens. count(a, b) reuses a remembered
// piece wherever text[a:b]'s own pre-tokenization reaches the piece's
// start and the piece's scan stayed within b (then the piece is the same
// in text[:b]); elsewhere (the start of a sentence, which in the paragraph
// is glued to the preceding space or 。, and the last piece or two) it
// tokenizes afresh. The result is exactly Count(text[a:b]).
type bpeSpans struct {
	b       *bpe
	text    string
	pos     int // text[:pos] is tokenized
	pieces  []spanPiece
	tokEnds []int
	sc      *scratch
}

type spanPiece struct {
	start, end, ext int32
	tok             int32 // index in tokEnds of the piece's first token
}

func (s *bpeSpans) reset(text string) {
	s.text, s.pos, s.pieces, s.tokEnds = text, 0, s.pieces[:0], s.tokEnds[:0]
}

// step tokenizes the next piece.
func (s *bpeSpans) step() {
	end, ext := nextPiece(s.text, s.pos)
	s.pieces = append(s.pieces, spanPiece{start: int32(s.pos), end: int32(end), ext: int32(ext), tok: int32(len(s.tokEnds))})
	s.tokEnds = s.b.appendEnds(s.tokEnds, s.text, s.pos, end, &s.sc)
	s.pos = end
}

func (s *bpeSpans) upTo(limit int) int {
	for s.pos < len(s.text) && len(s.tokEnds) <= limit {
		s.step()
	}
	return len(s.tokEnds)
}

func (s *bpeSpans) ends() []int {
	for s.pos < len(s.text) {
		s.step()
	}
	return s.tokEnds
}

func (s *bpeSpans) count(a, b int) int {
	s.ends()
	k := sort.Search(len(s.pieces), func(i int) bool { return int(s.pieces[i].start) >= a })
	n := 0
	for pos := a; pos < b; {
		for k < len(s.pieces) && int(s.pieces[k].start) < pos {
			k++
		}
		if k < len(s.pieces) && int(s.pieces[k].start) == pos && int(s.pieces[k].ext) <= b {
			p := s.pieces[k]
			next := len(s.tokEnds)
			if k+1 < len(s.pieces) {
				next = int(s.pieces[k+1].tok)
			}
			n += next - int(p.tok)
			pos = int(p.end)
			k++
			continue
		}
		end, _ := nextPiece(s.text[:b], pos)
		n += s.b.pieceCount(s.text[pos:end], &s.sc)
		pos = end
	}
	return n
}

// release returns s to the pool; the chunker does not use it afterwards.
func (s *bpeSpans) release() {
	if s.sc != nil {
		scratchPool.Put(s.sc)
		s.sc = nil
	}
	s.text = ""
	if cap(s.pieces) > 1<<16 { // do not keep the memory of a huge paragraph
		s.pieces, s.tokEnds = nil, nil
	}
	bpeSpansPool.Put(s)
}
