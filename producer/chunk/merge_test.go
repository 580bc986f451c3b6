package chunk

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// mk makes a chunk as Document would, counting with runeTok.
func mk(doc string, idx int, text string) Chunk {
	return Chunk{
		ID: fmt.Sprintf("%s_chunk_%d", doc, idx), Text: text, Tokens: runeTok{}.Count(text), Type: TypeParagraph,
		Sentences: []string{text}, DocID: doc, DocIdx: 1, ChunkIdx: Index(idx), DatasetType: "x",
	}
}

func TestMergeSmall(t *testing.T) {
	c := New(runeTok{})
	in := []Chunk{
		mk("d1", 0, "aaaa"),                   // 4: starts a merge
		mk("d1", 1, "bbbbbb"),                 // 6: 4+6 <= 30, same doc: joined
		mk("d1", 2, "cc"),                     // 2: 12+2 <= 30: joined, "0-1-2"
		mk("d1", 3, strings.Repeat("D", 12)),  // >= 10: flush, emitted as is
		mk("d1", 4, strings.Repeat("e", 9)),   // 9: new merge
		mk("d2", 0, "ff"),                     // other document: flush, new merge
		mk("d2", 1, strings.Repeat("g", 9)),   // 2+9: joined "0-1" (13 tokens with "\n\n")
		mk("d2", 2, strings.Repeat("h", 9)),   // 13+9 <= 30: joined
		mk("d2", 3, strings.Repeat("i", 9)),   // 24+9 > 30: flush, new merge
		mk("d2", 4, strings.Repeat("J", 10)),  // exactly min: flush, as is
		mk("d3", 127, strings.Repeat("k", 5)), // "127-128"
		mk("d3", 128, strings.Repeat("l", 5)), //
		mk("d4", 0, strings.Repeat("m", 3)),   // lone small chunk at the end
	}
	orig := slices.Clone(in)
	for i := range orig {
		orig[i].Sentences = slices.Clone(in[i].Sentences)
	}
	got := c.MergeSmall(in, 10, 30)

	type row struct {
		id, text, idx string
		tokens        int
		merged        bool
		originals     []string
		sentences     []string
	}
	want := []row{
		{"d1_chunk_0", "aaaa\n\nbbbbbb\n\ncc", "0-1-2", 16, true, []string{"d1_chunk_0", "d1_chunk_1", "d1_chunk_2"}, []string{"aaaa", "bbbbbb", "cc"}},
		{"d1_chunk_3", strings.Repeat("D", 12), "3", 12, false, nil, []string{strings.Repeat("D", 12)}},
		{"d1_chunk_4", strings.Repeat("e", 9), "4", 9, true, []string{"d1_chunk_4"}, []string{strings.Repeat("e", 9)}},
		{"d2_chunk_0", "ff\n\n" + strings.Repeat("g", 9) + "\n\n" + strings.Repeat("h", 9), "0-1-2", 24, true,
			[]string{"d2_chunk_0", "d2_chunk_1", "d2_chunk_2"}, []string{"ff", strings.Repeat("g", 9), strings.Repeat("h", 9)}},
		{"d2_chunk_3", strings.Repeat("i", 9), "3", 9, true, []string{"d2_chunk_3"}, []string{strings.Repeat("i", 9)}},
		{"d2_chunk_4", strings.Repeat("J", 10), "4", 10, false, nil, []string{strings.Repeat("J", 10)}},
		{"d3_chunk_127", "kkkkk\n\nlllll", "127-128", 12, true, []string{"d3_chunk_127", "d3_chunk_128"}, []string{"kkkkk", "lllll"}},
		{"d4_chunk_0", "mmm", "0", 3, true, []string{"d4_chunk_0"}, []string{"mmm"}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d chunks, want %d: %q", len(got), len(want), texts(got))
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.id || g.Text != w.text || g.ChunkIdx.String() != w.idx || g.Tokens != w.tokens || g.Merged != w.merged ||
			!slices.Equal(g.OriginalChunks, w.originals) || !slices.Equal(g.Sentences, w.sentences) {
			t.Errorf("chunk %d:\n got %q %q %s %d %v %q %q\nwant %+v", i, g.ID, g.Text, g.ChunkIdx, g.Tokens, g.Merged, g.OriginalChunks, g.Sentences, w)
		}
		if g.Type != TypeParagraph || g.DocIdx != 1 || g.DatasetType != "x" {
			t.Errorf("chunk %d: other fields changed: %+v", i, g)
		}
	}
	// chunk_idx is a string once merged, an int otherwise (also for a lone
	// merged chunk).
	if _, ok := got[0].ChunkIdx.Int(); ok {
		t.Errorf("merged chunk_idx is an int")
	}
	if n, ok := got[2].ChunkIdx.Int(); !ok || n != 4 {
		t.Errorf("lone chunk_idx %v", got[2].ChunkIdx)
	}
	// The input is untouched.
	if fmt.Sprint(in) != fmt.Sprint(orig) {
		t.Errorf("input modified")
	}
}

func TestMergeSmallCL100K(t *testing.T) {
	tok := cl100k(t)
	c := New(tok)
	var all []Chunk
	for d := range 2 {
		text := strings.Join(japaneseParagraphs[d*4:d*4+4], "\n\n")
		all = append(all, c.Document(fmt.Sprintf("wikipedia_ja_%d", d), d, "wikipedia_ja", "ja", text, Options{MaxTokens: 60, MinTokens: -1})...)
	}
	got := c.MergeSmall(all, 0, 0) // 150, 400
	if len(got) >= len(all) {
		t.Fatalf("nothing merged: %d -> %d", len(all), len(got))
	}
	joined := 0
	for _, ch := range got {
		if ch.Tokens != tok.Count(ch.Text) {
			t.Errorf("%s: tokens %d, count %d", ch.ID, ch.Tokens, tok.Count(ch.Text))
		}
		if !ch.Merged {
			continue
		}
		if len(ch.OriginalChunks) > 1 {
			joined++
			if strings.Count(ch.ChunkIdx.String(), "-") != len(ch.OriginalChunks)-1 {
				t.Errorf("%s: chunk_idx %s for %q", ch.ID, ch.ChunkIdx, ch.OriginalChunks)
			}
		}
		for _, id := range ch.OriginalChunks {
			if !strings.HasPrefix(id, ch.DocID+"_chunk_") {
				t.Errorf("%s: merged %s from another document", ch.ID, id)
			}
		}
	}
	if joined == 0 {
		t.Errorf("no multi-chunk merge")
	}
	var before, after []string
	for _, ch := range all {
		before = append(before, noSpace(ch.Text))
	}
	for _, ch := range got {
		after = append(after, noSpace(ch.Text))
	}
	if strings.Join(before, "") != strings.Join(after, "") {
		t.Errorf("text lost in merging")
	}
	if len(c.MergeSmall(nil, 0, 0)) != 0 {
		t.Errorf("nil input")
	}
}
