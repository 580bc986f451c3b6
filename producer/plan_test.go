package producer_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/producer/chunk"
	"github.com/qagen/qagen/producer/docs"
)

var (
	chunkerOnce sync.Once
	chunker     *chunk.Chunker
	chunkerErr  error
)

// newChunker is the cl100k chunker the CLI uses (loaded once per binary).
func newChunker(t testing.TB) *chunk.Chunker {
	t.Helper()
	chunkerOnce.Do(func() {
		tok, err := chunk.CL100K()
		chunker, chunkerErr = chunk.New(tok), err
	})
	if chunkerErr != nil {
		t.Fatal(chunkerErr)
	}
	return chunker
}

// testNow is the fixed start time of planned runs: run id 20261127_101500.
var testNow = time.Date(2026, 11, 27, 10, 15, 0, 0, time.Local)

const testRunID = "20261127_101500"

// para is an English paragraph of n distinct sentences (about 12 tokens
// each), so its chunks are predictable: one paragraph, one chunk.
func para(tag string, n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("The %s report number %d describes how the river valley changed over the seasons.", tag, i)
	}
	return strings.Join(s, " ")
}

// jaPara is a Japanese paragraph of n sentences.
func jaPara(tag string, n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%sの報告%d番は、川の流れが季節とともにどう変わったかを説明している。", tag, i)
	}
	return strings.Join(s, "")
}

// uploadCorpus is an --input-file corpus (custom_upload, chunk_size 300)
// of the given documents; langs[i] is document i's language.
func uploadCorpus(texts []string, langs []string) *docs.Corpus {
	c := &docs.Corpus{DatasetType: "custom_upload", Config: config.UploadConfig("t", "en")}
	for i, text := range texts {
		c.Docs = append(c.Docs, docs.Document{Index: i, ID: fmt.Sprintf("custom_upload_%d", i), Text: text, Lang: langs[i]})
	}
	return c
}

func chunkIDs(cs []chunk.Chunk) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestNewPlanBatching(t *testing.T) {
	ch := newChunker(t)
	langs := []string{"en", "en", "ja", "en", "en", "en", "en"}
	texts := make([]string, len(langs))
	for i, l := range langs {
		if l == "ja" {
			texts[i] = jaPara(fmt.Sprint("文書", i), 3)
		} else {
			texts[i] = para(fmt.Sprint("doc", i), 6)
		}
	}
	corpus := uploadCorpus(texts, langs)
	plan, err := producer.NewPlan(corpus, ch, producer.PlanOptions{BatchChunks: 3}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Chunks) != 7 || plan.Unmerged != 7 {
		t.Fatalf("%d chunks (%d unmerged), want one per document: %v", len(plan.Chunks), plan.Unmerged, chunkIDs(plan.Chunks))
	}
	run := plan.Run
	if run.ID != testRunID || run.DatasetType != "custom_upload" || run.DatasetName != "ローカルファイル (t)" || run.Documents != 7 || run.Chunks != 7 {
		t.Fatalf("run %+v", run)
	}
	// At most 3 chunks per unit, of one language: the Japanese document
	// ends the first unit early and gets one of its own.
	want := [][]int{{0, 1}, {2}, {3, 4, 5}, {6}}
	if len(run.Units) != len(want) {
		t.Fatalf("%d units, want %d", len(run.Units), len(want))
	}
	total := 0
	for i, u := range run.Units {
		var ids []string
		tokens := 0
		for _, d := range want[i] {
			ids = append(ids, plan.Chunks[d].ID)
			tokens += plan.Chunks[d].Tokens
		}
		if !reflect.DeepEqual(u.ChunkIDs, ids) || len(u.Chunks) != len(ids) {
			t.Errorf("unit %d: chunks %v, want %v", i, u.ChunkIDs, ids)
		}
		if u.Tokens != tokens || tokens == 0 {
			t.Errorf("unit %d: tokens %d, want the sum %d", i, u.Tokens, tokens)
		}
		total += u.Tokens
		if u.State != producer.StatePending || u.TaskID != "" || u.Batch() != (len(ids) > 1) {
			t.Errorf("unit %d: state %q task %q batch %v", i, u.State, u.TaskID, u.Batch())
		}
		var conf map[string]any
		if err := json.Unmarshal(u.Config, &conf); err != nil {
			t.Fatal(err)
		}
		if wantLang := langs[want[i][0]]; conf["lang"] != wantLang || conf["qa_per_chunk"] != 3.0 {
			t.Errorf("unit %d: config %v, want lang %s", i, conf, wantLang)
		}
		for j, raw := range u.Chunks {
			var c chunk.Chunk
			if err := json.Unmarshal(raw, &c); err != nil || c.ID != ids[j] || c.Text != plan.Chunks[want[i][j]].Text {
				t.Errorf("unit %d chunk %d: %v %s", i, j, err, raw)
			}
		}
	}
	if total != plan.Tokens() {
		t.Errorf("units carry %d tokens, plan %d", total, plan.Tokens())
	}

	// No batching: one unit per chunk, as the Python producer sends.
	for _, n := range []int{0, 1} {
		plan, err := producer.NewPlan(corpus, ch, producer.PlanOptions{BatchChunks: n}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Run.Units) != 7 {
			t.Fatalf("batch %d: %d units", n, len(plan.Run.Units))
		}
		for i, u := range plan.Run.Units {
			if u.Batch() || u.ChunkIDs[0] != plan.Chunks[i].ID || u.Tokens != plan.Chunks[i].Tokens {
				t.Errorf("batch %d unit %d: %+v", n, i, u.ChunkIDs)
			}
		}
	}
}

// mergeCorpus: document 0 has three small paragraphs (three chunks under
// 150 tokens), document 1 one large chunk, document 2 one small chunk.
func mergeCorpus() *docs.Corpus {
	return uploadCorpus([]string{
		para("alpha", 5) + "\n\n" + para("beta", 5) + "\n\n" + para("gamma", 5),
		para("delta", 15),
		para("epsilon", 5),
	}, []string{"en", "en", "en"})
}

func TestNewPlanMerge(t *testing.T) {
	ch := newChunker(t)
	off, err := producer.NewPlan(mergeCorpus(), ch, producer.PlanOptions{}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []string{"custom_upload_0_chunk_0", "custom_upload_0_chunk_1", "custom_upload_0_chunk_2", "custom_upload_1_chunk_0", "custom_upload_2_chunk_0"}
	if got := chunkIDs(off.Chunks); !reflect.DeepEqual(got, wantIDs) || off.Unmerged != 5 || len(off.Run.Units) != 5 {
		t.Fatalf("merge off: chunks %v (unmerged %d, %d units)", got, off.Unmerged, len(off.Run.Units))
	}
	for i, c := range off.Chunks {
		if c.Merged || (i < 3 && c.Tokens >= 150) || (i == 3 && c.Tokens < 150) {
			t.Fatalf("fixture: chunk %s has %d tokens (merged %v)", c.ID, c.Tokens, c.Merged)
		}
		if raw := string(off.Run.Units[i].Chunks[0]); strings.Contains(raw, `"merged"`) || strings.Contains(raw, `"original_chunks"`) {
			t.Errorf("unmerged chunk dict %s", raw)
		}
	}

	on, err := producer.NewPlan(mergeCorpus(), ch, producer.PlanOptions{Merge: true, MinTokens: 150, MaxTokens: 400}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := chunkIDs(on.Chunks); !reflect.DeepEqual(got, []string{"custom_upload_0_chunk_0", "custom_upload_1_chunk_0", "custom_upload_2_chunk_0"}) {
		t.Fatalf("merge on: chunks %v", got)
	}
	if on.Unmerged != 5 || on.Run.Chunks != 3 || len(on.Run.Units) != 3 {
		t.Fatalf("merge on: unmerged %d, run chunks %d, units %d", on.Unmerged, on.Run.Chunks, len(on.Run.Units))
	}
	m := on.Chunks[0]
	if !m.Merged || m.ChunkIdx.String() != "0-1-2" || !reflect.DeepEqual(m.OriginalChunks, wantIDs[:3]) ||
		m.Text != off.Chunks[0].Text+"\n\n"+off.Chunks[1].Text+"\n\n"+off.Chunks[2].Text {
		t.Fatalf("merged chunk %+v", m)
	}
	var dict map[string]any
	if err := json.Unmarshal(on.Run.Units[0].Chunks[0], &dict); err != nil {
		t.Fatal(err)
	}
	if dict["chunk_idx"] != "0-1-2" || dict["merged"] != true || len(dict["original_chunks"].([]any)) != 3 {
		t.Fatalf("merged chunk dict as sent: %v", dict)
	}
	if on.Run.Units[0].Tokens != m.Tokens || m.Tokens <= off.Chunks[0].Tokens {
		t.Errorf("merged unit tokens %d, chunk %d", on.Run.Units[0].Tokens, m.Tokens)
	}
	// A large chunk passes unchanged; a lone small one is still marked.
	if on.Chunks[1].Merged || !on.Chunks[2].Merged || !reflect.DeepEqual(on.Chunks[2].OriginalChunks, wantIDs[4:]) {
		t.Errorf("chunks 1, 2: %+v / %+v", on.Chunks[1], on.Chunks[2])
	}
	// Merged chunks batch like any other.
	batched, err := producer.NewPlan(mergeCorpus(), ch, producer.PlanOptions{Merge: true, MinTokens: 150, MaxTokens: 400, BatchChunks: 2}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(batched.Run.Units) != 2 || batched.Run.Units[0].Tokens != on.Chunks[0].Tokens+on.Chunks[1].Tokens {
		t.Errorf("merged and batched: %d units", len(batched.Run.Units))
	}
}

// jsonKeys returns the top-level keys of a JSON object in their order.
func jsonKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", line)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestWriteChunks(t *testing.T) {
	ch := newChunker(t)
	corpus := mergeCorpus()
	corpus.Docs[1].Text = "Tom & Jerry <b>bold</b> \"quoted\". " + para("delta", 14)
	corpus.Docs = append(corpus.Docs, docs.Document{Index: 3, ID: "custom_upload_3", Text: jaPara("日本語", 4), Lang: "ja"})
	plan, err := producer.NewPlan(corpus, ch, producer.PlanOptions{Merge: true, MinTokens: 150, MaxTokens: 400}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	path, err := plan.WriteChunks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "chunks_custom_upload_"+testRunID+".jsonl"); path != want {
		t.Fatalf("path %s, want %s", path, want)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		t.Error("no final newline")
	}
	python := []string{"id", "text", "tokens", "type", "sentences", "doc_id", "doc_idx", "chunk_idx", "dataset_type"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		if n >= len(plan.Chunks) {
			t.Fatalf("more lines than chunks: %s", line)
		}
		want := python
		if plan.Chunks[n].Merged {
			want = append(append([]string{}, python...), "merged", "original_chunks")
		}
		if keys := jsonKeys(t, line); !reflect.DeepEqual(keys, want) {
			t.Errorf("line %d keys %v, want %v", n+1, keys, want)
		}
		var c chunk.Chunk
		if err := json.Unmarshal(line, &c); err != nil || !reflect.DeepEqual(c, plan.Chunks[n]) {
			t.Errorf("line %d does not decode to chunk %s: %v", n+1, plan.Chunks[n].ID, err)
		}
		n++
	}
	if n != len(plan.Chunks) {
		t.Fatalf("%d lines for %d chunks", n, len(plan.Chunks))
	}
	// As Python's json.dumps(ensure_ascii=False): Japanese and <>& verbatim.
	for _, s := range []string{`Tom & Jerry <b>bold</b> \"quoted\".`, "日本語の報告0番", `"chunk_idx":"0-1-2"`} {
		if !bytes.Contains(data, []byte(s)) {
			t.Errorf("chunk file lacks %s", s)
		}
	}
	if bytes.Contains(data, []byte(`\u003c`)) || bytes.Contains(data, []byte(`\u0026`)) {
		t.Error("chunk file escapes <, > or &")
	}
}
