package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/producer/chunk"
	"github.com/qagen/qagen/producer/coverage"
	"github.com/qagen/qagen/tasks"
)

// TestCoverageChunks: the analysis works on the original chunks, in
// order, merged ones replaced by their pieces — also from a manifest read
// back for --resume, and, for an old manifest without the pieces, whole.
func TestCoverageChunks(t *testing.T) {
	ch := newChunker(t)
	off, err := producer.NewPlan(mergeCorpus(), ch, producer.PlanOptions{}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	on, err := producer.NewPlan(mergeCorpus(), ch, producer.PlanOptions{Merge: true, MinTokens: 150, MaxTokens: 400, BatchChunks: 2}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]coverage.Chunk, len(off.Chunks))
	for i, c := range off.Chunks {
		want[i] = coverage.Chunk{ID: c.ID, Text: c.Text}
	}
	// Only the pieces of the chunk merged from several are kept.
	if len(on.Run.Originals) != 3 || on.Run.Originals[2].ID != "custom_upload_0_chunk_2" || on.Run.Originals[2].Text != off.Chunks[2].Text {
		t.Fatalf("originals %+v", on.Run.Originals)
	}
	if len(off.Run.Originals) != 0 {
		t.Errorf("unmerged plan keeps originals: %+v", off.Run.Originals)
	}
	for name, run := range map[string]*producer.Run{"unmerged": off.Run, "merged": on.Run} {
		got, unexpanded, err := run.CoverageChunks()
		if err != nil || unexpanded != 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v %d\n%+v\nwant\n%+v", name, err, unexpanded, got, want)
		}
	}

	// Through the manifest on disk and Resume.
	dir := t.TempDir()
	files, err := producer.WriteOutputs(dir, t.TempDir(), on.Run)
	if err != nil {
		t.Fatal(err)
	}
	back, err := producer.LoadManifest(files.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	resumed, _ := producer.Resume(back, testNow.Add(time.Hour))
	if got, _, err := resumed.CoverageChunks(); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("resumed: %v %+v", err, got)
	}

	// An older manifest without the pieces: the merged chunk stays whole.
	back.Originals = nil
	got, unexpanded, err := back.CoverageChunks()
	if err != nil || unexpanded != 1 || len(got) != 3 || got[0].ID != "custom_upload_0_chunk_0" || got[0].Text != on.Chunks[0].Text {
		t.Errorf("old manifest: %v %d %+v", err, unexpanded, got)
	}
}

func TestCoveragePairs(t *testing.T) {
	run := sampleRun()
	pairs := run.CoveragePairs()
	if len(pairs) != 4 || pairs[0].Question != "東京の<人口>は?" || pairs[0].Answer != "A: 東京の<人口>は?" || pairs[3].Text() != "Q34 A: Q34" {
		t.Errorf("pairs %+v", pairs)
	}
}

// TestWriteCoverage: the analysis replaces the stub and fills the
// summary's coverage keys; a failed analysis leaves a stub that says why.
func TestWriteCoverage(t *testing.T) {
	dir := t.TempDir()
	run := sampleRun()
	files, err := producer.WriteOutputs(dir, t.TempDir(), run)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := chunk.CL100K()
	if err != nil {
		t.Fatal(err)
	}
	chunks := []coverage.Chunk{{ID: "c0", Text: "Q0 about rivers"}, {ID: "c1", Text: "nothing at all like it"}}
	rep, err := coverage.Analyze(context.Background(), llm.NewOfflineEmbedder(0), chunks,
		[]coverage.Pair{{Question: "Q0", Answer: "about rivers"}}, coverage.Options{DatasetType: run.DatasetType, Tokens: tok})
	if err != nil {
		t.Fatal(err)
	}
	if err := producer.WriteCoverage(files, rep, nil, run); err != nil {
		t.Fatal(err)
	}
	var cov map[string]any
	testenv.ReadJSON(t, files.Coverage, &cov)
	un, _ := cov["uncovered_chunks"].([]any)
	if cov["analyzed"] != true || cov["total_chunks"] != 2.0 || cov["covered_chunks"] != 1.0 || cov["threshold"] != 0.75 ||
		len(un) != 1 || un[0].(map[string]any)["text_preview"] != "nothing at all like it..." || cov["multi_threshold"] == nil {
		t.Errorf("coverage file %v", cov)
	}
	var sum map[string]any
	testenv.ReadJSON(t, files.Summary, &sum)
	if sum["coverage_rate"] != 0.5 || sum["covered_chunks"] != 1.0 || sum["total_chunks"] != 2.0 || sum["coverage_analyzed"] != true ||
		sum["total_qa_pairs"] != 4.0 || sum["failed_chunks"] != 1.0 || sum["coverage_error"] != nil {
		t.Errorf("summary %v", sum)
	}

	// A failure: the stub, analyzed false, and the reason in both files.
	fail := errors.New("coverage: gemini embeddings of 2 chunks: gemini: transient (HTTP 500)")
	if err := producer.WriteCoverage(files, nil, fail, run); err != nil {
		t.Fatal(err)
	}
	cov, sum = nil, nil
	testenv.ReadJSON(t, files.Coverage, &cov)
	testenv.ReadJSON(t, files.Summary, &sum)
	if cov["analyzed"] != false || cov["error"] != fail.Error() || cov["total_chunks"] != 5.0 || len(cov) != 6 {
		t.Errorf("failed coverage file %v", cov)
	}
	if sum["coverage_analyzed"] != false || sum["coverage_error"] != fail.Error() || sum["coverage_rate"] != 0.0 || sum["total_chunks"] != 5.0 {
		t.Errorf("failed summary %v", sum)
	}
	// The Q&A outputs are untouched.
	var pairs []tasks.QAPair
	data, _ := os.ReadFile(files.QAJSON)
	if err := json.Unmarshal(data, &pairs); err != nil || len(pairs) != 4 {
		t.Errorf("qa json %v %d", err, len(pairs))
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 6 {
		t.Errorf("files %v", m)
	}
}
