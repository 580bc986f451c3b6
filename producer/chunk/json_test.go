package chunk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

func TestChunkJSON(t *testing.T) {
	for _, c := range []struct {
		chunk Chunk
		want  string
	}{
		{
			Chunk{
				ID: "cc_news_0_Daughter Duo is Dancing in The_chunk_0", Text: "Line \"one\"\\\nline\ttwo <b>&\x01\u2028", Tokens: 12,
				Type: "paragraph", Sentences: []string{`Line "one"`, "line\ttwo <b>&"}, DocID: "cc_news_0_Daughter Duo is Dancing in The",
				DocIdx: 0, ChunkIdx: Index(0), DatasetType: "cc_news",
			},
			`{"id":"cc_news_0_Daughter Duo is Dancing in The_chunk_0","text":"Line \"one\"\\\nline\ttwo <b>&\u0001\u2028","tokens":12,` +
				`"type":"paragraph","sentences":["Line \"one\"","line\ttwo <b>&"],"doc_id":"cc_news_0_Daughter Duo is Dancing in The",` +
				`"doc_idx":0,"chunk_idx":0,"dataset_type":"cc_news"}`,
		},
		{
			Chunk{
				ID: "wikipedia_ja_5_東京_chunk_127", Text: "東京は日本の首都です。\n\n人口は多い。", Tokens: 31, Type: "sentence_group",
				Sentences: []string{"東京は日本の首都です。", "人口は多い。"}, DocID: "wikipedia_ja_5_東京", DocIdx: 5,
				ChunkIdx: StringIndex("127-128"), DatasetType: "wikipedia_ja", Merged: true,
				OriginalChunks: []string{"wikipedia_ja_5_東京_chunk_127", "wikipedia_ja_5_東京_chunk_128"},
			},
			`{"id":"wikipedia_ja_5_東京_chunk_127","text":"東京は日本の首都です。\n\n人口は多い。","tokens":31,"type":"sentence_group",` +
				`"sentences":["東京は日本の首都です。","人口は多い。"],"doc_id":"wikipedia_ja_5_東京","doc_idx":5,"chunk_idx":"127-128",` +
				`"dataset_type":"wikipedia_ja","merged":true,"original_chunks":["wikipedia_ja_5_東京_chunk_127","wikipedia_ja_5_東京_chunk_128"]}`,
		},
		{
			// A lone small chunk after MergeSmall: merged, int chunk_idx; nil
			// sentences are written as [].
			Chunk{ID: "d_chunk_3", Text: "x", Tokens: 1, Type: "forced_split", DocID: "d", DocIdx: 7, ChunkIdx: Index(3),
				DatasetType: "custom_upload", Merged: true, OriginalChunks: []string{"d_chunk_3"}},
			`{"id":"d_chunk_3","text":"x","tokens":1,"type":"forced_split","sentences":[],"doc_id":"d","doc_idx":7,"chunk_idx":3,` +
				`"dataset_type":"custom_upload","merged":true,"original_chunks":["d_chunk_3"]}`,
		},
	} {
		got, err := c.chunk.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("MarshalJSON\n got %s\nwant %s", got, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("invalid JSON %s", got)
		}
		// json.Marshal of a value or a pointer uses MarshalJSON (and then
		// escapes <, > and & as it always does).
		for _, v := range []any{c.chunk, &c.chunk} {
			m, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var compact bytes.Buffer
			json.HTMLEscape(&compact, []byte(c.want))
			if string(m) != compact.String() {
				t.Errorf("json.Marshal(%T)\n got %s\nwant %s", v, m, compact.String())
			}
		}
		// Round trip.
		var back Chunk
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		want := c.chunk
		if want.Sentences == nil {
			want.Sentences = []string{}
		}
		if !reflect.DeepEqual(back, want) {
			t.Errorf("round trip\n got %#v\nwant %#v", back, want)
		}
	}
}

// The key order is Python's, whatever the chunk type.
func TestChunkJSONKeyOrder(t *testing.T) {
	c := New(cl100k(t))
	chunks := c.Document("cc_news_1", 1, "cc_news", "en", englishParagraphs[0]+"\n\nOk.", Options{MaxTokens: 300})
	chunks = append(chunks, c.MergeSmall(chunks, 0, 0)...)
	for _, ch := range chunks {
		b, err := json.Marshal(ch)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"id", "text", "tokens", "type", "sentences", "doc_id", "doc_idx", "chunk_idx", "dataset_type"}
		if ch.Merged {
			want = append(want, "merged", "original_chunks")
		}
		if got := topKeys(t, b); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("keys %q", got)
		}
	}
}

func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestChunkIdx(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ChunkIdx
		str  string
	}{{`3`, Index(3), "3"}, {`"3-4"`, StringIndex("3-4"), "3-4"}, {`0`, ChunkIdx{}, "0"}} {
		var x ChunkIdx
		if err := json.Unmarshal([]byte(c.in), &x); err != nil {
			t.Fatal(err)
		}
		if x != c.want || x.String() != c.str {
			t.Errorf("%s: %#v %q", c.in, x, x.String())
		}
		if b, _ := json.Marshal(x); string(b) != c.in {
			t.Errorf("%s: marshal %s", c.in, b)
		}
	}
	var x ChunkIdx
	if err := json.Unmarshal([]byte(`1.5`), &x); err == nil {
		t.Errorf("1.5 accepted")
	}
}
