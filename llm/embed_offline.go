package llm

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// OfflineEmbedder embeds without a network: each text becomes a bag of
// hashed lexical features — words, adjacent word pairs and character
// trigrams of words in scripts written with spaces, character bigrams in
// Chinese and Japanese (hiragana, katakana, kanji) — weighted by 1+ln(count),
// folded into Dim signed buckets and L2-normalised. It is deterministic,
// instant and free. Texts that share words get high cosine similarity,
// unrelated texts about zero; it knows no synonyms or paraphrases, so its
// similarities are lower than a model's and the coverage thresholds (tuned
// for gemini-embedding-001) are strict for it. Its vectors say
// offline-hashed wherever they are reported.
type OfflineEmbedder struct {
	// Dim is the vector length (OfflineEmbeddingDimensions when 0).
	Dim int
}

// NewOfflineEmbedder returns an offline embedder of dim dimensions (0:
// OfflineEmbeddingDimensions).
func NewOfflineEmbedder(dim int) OfflineEmbedder {
	if dim <= 0 {
		dim = OfflineEmbeddingDimensions
	}
	return OfflineEmbedder{Dim: dim}
}

// Name implements Embedder.
func (OfflineEmbedder) Name() string { return OfflineEmbedName }

// Model implements Embedder.
func (OfflineEmbedder) Model() string { return OfflineEmbeddingModel }

// Embed implements Embedder. An empty (blank) text is an error.
func (o OfflineEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	dim := o.Dim
	if dim <= 0 {
		dim = OfflineEmbeddingDimensions
	}
	out := make([][]float32, len(texts))
	var scratch []uint64
	for i, t := range texts {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if strings.TrimSpace(t) == "" {
			return nil, &Error{Provider: OfflineEmbedName, Kind: KindPermanent, Err: fmt.Errorf("text %d of %d is empty", i+1, len(texts))}
		}
		out[i] = make([]float32, dim)
		scratch = hashEmbed(out[i], t, scratch[:0])
	}
	return out, nil
}

// HashEmbedding returns the offline embedding of text with dim dimensions
// (OfflineEmbeddingDimensions when dim <= 0): L2-normalised, all zeros only
// for a blank text.
func HashEmbedding(text string, dim int) []float32 {
	if dim <= 0 {
		dim = OfflineEmbeddingDimensions
	}
	v := make([]float32, dim)
	hashEmbed(v, text, nil)
	return v
}

// Feature kinds; each is part of the feature's hash and has a weight.
const (
	featWord  byte = iota + 1 // four letters or more
	featWord3                 // three letters
	featWord2                 // one or two letters
	featWordPair
	featTrigram
	featCJKBigram
	featCJKChar
	featSymbol
)

// featWeight is indexed by kind. A feature's hash keeps its kind in the low
// byte, so equal hashes have equal weights.
var featWeight = [...]float64{featWord: 1, featWord3: 0.5, featWord2: 0.25, featWordPair: 0.7, featTrigram: 0.35, featCJKBigram: 1, featCJKChar: 0.3, featSymbol: 0.5}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func mixRune(h uint64, r rune) uint64 {
	for x := uint32(r); ; x >>= 8 {
		h = (h ^ uint64(x&0xff)) * fnvPrime
		if x < 0x100 {
			return h
		}
	}
}

// finish scrambles a feature hash and stores its kind in the low byte.
func finish(h uint64, kind byte) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h&^0xff | uint64(kind)
}

// bigramScript reports the scripts hashed as character bigrams (Chinese
// and Japanese; not IsCJK, which also counts Hangul and full-width forms).
func bigramScript(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana) || r == 'ー' || r == '々'
}

// hashEmbed writes text's embedding into v (zeroed, len >= 1) and returns
// the feature scratch buffer for reuse.
func hashEmbed(v []float32, text string, feats []uint64) []uint64 {
	text = strings.ToLower(text)
	var word []rune // the current word of a spaced script, with its padding
	prevWord := uint64(0)
	var prevCJK rune
	endWord := func() {
		if len(word) <= 1 { // nothing but the opening padding
			word = word[:0]
			return
		}
		h := uint64(fnvOffset)
		for _, r := range word[1:] {
			h = mixRune(h, r)
		}
		// Short words are mostly function words ("of", "the"): they weigh
		// less, start no pair and give no trigrams.
		n := len(word) - 1
		kind := featWord
		switch {
		case n <= 2:
			kind = featWord2
		case n == 3:
			kind = featWord3
		}
		feats = append(feats, finish(h, kind))
		if kind == featWord && prevWord != 0 {
			feats = append(feats, finish(prevWord*31^h, featWordPair))
		}
		if kind == featWord {
			prevWord = h
		}
		if kind != featWord {
			word = word[:0]
			return
		}
		word = append(word, 0) // closing padding
		for i := 0; i+3 <= len(word); i++ {
			t := mixRune(mixRune(mixRune(fnvOffset, word[i]), word[i+1]), word[i+2])
			feats = append(feats, finish(t, featTrigram))
		}
		word = word[:0]
	}
	for _, r := range text {
		switch {
		case bigramScript(r):
			endWord()
			prevWord = 0
			feats = append(feats, finish(mixRune(fnvOffset, r), featCJKChar))
			if prevCJK != 0 {
				feats = append(feats, finish(mixRune(mixRune(fnvOffset, prevCJK), r), featCJKBigram))
			}
			prevCJK = r
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			prevCJK = 0
			if len(word) == 0 {
				word = append(word, 0) // opening padding
			}
			word = append(word, r)
		default:
			endWord()
			prevCJK = 0
			if !unicode.IsSpace(r) && !unicode.IsPunct(r) && r != utf8.RuneError {
				feats = append(feats, finish(mixRune(fnvOffset, r), featSymbol))
			}
		}
	}
	endWord()
	if len(feats) == 0 {
		// Only punctuation: let its characters stand for it.
		for _, r := range text {
			if !unicode.IsSpace(r) {
				feats = append(feats, finish(mixRune(fnvOffset, r), featSymbol))
			}
		}
	}
	// Sorted, so that the sums are made in one order whatever the text's
	// feature order: the vectors are bit-for-bit deterministic.
	slices.Sort(feats)
	dim := uint64(len(v))
	acc := make([]float64, len(v))
	for i := 0; i < len(feats); {
		j := i + 1
		for j < len(feats) && feats[j] == feats[i] {
			j++
		}
		h := feats[i]
		w := featWeight[h&0xff] * (1 + math.Log(float64(j-i)))
		if h>>63 == 1 {
			w = -w
		}
		acc[(h>>8)%dim] += w
		i = j
	}
	var norm float64
	for _, x := range acc {
		norm += x * x
	}
	if norm == 0 {
		return feats
	}
	inv := 1 / math.Sqrt(norm)
	for i, x := range acc {
		v[i] = float32(x * inv)
	}
	return feats
}
