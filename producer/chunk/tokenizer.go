package chunk

import (
	"fmt"
	"sync"

	"github.com/tiktoken-go/tokenizer"
)

// Tokenizer counts tokens and tells where tokens end, which is all the
// chunker needs: Count for packing and the persisted "tokens" field,
// TokenEnds for forced splits on token windows.
//
// Implementations must be safe for concurrent use if one Chunker is shared
// between goroutines.
type Tokenizer interface {
	// Count returns the number of tokens in text.
	Count(text string) int
	// TokenEnds appends to dst the byte offset in text at which each token
	// of text ends, in order (the last one is len(text)), and returns the
	// extended slice. A token of a byte-level BPE can end inside a
	// multi-byte character.
	TokenEnds(dst []int, text string) []int
}

// LimitCounter is an optional Tokenizer extension: CountUpTo returns
// Count(text) when it is at most limit, and otherwise some value greater
// than limit, possibly after tokenizing only a prefix of text. The chunker
// uses it for "does this paragraph fit" and "does this join fit" questions.
type LimitCounter interface {
	CountUpTo(text string, limit int) int
}

// countUpTo uses tok's LimitCounter when it has one.
func countUpTo(tok Tokenizer, text string, limit int) int {
	if lc, ok := tok.(LimitCounter); ok {
		return lc.CountUpTo(text, limit)
	}
	return tok.Count(text)
}

var (
	cl100kOnce sync.Once
	cl100kTok  *bpe
	cl100kErr  error
)

// CL100K returns the shared local cl100k_base tokenizer (the encoding the
// Python producer persisted in chunk["tokens"] and used in
// merge_small_chunks). The ranks come from github.com/tiktoken-go/tokenizer,
// which embeds them (no network); they are loaded on the first call only
// (about 0.1 s) and the result is shared by every caller.
//
// The returned tokenizer is immutable and safe for concurrent use. It
// tokenizes with its own pre-tokenizer and byte-pair merge, which give the
// same token IDs as the library's codec (checked by differential tests) at
// about ten times its speed; the library's codec is only used to read the
// ranks. Input is assumed to be valid UTF-8 (Chunker.Document replaces
// invalid bytes with U+FFFD first).
func CL100K() (Tokenizer, error) {
	cl100kOnce.Do(func() {
		cl100kTok, cl100kErr = loadCL100K()
	})
	if cl100kErr != nil {
		return nil, cl100kErr
	}
	return cl100kTok, nil
}

// cl100kVocabSize is the number of ordinary (non-special) cl100k_base
// tokens, ranks 0..100255.
const cl100kVocabSize = 100256

func loadCL100K() (*bpe, error) {
	codec, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		return nil, fmt.Errorf("cl100k_base: %w", err)
	}
	ranks := make(map[string]uint32, cl100kVocabSize)
	ids := []uint{0}
	for id := range cl100kVocabSize {
		ids[0] = uint(id)
		s, err := codec.Decode(ids)
		if err != nil {
			return nil, fmt.Errorf("cl100k_base: decode rank %d: %w", id, err)
		}
		ranks[s] = uint32(id)
	}
	if len(ranks) != cl100kVocabSize {
		return nil, fmt.Errorf("cl100k_base: %d distinct tokens, want %d", len(ranks), cl100kVocabSize)
	}
	return newBPE(ranks), nil
}
