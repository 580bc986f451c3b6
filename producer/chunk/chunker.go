package chunk

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Defaults (the Python values).
const (
	// DefaultMaxTokens is create_semantic_chunks' default max_tokens; a02
	// always passes the dataset's chunk_size (250/200/300/200, 300 for
	// uploads) instead.
	DefaultMaxTokens = 200
	// DefaultMinTokens is the topic-continuity threshold (min_tokens=50).
	DefaultMinTokens = 50
	// DefaultContinuityLimit is the hard-coded 300: a small chunk joins its
	// predecessor only when the joined text has fewer tokens.
	DefaultContinuityLimit = 300
	// DefaultMergeMinTokens and DefaultMergeMaxTokens are
	// merge_small_chunks' defaults (--min-tokens, --max-tokens).
	DefaultMergeMinTokens = 150
	DefaultMergeMaxTokens = 400
)

// Options are the per-document chunking parameters.
type Options struct {
	// MaxTokens is the chunk size limit (the dataset's chunk_size);
	// <= 0 means DefaultMaxTokens.
	MaxTokens int
	// MinTokens: chunks after the first with fewer tokens are joined to
	// the previous chunk by the topic-continuity pass. 0 means
	// DefaultMinTokens; negative disables the pass.
	MinTokens int
	// ContinuityLimit: the join happens only if the joined text has fewer
	// tokens than this. 0 means DefaultContinuityLimit. It is independent
	// of MaxTokens (as in Python), so a joined chunk can exceed MaxTokens;
	// set it to MaxTokens+1 to keep every chunk within MaxTokens.
	ContinuityLimit int
}

func (o Options) withDefaults() Options {
	if o.MaxTokens <= 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	if o.MinTokens == 0 {
		o.MinTokens = DefaultMinTokens
	}
	if o.ContinuityLimit <= 0 {
		o.ContinuityLimit = DefaultContinuityLimit
	}
	return o
}

// Chunker splits documents into chunks. It holds no per-call state and is
// safe for concurrent use when its Tokenizer is (CL100K's is).
type Chunker struct {
	tok Tokenizer
}

// New returns a Chunker counting with tok.
func New(tok Tokenizer) *Chunker {
	classOnce.Do(initClasses)
	return &Chunker{tok: tok}
}

// piece is a chunk under construction.
type piece struct {
	text      string
	tokens    int
	typ       string
	sentences []string
	// Byte offsets in the document of the piece's first and last part and
	// the paragraph of its last part, to join with the source's own
	// whitespace.
	start, end, para int
}

// Document chunks one document (Python: create_semantic_chunks with
// prefer_paragraphs=True, then a02's chunk dict). lang is "ja" or "en"
// (Japanese rules also for "zh"); empty means detect it as Python did,
// from the first 100 characters. Text without non-space characters gives
// no chunks.
func (c *Chunker) Document(docID string, docIdx int, datasetType, lang, text string, opts Options) []Chunk {
	opts = opts.withDefaults()
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	ja := japaneseRules(lang, text)
	pieces := c.pieces(text, ja, opts)
	if opts.MinTokens > 0 {
		pieces = c.continuity(text, pieces, opts)
	}
	out := make([]Chunk, len(pieces))
	prefix := docID + "_chunk_"
	for i, p := range pieces {
		out[i] = Chunk{
			ID: prefix + strconv.Itoa(i), Text: p.text, Tokens: p.tokens, Type: p.typ, Sentences: p.sentences,
			DocID: docID, DocIdx: docIdx, ChunkIdx: Index(i), DatasetType: datasetType,
		}
	}
	return out
}

// pieces is _chunk_by_paragraphs: a paragraph that fits is one chunk, a
// longer one is packed sentence by sentence, and a sentence longer than
// the limit is split on token windows.
//
// Packing adds per-sentence counts as Python did; a sentence's count is
// the number of the paragraph's tokens that end inside it (one
// tokenization of the paragraph, no per-sentence recount). Each final
// chunk text is then counted once, exactly.
func (c *Chunker) pieces(text string, ja bool, opts Options) []piece {
	limit := opts.MaxTokens
	sp := newSpanCounter(c.tok)
	defer sp.release()
	var out []piece
	var sents []span
	var counts []int
	for pi, para := range splitParagraphs(nil, text) {
		p := text[para.start:para.end]
		sents = splitSentences(sents[:0], p, ja)
		sp.reset(p)
		if n := sp.upTo(limit); n <= limit {
			out = append(out, piece{
				text: p, tokens: n, typ: TypeParagraph, sentences: substrings(p, sents),
				start: para.start, end: para.end, para: pi,
			})
			continue
		}
		counts = sentenceCounts(counts[:0], sp.ends(), sents)
		g := packer{c: c, sp: sp, p: p, base: para.start, para: pi, limit: limit, out: out}
		first, sum := 0, 0
		for k, s := range sents {
			n := counts[k]
			if n > limit {
				if n = sp.count(s.start, s.end); n > limit {
					g.group(sents[first:k])
					g.forced(s)
					first, sum = k+1, 0
					continue
				}
			}
			if sum+n > limit {
				g.group(sents[first:k])
				first, sum = k, n
			} else {
				sum += n
			}
		}
		g.group(sents[first:])
		out = g.out
	}
	return out
}

// sentenceCounts appends, for each sentence, the number of tokens (ends)
// of the paragraph that end after the sentence's start and no later than
// the next sentence's start.
func sentenceCounts(dst, ends []int, sents []span) []int {
	t := 0
	for k := range sents {
		bound := math.MaxInt
		if k+1 < len(sents) {
			bound = sents[k+1].start
		}
		n := 0
		for ; t < len(ends) && ends[t] <= bound; t++ {
			n++
		}
		dst = append(dst, n)
	}
	return dst
}

// packer emits the chunks of one long paragraph p (at offset base of the
// document).
type packer struct {
	c           *Chunker
	sp          spanCounter // counting p
	p           string
	base, limit int
	para        int
	out         []piece
}

// group emits sentences sents as sentence_group chunks: normally one,
// whose text is the paragraph from the first sentence to the last,
// inter-sentence whitespace included, and whose token count is taken on
// that text. In the rare case where that count exceeds the limit although
// the sentence counts did not, trailing sentences move to another chunk
// (and a single sentence over the limit is force-split).
func (g *packer) group(sents []span) {
	for len(sents) > 0 {
		k := len(sents)
		var n int
		for {
			n = g.sp.count(sents[0].start, sents[k-1].end)
			if n <= g.limit || k == 1 {
				break
			}
			k--
		}
		if n > g.limit {
			g.forced(sents[0])
			sents = sents[1:]
			continue
		}
		s, e := sents[0].start, sents[k-1].end
		g.out = append(g.out, piece{
			text: g.p[s:e], tokens: n, typ: TypeSentenceGroup, sentences: substrings(g.p, sents[:k]),
			start: g.base + s, end: g.base + e, para: g.para,
		})
		sents = sents[k:]
	}
}

// forced emits a sentence longer than the limit as forced_split chunks.
// Pieces containing only whitespace are dropped.
func (g *packer) forced(s span) {
	sent := g.p[s.start:s.end]
	for _, cut := range forceSplit(g.c.tok, sent, g.limit) {
		t := sent[cut.start:cut.end]
		ts := strings.TrimSpace(t)
		if ts == "" {
			continue
		}
		g.out = append(g.out, piece{
			text: t, tokens: cut.tokens, typ: TypeForcedSplit, sentences: []string{ts},
			start: g.base + s.start + cut.start, end: g.base + s.start + cut.end, para: g.para,
		})
	}
}

// cut is a forced-split piece [start, end) of a sentence.
type cut struct{ start, end, tokens int }

// forceSplit splits s into consecutive pieces of at most limit tokens each
// (a piece can exceed limit only when it is a single character that takes
// more than limit tokens). Boundaries come from token windows of the whole
// sentence, moved back to the start of the character they fall in, so the
// pieces are valid UTF-8 and their concatenation is s; each piece is then
// counted on its own and shrunk in the rare case the recount exceeds
// limit.
func forceSplit(tok Tokenizer, s string, limit int) []cut {
	ends := tok.TokenEnds(nil, s)
	var out []cut
	pos, t := 0, 0
	for pos < len(s) {
		for t < len(ends) && ends[t] <= pos {
			t++
		}
		_, first := utf8.DecodeRuneInString(s[pos:])
		minEnd := pos + first
		end := len(s)
		if k := t + limit - 1; k < len(ends)-1 {
			end = ends[k]
		}
		end = max(runeStart(s, end), minEnd)
		n := countUpTo(tok, s[pos:end], limit)
		for n > limit && end > minEnd {
			// Back to the previous token end inside the piece, else one
			// character back.
			prev := 0
			for k := t; k < len(ends) && ends[k] < end; k++ {
				prev = ends[k]
			}
			if prev = runeStart(s, prev); prev > pos && prev < end {
				end = prev
			} else {
				_, sz := utf8.DecodeLastRuneInString(s[pos:end])
				end -= sz
			}
			n = countUpTo(tok, s[pos:end], limit)
		}
		if n > limit {
			n = tok.Count(s[pos:end])
		}
		out = append(out, cut{pos, end, n})
		pos = end
	}
	return out
}

// runeStart moves i back to the start of the UTF-8 character it falls in.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

// continuity is _adjust_chunks_for_topic_continuity: a chunk after the
// first with fewer than MinTokens tokens is joined to the previous output
// chunk when the joined text has fewer than ContinuityLimit tokens. The
// join uses the source's whitespace between the two (a space in English,
// usually nothing in Japanese, nothing between forced pieces) or "\n\n"
// across paragraphs, where Python always used " ". The joined chunk's
// tokens are counted on its text; its type becomes "merged" when the two
// types differ.
func (c *Chunker) continuity(text string, pieces []piece, opts Options) []piece {
	out := pieces[:0]
	for i, p := range pieces {
		if i == 0 || p.tokens >= opts.MinTokens {
			out = append(out, p)
			continue
		}
		prev := &out[len(out)-1]
		sep := "\n\n"
		if prev.para == p.para {
			sep = text[prev.end:p.start]
		}
		joined := prev.text + sep + p.text
		n := countUpTo(c.tok, joined, opts.ContinuityLimit-1)
		if n >= opts.ContinuityLimit {
			out = append(out, p)
			continue
		}
		prev.text, prev.tokens, prev.end, prev.para = joined, n, p.end, p.para
		prev.sentences = append(prev.sentences[:len(prev.sentences):len(prev.sentences)], p.sentences...)
		if prev.typ != p.typ {
			prev.typ = TypeMerged
		}
	}
	return out
}

func substrings(p string, spans []span) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = p[s.start:s.end]
	}
	return out
}
