package chunk

// MergeSmall is a02's merge_small_chunks (--merge-chunks): one pass over
// the chunks of all documents, in order.
//
//   - A chunk with at least minTokens tokens flushes the pending merge and
//     is emitted unchanged.
//   - A smaller chunk starts a pending merge (a copy with Merged set and
//     OriginalChunks [its id]) when there is none. With one, if the pending
//     and the chunk tokens add up to at most maxTokens and both come from
//     the same document, the chunk is appended: text joined with "\n\n",
//     id added to OriginalChunks, ChunkIdx "a-b" (a string). Otherwise the
//     pending merge is flushed and the chunk starts a new one.
//   - The pending merge is flushed at the end.
//
// As in Python, a small chunk that merges with nothing is still emitted
// with Merged and OriginalChunks [its id], and a merged chunk keeps the
// first piece's ID and Type. Unlike Python, whose merged chunks kept the
// first piece's tokens and sentences, a merged chunk's Tokens is counted
// on its joined text (the workers size the Q/A count by it) and its
// Sentences are those of all pieces. Chunks' Tokens must be the token
// counts of their Text (as Document makes them); they are not recounted.
// Because the test is on the sum of the two counts, the joined text can
// come out a token or so over maxTokens ("\n\n" is a token).
//
// minTokens <= 0 means DefaultMergeMinTokens, maxTokens <= 0
// DefaultMergeMaxTokens. The input slice is not modified.
func (c *Chunker) MergeSmall(chunks []Chunk, minTokens, maxTokens int) []Chunk {
	if minTokens <= 0 {
		minTokens = DefaultMergeMinTokens
	}
	if maxTokens <= 0 {
		maxTokens = DefaultMergeMaxTokens
	}
	out := make([]Chunk, 0, len(chunks))
	var pending Chunk
	has := false
	flush := func() {
		if has {
			out = append(out, pending)
			has = false
		}
	}
	start := func(ch Chunk) {
		pending = ch
		pending.Merged = true
		pending.OriginalChunks = []string{ch.ID}
		// Cap the shared slice so that appending copies it.
		pending.Sentences = ch.Sentences[:len(ch.Sentences):len(ch.Sentences)]
		has = true
	}
	for _, ch := range chunks {
		switch {
		case ch.Tokens >= minTokens:
			flush()
			out = append(out, ch)
		case !has:
			start(ch)
		case pending.Tokens+ch.Tokens <= maxTokens && pending.DocID == ch.DocID:
			pending.Text += "\n\n" + ch.Text
			pending.Tokens = c.tok.Count(pending.Text)
			pending.OriginalChunks = append(pending.OriginalChunks, ch.ID)
			pending.ChunkIdx = StringIndex(pending.ChunkIdx.String() + "-" + ch.ChunkIdx.String())
			pending.Sentences = append(pending.Sentences, ch.Sentences...)
		default:
			flush()
			start(ch)
		}
	}
	flush()
	return out
}
