package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qagen/qagen/internal/testenv"
)

// coverageFile is the part of coverage_<dataset>_<ts>.json the tests read.
type coverageFile struct {
	Analyzed        bool      `json:"analyzed"`
	Error           string    `json:"error"`
	CoverageRate    float64   `json:"coverage_rate"`
	CoveredChunks   int       `json:"covered_chunks"`
	TotalChunks     int       `json:"total_chunks"`
	MaxSimilarities []float64 `json:"max_similarities"`
	Threshold       float64   `json:"threshold"`
	DatasetType     string    `json:"dataset_type"`
	TotalQAPairs    int       `json:"total_qa_pairs"`
	UncoveredChunks []struct {
		ChunkID     string  `json:"chunk_id"`
		Similarity  float64 `json:"similarity"`
		Gap         float64 `json:"gap"`
		TextPreview string  `json:"text_preview"`
	} `json:"uncovered_chunks"`
	MultiThreshold map[string]struct {
		Threshold      float64 `json:"threshold"`
		CoveredChunks  int     `json:"covered_chunks"`
		CoverageRate   float64 `json:"coverage_rate"`
		UncoveredCount int     `json:"uncovered_count"`
	} `json:"multi_threshold"`
	ChunkAnalysis struct {
		ByLength   map[string]struct{ Count, Covered int } `json:"by_length"`
		ByPosition map[string]struct{ Count, Covered int } `json:"by_position"`
		Summary    struct {
			TotalChunks   int      `json:"total_chunks"`
			ThresholdUsed float64  `json:"threshold_used"`
			Insights      []string `json:"insights"`
		} `json:"summary"`
	} `json:"chunk_analysis"`
	OptimalThresholds map[string]float64 `json:"optimal_thresholds"`
	Embedding         struct {
		Provider   string `json:"provider"`
		Model      string `json:"model"`
		Dimensions int    `json:"dimensions"`
	} `json:"embedding"`
}

func readCoverage(t *testing.T, dir, dataset, id string) coverageFile {
	t.Helper()
	var c coverageFile
	testenv.ReadJSON(t, filepath.Join(dir, "coverage_"+dataset+"_"+id+".json"), &c)
	return c
}

// checkCoverage checks a coverage file's shape and the sanity of its
// numbers for chunks original chunks and pairs pairs at threshold.
func checkCoverage(t *testing.T, c coverageFile, chunks, pairs int, threshold float64) {
	t.Helper()
	if !c.Analyzed || c.TotalChunks != chunks || c.TotalQAPairs != pairs || c.Threshold != threshold || len(c.MaxSimilarities) != chunks {
		t.Fatalf("coverage %+v", c)
	}
	covered := 0
	for _, s := range c.MaxSimilarities {
		if s < -1.0001 || s > 1.0001 {
			t.Fatalf("similarity %v", s)
		}
		if float32(s) >= float32(threshold) {
			covered++
		}
	}
	if c.CoveredChunks != covered || c.CoveredChunks+len(c.UncoveredChunks) != chunks || c.CoverageRate != float64(covered)/float64(chunks) {
		t.Errorf("headline %d covered of %d (%v), %d uncovered; recounted %d", c.CoveredChunks, chunks, c.CoverageRate, len(c.UncoveredChunks), covered)
	}
	for _, u := range c.UncoveredChunks {
		if u.ChunkID == "" || !strings.HasSuffix(u.TextPreview, "...") || u.Gap <= 0 || u.Gap > 2 {
			t.Errorf("uncovered %+v", u)
		}
	}
	s, m, l := c.MultiThreshold["strict"], c.MultiThreshold["standard"], c.MultiThreshold["lenient"]
	if !(s.Threshold > m.Threshold && m.Threshold > l.Threshold) || !(s.CoveredChunks <= m.CoveredChunks && m.CoveredChunks <= l.CoveredChunks) ||
		s.CoveredChunks+s.UncoveredCount != chunks || l.CoveredChunks+l.UncoveredCount != chunks {
		t.Errorf("levels %+v", c.MultiThreshold)
	}
	if c.OptimalThresholds["standard"] != m.Threshold {
		t.Errorf("optimal thresholds %v, standard level %v", c.OptimalThresholds, m.Threshold)
	}
	sum := func(b map[string]struct{ Count, Covered int }, keys ...string) (n, cov int) {
		for _, k := range keys {
			n += b[k].Count
			cov += b[k].Covered
		}
		return
	}
	if n, cov := sum(c.ChunkAnalysis.ByLength, "short", "medium", "long"); n != chunks || cov != covered {
		t.Errorf("by length %+v", c.ChunkAnalysis.ByLength)
	}
	if n, cov := sum(c.ChunkAnalysis.ByPosition, "beginning", "middle", "end"); n != chunks || cov != covered {
		t.Errorf("by position %+v", c.ChunkAnalysis.ByPosition)
	}
	if c.ChunkAnalysis.Summary.TotalChunks != chunks || c.ChunkAnalysis.Summary.ThresholdUsed != threshold || c.ChunkAnalysis.Summary.Insights == nil {
		t.Errorf("summary %+v", c.ChunkAnalysis.Summary)
	}
}

// TestGenerateCoverage: --analyze-coverage in-process with the fake Gemini
// API: Q&A from generateContent, embeddings from batchEmbedContents
// (gemini-embedding-001, 3072 dimensions), the Python coverage file and
// the summary's coverage keys.
func TestGenerateCoverage(t *testing.T) {
	t.Parallel()
	fake := startFake(t, "coverage")
	dir := t.TempDir()
	r := generate(t, dir, geminiAt(fake.addr), "--input-file", filepath.Join(corpusDir, "en.csv"), "--analyze-coverage",
		"--broker", "redis://127.0.0.1:1/0", "--output", "out", "--simple-output-dir", "simple")
	if r.code != 0 || !strings.Contains(r.stdout, "[coverage] embedding 9 original chunks") || !strings.Contains(r.stdout, "カバレージ分析: 9 chunks") ||
		!strings.Contains(r.stdout, "strict    (0.80)") || !strings.Contains(r.stdout, "by position:") {
		t.Fatalf("run\n%s", r)
	}
	o := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", "")
	checkComplete(t, o, enChunks)
	c := readCoverage(t, filepath.Join(dir, "out"), "custom_upload", o.runID)
	checkCoverage(t, c, enChunks, len(o.pairs), 0.7)
	if c.Embedding.Provider != "gemini" || c.Embedding.Model != "gemini-embedding-001" || c.Embedding.Dimensions != 3072 || c.DatasetType != "custom_upload" {
		t.Errorf("embedding %+v, dataset %q", c.Embedding, c.DatasetType)
	}
	if o.summary["coverage_analyzed"] != true || o.summary["coverage_rate"] != c.CoverageRate || o.summary["covered_chunks"] != float64(c.CoveredChunks) ||
		o.summary["total_chunks"] != float64(enChunks) {
		t.Errorf("summary %v", o.summary)
	}
	// Two embedding requests (the chunks, the pairs: each under 100
	// texts), one text per chunk and pair; the Q&A requests apart.
	st := fake.stats(t)
	if st.EmbedRequests["gemini"] != 2 || st.EmbeddedTexts != int64(enChunks+len(o.pairs)) || st.Requests["gemini"] != enChunks {
		t.Errorf("fake stats %+v", st)
	}
}

// TestGenerateCoverageFails: embeddings from a server that always answers
// 500: the run reports the failure (exit 4), the Q&A outputs are
// complete and the coverage file says analyzed false, and why.
func TestGenerateCoverageFails(t *testing.T) {
	t.Parallel()
	fake := startFake(t, "gen")
	var hits atomic.Int64
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, `{"error": {"message": "embedding backend down", "type": "server_error"}}`, http.StatusInternalServerError)
	}))
	defer broken.Close()
	dir := t.TempDir()
	r := generate(t, dir, append(geminiAt(fake.addr), "OPENAI_API_KEY=e2e-not-a-key", "OPENAI_BASE_URL="+broken.URL+"/v1"),
		"--input-file", filepath.Join(corpusDir, "en.csv"), "--analyze-coverage", "--embedding-provider", "openai",
		"--broker", "redis://127.0.0.1:1/0", "--output", "out", "--simple-output-dir", "simple")
	if r.code != 4 || !strings.Contains(r.stdout, "[coverage] FAILED") || !strings.Contains(r.stderr, "coverage analysis failed") ||
		!strings.Contains(r.stderr, "HTTP 500") || strings.Contains(r.stdout+r.stderr, "e2e-not-a-key") {
		t.Fatalf("want exit 4 and the reason\n%s", r)
	}
	if n := hits.Load(); n != 4 {
		t.Errorf("%d embedding requests, want 4 (one and three retries)", n)
	}
	o := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", "")
	checkComplete(t, o, enChunks)
	c := readCoverage(t, filepath.Join(dir, "out"), "custom_upload", o.runID)
	if c.Analyzed || !strings.Contains(c.Error, "HTTP 500") || c.TotalChunks != enChunks || len(c.UncoveredChunks) != 0 {
		t.Errorf("coverage file %+v", c)
	}
	if o.summary["coverage_analyzed"] != false || !strings.Contains(o.summary["coverage_error"].(string), "openai") {
		t.Errorf("summary %v", o.summary)
	}
}

// TestGenerateCoverageCeleryAndResume: --use-celery with a Go worker and a
// custom threshold (the analysis runs in the producer); --resume of the
// complete run with --analyze-coverage analyses it again without sending
// anything (offline embeddings: no key in the producer); --dry-run embeds
// nothing.
func TestGenerateCoverageCeleryAndResume(t *testing.T) {
	e := setup(t)
	t.Parallel()
	fake := startFake(t, "celery-cov")
	e.startWorker(t, "cov", geminiAt(fake.addr))
	dir := t.TempDir()
	r := generate(t, dir, geminiAt(fake.addr), append(e.celeryArgs(), "--input-file", filepath.Join(corpusDir, "en.csv"),
		"--analyze-coverage", "--coverage-threshold", "0.5", "--output", "out")...)
	if r.code != 0 || !strings.Contains(r.stdout, "headline  (0.50)") {
		t.Fatalf("celery run\n%s", r)
	}
	o := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", "")
	checkComplete(t, o, enChunks)
	c := readCoverage(t, filepath.Join(dir, "out"), "custom_upload", o.runID)
	checkCoverage(t, c, enChunks, len(o.pairs), 0.5)
	if c.MultiThreshold["standard"].Threshold != 0.7 || c.Embedding.Provider != "gemini" {
		t.Errorf("levels %+v, embedding %+v", c.MultiThreshold, c.Embedding)
	}
	if st := fake.stats(t); st.EmbedRequests["gemini"] != 2 || st.Requests["gemini"] != enChunks {
		t.Errorf("fake stats %+v", st)
	}

	// Resume of a complete run: nothing sent, coverage analysed, new files.
	r = generate(t, dir, nil, "--resume", o.runID, "--analyze-coverage", "--output", "out")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to send") || !strings.Contains(r.stdout, "analysing its coverage") ||
		!strings.Contains(r.stderr, "offline embedder") {
		t.Fatalf("resume\n%s", r)
	}
	again := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", "")
	if again.runID == o.runID || again.manifest.ResumedFrom != o.runID || len(again.pairs) != len(o.pairs) {
		t.Fatalf("resumed run %s from %s, %d pairs", again.runID, again.manifest.ResumedFrom, len(again.pairs))
	}
	c = readCoverage(t, filepath.Join(dir, "out"), "custom_upload", again.runID)
	checkCoverage(t, c, enChunks, len(o.pairs), 0.7)
	if c.Embedding.Provider != "offline-hashed" || c.Embedding.Dimensions != 768 {
		t.Errorf("embedding %+v", c.Embedding)
	}
	if n := fake.requests(t); n != enChunks {
		t.Errorf("%d LLM requests after the resume", n)
	}

	// --dry-run: nothing embedded, nothing but the chunk file.
	r = generate(t, dir, geminiAt(fake.addr), "--input-file", filepath.Join(corpusDir, "en.csv"), "--analyze-coverage", "--dry-run", "--output", "dry")
	if r.code != 0 || !strings.Contains(r.stdout, "coverage analysis skipped") {
		t.Fatalf("dry run\n%s", r)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "dry", "*")); len(files) != 1 {
		t.Errorf("dry run wrote %v", files)
	}
	if st := fake.stats(t); st.EmbedRequests["gemini"] != 2 {
		t.Errorf("dry run embedded: %+v", st)
	}

	// The coverage flags need --analyze-coverage.
	r = generate(t, dir, nil, "--input-file", filepath.Join(corpusDir, "en.csv"), "--coverage-threshold", "0.6", "--output", "x")
	if r.code == 0 || !strings.Contains(r.stderr, "--coverage-threshold has no effect without --analyze-coverage") {
		t.Errorf("threshold alone\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("outputs written")
	}
}
