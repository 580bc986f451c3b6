package chunk

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/qagen/qagen/internal/jsonstr"
)

// Chunk is the chunk dict a02 sends to the workers. Its JSON form has the
// Python key order: id, text, tokens, type, sentences, doc_id, doc_idx,
// chunk_idx, dataset_type, then merged and original_chunks when Merged is
// set (chunks that went through MergeSmall's merge path).
type Chunk struct {
	ID             string   `json:"id"`
	Text           string   `json:"text"`
	Tokens         int      `json:"tokens"` // cl100k_base tokens of Text
	Type           string   `json:"type"`   // paragraph, sentence_group, forced_split, merged
	Sentences      []string `json:"sentences"`
	DocID          string   `json:"doc_id"`
	DocIdx         int      `json:"doc_idx"`
	ChunkIdx       ChunkIdx `json:"chunk_idx"`
	DatasetType    string   `json:"dataset_type"`
	Merged         bool     `json:"merged,omitempty"`
	OriginalChunks []string `json:"original_chunks,omitempty"`
}

// Chunk types.
const (
	TypeParagraph     = "paragraph"
	TypeSentenceGroup = "sentence_group"
	TypeForcedSplit   = "forced_split"
	TypeMerged        = "merged"
)

// MarshalJSON writes the chunk dict with Python's key order. Strings are
// written as UTF-8 without HTML escaping (an enclosing json.Marshal may
// still escape <, > and &).
func (c Chunk) MarshalJSON() ([]byte, error) {
	n := 160 + len(c.ID) + 2*len(c.Text) + len(c.DocID) + len(c.DatasetType)
	b := make([]byte, 0, n)
	b = append(b, `{"id":`...)
	b = jsonstr.Append(b, c.ID)
	b = append(b, `,"text":`...)
	b = jsonstr.Append(b, c.Text)
	b = append(b, `,"tokens":`...)
	b = strconv.AppendInt(b, int64(c.Tokens), 10)
	b = append(b, `,"type":`...)
	b = jsonstr.Append(b, c.Type)
	b = append(b, `,"sentences":`...)
	b = appendStrings(b, c.Sentences)
	b = append(b, `,"doc_id":`...)
	b = jsonstr.Append(b, c.DocID)
	b = append(b, `,"doc_idx":`...)
	b = strconv.AppendInt(b, int64(c.DocIdx), 10)
	b = append(b, `,"chunk_idx":`...)
	b = c.ChunkIdx.appendJSON(b)
	b = append(b, `,"dataset_type":`...)
	b = jsonstr.Append(b, c.DatasetType)
	if c.Merged {
		b = append(b, `,"merged":true,"original_chunks":`...)
		b = appendStrings(b, c.OriginalChunks)
	}
	return append(b, '}'), nil
}

// ChunkIdx is chunk_idx: the int position of a chunk in its document, or
// after MergeSmall a string of merged positions such as "127-128" or
// "0-1-2". The zero value is the int 0.
type ChunkIdx struct {
	n     int
	s     string
	isStr bool
}

// Index returns the int chunk_idx n.
func Index(n int) ChunkIdx { return ChunkIdx{n: n} }

// StringIndex returns a string chunk_idx such as "3-4".
func StringIndex(s string) ChunkIdx { return ChunkIdx{s: s, isStr: true} }

// Int returns the int value and true, or 0 and false for a string index.
func (x ChunkIdx) Int() (int, bool) { return x.n, !x.isStr }

// String returns the index as Python's f"{chunk_idx}" would print it.
func (x ChunkIdx) String() string {
	if x.isStr {
		return x.s
	}
	return strconv.Itoa(x.n)
}

func (x ChunkIdx) appendJSON(b []byte) []byte {
	if x.isStr {
		return jsonstr.Append(b, x.s)
	}
	return strconv.AppendInt(b, int64(x.n), 10)
}

// MarshalJSON writes a JSON number or string.
func (x ChunkIdx) MarshalJSON() ([]byte, error) { return x.appendJSON(nil), nil }

// UnmarshalJSON accepts a JSON integer or string.
func (x *ChunkIdx) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*x = StringIndex(s)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("chunk_idx: want an integer or a string, got %s", b)
	}
	*x = Index(n)
	return nil
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, s)
	}
	return append(b, ']')
}
