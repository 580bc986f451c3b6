package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/internal/testenv"
)

// The en.csv sample has 7 documents, 9 chunks (no merges); the
// wikipedia_ja sample dataset 4 documents, 8 chunks.
const (
	enChunks   = 9
	wikiChunks = 8
)

var japanese = regexp.MustCompile(`[\p{Hiragana}\p{Katakana}\p{Han}]`)

// manifestPath is the run manifest a generate run reports on stdout.
func manifestPath(t *testing.T, dir string, r result) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s+manifest\s+(\S+)$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no manifest in the report\n%s", r)
	}
	if filepath.IsAbs(m[1]) {
		return m[1]
	}
	return filepath.Join(dir, m[1])
}

// runIDOf is the run id of a manifest path run_<dataset>_<id>.json.
func runIDOf(path, dataset string) string {
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "run_"+dataset+"_"), ".json")
}

// TestGenerateNoWorker: the pre-flight check finds no worker: exit 1 with
// a clear message, and nothing sent or written.
func TestGenerateNoWorker(t *testing.T) {
	e := setup(t)
	t.Parallel()
	dir := t.TempDir()
	r := generate(t, dir, nil, append(e.celeryArgs(), "--input-file", filepath.Join(corpusDir, "en.csv"), "--output", "out")...)
	if r.code != 1 || !strings.Contains(r.stderr, "no Celery worker answered") || !strings.Contains(r.stderr, "start_celery.sh start") {
		t.Fatalf("want exit 1 and a message\n%s", r)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "out", "*")); len(m) != 0 {
		t.Errorf("files written: %v", m)
	}
}

// TestGenerateGoWorkers: --use-celery with two Go workers and the fake
// Gemini API: English CSV input, the Japanese wikipedia_ja sample dataset,
// --batch-chunks 3 and --dry-run, with the requests the fake saw.
func TestGenerateGoWorkers(t *testing.T) {
	e := setup(t)
	t.Parallel()
	fake := startFake(t, "ok")
	e.startWorker(t, "a", geminiAt(fake.addr))
	e.startWorker(t, "b", geminiAt(fake.addr))
	dir := t.TempDir()
	en := filepath.Join(corpusDir, "en.csv")

	// One task per chunk, as the Python producer sends.
	r := generate(t, dir, nil, append(e.celeryArgs(), "--input-file", en, "--output", "one", "--simple-output-dir", "simple")...)
	if r.code != 0 || !strings.Contains(r.stdout, "2 worker(s) with 8 slots") || !strings.Contains(r.stdout, "chunks: 9 succeeded, 0 failed, 0 missing") {
		t.Fatalf("run 1\n%s", r)
	}
	if n := fake.requests(t); n != enChunks {
		t.Errorf("%d LLM requests for %d chunks", n, enChunks)
	}
	o := readOutputs(t, filepath.Join(dir, "one"), "custom_upload", "")
	checkComplete(t, o, enChunks)
	for _, row := range o.csv[1:] {
		if row[7] != "gemini" || row[5] != "custom_upload" {
			t.Fatalf("csv row %v", row)
		}
	}
	simple := testenv.ReadCSV(t, filepath.Join(dir, "simple", "a02_qa_pairs_custom_upload.csv"))
	if len(simple) != len(o.pairs)+1 || strings.Join(simple[0], ",") != "question,answer" {
		t.Errorf("simple csv: %d rows, header %v", len(simple), simple[0])
	}
	if !strings.Contains(r.stdout, "質問タイプ別統計:") || !regexp.MustCompile(`進捗: 完了=9/9`).MatchString(r.stderr) {
		t.Errorf("no statistics or progress\n%s", r)
	}

	// The Japanese sample dataset, from another input directory.
	r = generate(t, dir, nil, append(e.celeryArgs(), "--dataset", "wikipedia_ja", "--input-dir", filepath.Join(corpusDir, "OUTPUT"),
		"--output", "wiki", "--simple-output-dir", "simple")...)
	if r.code != 0 || !strings.Contains(r.stdout, "chunks: 8 succeeded, 0 failed, 0 missing") {
		t.Fatalf("wikipedia_ja\n%s", r)
	}
	if n := fake.requests(t); n != enChunks+wikiChunks {
		t.Errorf("%d LLM requests for the dataset's %d chunks", n-enChunks, wikiChunks)
	}
	o = readOutputs(t, filepath.Join(dir, "wiki"), "wikipedia_ja", "")
	checkComplete(t, o, wikiChunks)
	if o.summary["dataset_type"] != "wikipedia_ja" || o.summary["dataset_name"] != "Wikipedia日本語版" {
		t.Errorf("summary %v", o.summary)
	}
	for _, p := range o.pairs {
		if !strings.HasPrefix(p["doc_id"].(string), "wikipedia_ja_") || p["dataset_type"] != "wikipedia_ja" || !japanese.MatchString(p["answer"].(string)) {
			t.Fatalf("pair %v", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "simple", "a02_qa_pairs_wikipedia_ja.csv")); err != nil {
		t.Error(err)
	}

	// --batch-chunks 3: a third of the requests, pairs still per chunk.
	r = generate(t, dir, nil, append(e.celeryArgs(), "--input-file", en, "--output", "batch", "--batch-chunks", "3")...)
	if r.code != 0 || !strings.Contains(r.stdout, "generating Q&A: 3 tasks") {
		t.Fatalf("batch\n%s", r)
	}
	if n := fake.requests(t) - enChunks - wikiChunks; n != 3 {
		t.Errorf("--batch-chunks 3: %d requests for %d chunks, want 3", n, enChunks)
	}
	o = readOutputs(t, filepath.Join(dir, "batch"), "custom_upload", "")
	checkComplete(t, o, enChunks)
	if len(o.manifest.Units) != 3 {
		t.Fatalf("%d units", len(o.manifest.Units))
	}
	for _, u := range o.manifest.Units {
		if len(u.ChunkIDs) != 3 {
			t.Errorf("unit of %d chunks", len(u.ChunkIDs))
		}
		for _, raw := range u.Pairs {
			var p struct {
				Source string `json:"source_chunk_id"`
			}
			json.Unmarshal(raw, &p)
			if !strings.Contains(strings.Join(u.ChunkIDs, " "), p.Source) || p.Source == "" {
				t.Errorf("pair of chunk %q in the unit of %v", p.Source, u.ChunkIDs)
			}
		}
	}

	// --dry-run: the chunk file, no task, no LLM call.
	before := fake.requests(t)
	r = generate(t, dir, nil, append(e.celeryArgs(), "--input-file", en, "--output", "dry", "--dry-run")...)
	if r.code != 0 || !strings.Contains(r.stdout, "dry run: no LLM call made") {
		t.Fatalf("dry run\n%s", r)
	}
	if n := fake.requests(t); n != before {
		t.Errorf("dry run made %d LLM requests", n-before)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "dry", "*"))
	if len(files) != 1 || !regexp.MustCompile(`chunks_custom_upload_\d{8}_\d{6}\.jsonl$`).MatchString(files[0]) {
		t.Fatalf("dry run wrote %v", files)
	}
	data, _ := os.ReadFile(files[0])
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != enChunks || !strings.HasPrefix(lines[0], `{"id":"custom_upload_0_chunk_0","text":`) {
		t.Errorf("chunk file: %d lines, first %.80s", len(lines), lines[0])
	}
	if !regexp.MustCompile(`about \d+ LLM tokens \(prompts and expected answers\)`).MatchString(r.stdout) {
		t.Errorf("dry run without a token estimate\n%s", r)
	}

	// The plan tells how long the fleet's limit makes the run: 9 requests
	// at 6 a minute.
	if out, err := exec.Command(qagenBin, "ratelimit", "set", "gemini/*", "--rpm", "6", "--broker", e.url, "--key-prefix", e.prefix).CombinedOutput(); err != nil {
		t.Fatalf("ratelimit set: %v\n%s", err, out)
	}
	r = generate(t, dir, nil, append(e.celeryArgs(), "--input-file", en, "--output", "dry", "--dry-run")...)
	if !strings.Contains(r.stdout, "at gemini/gemini-2.0-flash's 6 requests/min (the fleet's limit): at least 1m30s of LLM calls") {
		t.Errorf("dry run under a fleet limit\n%s", r)
	}
}

// TestGeneratePythonWorker: the same run on a real Python Celery worker
// serving celery_tasks.generate_qa_unified_async (and the batch task).
func TestGeneratePythonWorker(t *testing.T) {
	e := setup(t)
	t.Parallel()
	py := e.startPyWorker(t)
	dir := t.TempDir()
	in := filepath.Join(corpusDir, "ja.jsonl")
	r := generate(t, dir, nil, append(e.celeryArgs(), "--input-file", in, "--output", "one")...)
	if r.code != 0 || !strings.Contains(r.stdout, "1 worker(s) with 1 slots") {
		t.Fatalf("run\n%s", r)
	}
	o := readOutputs(t, filepath.Join(dir, "one"), "custom_upload", "")
	checkComplete(t, o, o.manifest.Chunks)
	if o.manifest.Chunks < 5 {
		t.Errorf("only %d chunks", o.manifest.Chunks)
	}
	for _, row := range o.csv[1:] {
		if row[7] != "python-standin" || !strings.HasPrefix(row[0], "この文章の") {
			t.Fatalf("csv row %v", row)
		}
	}
	if n := strings.Count(py.Log(), "Task celery_tasks.generate_qa_unified_async["); n < 2*o.manifest.Chunks {
		t.Errorf("the Python worker logged %d received/succeeded lines for %d tasks", n, o.manifest.Chunks)
	}

	// Batches go to the batch task, with its three arguments.
	r = generate(t, dir, nil, append(e.celeryArgs(), "--input-file", in, "--output", "batch", "--batch-chunks", "2")...)
	if r.code != 0 {
		t.Fatalf("batch run\n%s", r)
	}
	ob := readOutputs(t, filepath.Join(dir, "batch"), "custom_upload", "")
	checkComplete(t, ob, o.manifest.Chunks)
	if len(ob.manifest.Units) >= len(o.manifest.Units) || !strings.Contains(py.Log(), "Task celery_tasks.generate_qa_for_batch_async[") {
		t.Errorf("%d batch units for %d chunks", len(ob.manifest.Units), o.manifest.Chunks)
	}
}

// TestGenerateInProcess: no --use-celery: the tasks run in the process
// (the broker is never contacted), offline without an API key.
func TestGenerateInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := generate(t, dir, nil, "--input-file", filepath.Join(corpusDir, "md"), "--broker", "redis://127.0.0.1:1/0",
		"--output", "out", "--simple-output-dir", "simple", "--concurrency", "2")
	if r.code != 0 || !strings.Contains(r.stderr, "offline extractive provider") || !strings.Contains(r.stdout, "(in-process)") {
		t.Fatalf("in-process run\n%s", r)
	}
	o := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", "")
	checkComplete(t, o, o.manifest.Chunks)
	for _, row := range o.csv[1:] {
		if row[7] != "offline-extractive" {
			t.Fatalf("csv row %v", row)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "simple", "a02_qa_pairs_custom_upload.csv")); err != nil {
		t.Error(err)
	}
}

// TestGenerateFailuresAndResume: Go workers against a fake whose every
// request fails (500), one retry each: every chunk in the failure list,
// exit 3; then --resume <run id> with a healthy provider completes the run.
func TestGenerateFailuresAndResume(t *testing.T) {
	e := setup(t)
	t.Parallel()
	bad := startFake(t, "bad", "--fail-rate", "1", "--fail-kinds", "500")
	w := e.startWorker(t, "bad", geminiAt(bad.addr), "--qa-max-retries", "1")
	dir := t.TempDir()
	r := generate(t, dir, nil, append(e.celeryArgs(), "--input-file", filepath.Join(corpusDir, "en.csv"), "--output", "out")...)
	if r.code != 3 || !strings.Contains(r.stderr, "9 chunks failed and 0 are missing; resend them with --resume") ||
		!strings.Contains(r.stdout, "chunks: 0 succeeded, 9 failed, 0 missing; 0 Q&A pairs") {
		t.Fatalf("run with failures\n%s", r)
	}
	path := manifestPath(t, dir, r)
	first := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", runIDOf(path, "custom_upload"))
	if st := first.manifest.states(); st["failed"] != enChunks || len(st) != 1 {
		t.Fatalf("states %v", st)
	}
	if n := bad.requests(t); n != 2*enChunks {
		t.Errorf("%d requests with one retry per chunk, want %d", n, 2*enChunks)
	}
	if first.summary["failed_chunks"] != float64(enChunks) || first.summary["missing_chunks"] != 0.0 || first.summary["total_qa_pairs"] != 0.0 ||
		len(first.summary["failures"].([]any)) != enChunks {
		t.Errorf("summary %v", first.summary)
	}
	if len(first.failures) != enChunks+1 || strings.Join(first.failures[0], ",") != "chunk_id,task_id,state,error" {
		t.Fatalf("failures csv %v", first.failures)
	}
	for i, row := range first.failures[1:] {
		if row[0] != first.manifest.Units[i].ChunkIDs[0] || row[1] != first.manifest.Units[i].TaskID || row[2] != "failed" || !strings.Contains(row[3], "HTTP 500") {
			t.Errorf("failure row %v", row)
		}
	}
	if !regexp.MustCompile(`再試行=9\b`).MatchString(r.stderr) {
		t.Errorf("progress does not count the retries\n%s", r.stderr)
	}

	// The provider recovers (a worker on a healthy fake, the same queue).
	if err := w.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	good := startFake(t, "good")
	e.startWorker(t, "good", geminiAt(good.addr))
	r = generate(t, dir, nil, "--resume", first.runID, "--output", "out", "--broker", e.url, "--result-backend", e.url, "--key-prefix", e.prefix)
	if r.code != 0 || !strings.Contains(r.stdout, "[resume] run "+first.runID+": 9 of 9 tasks") || !strings.Contains(r.stdout, "chunks: 9 succeeded, 0 failed, 0 missing") {
		t.Fatalf("resume\n%s", r)
	}
	if n := good.requests(t); n != enChunks {
		t.Errorf("resume made %d requests", n)
	}
	second := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", runIDOf(manifestPath(t, dir, r), "custom_upload"))
	if second.runID == first.runID || second.manifest.ResumedFrom != first.runID || second.summary["resumed_from"] != first.runID {
		t.Errorf("resumed run %s from %q", second.runID, second.manifest.ResumedFrom)
	}
	checkComplete(t, second, enChunks)
	for i, u := range first.manifest.Units {
		if v := second.manifest.Units[i]; v.TaskID == u.TaskID || v.TaskID == "" {
			t.Errorf("unit %v sent again under its old task id", u.ChunkIDs)
		}
	}
	if _, err := os.Stat(path); err != nil { // the first run's manifest stays
		t.Error(err)
	}
}

// TestGeneratePartialResume: a fake allowing 4 requests a minute and
// --timeout: the first chunks succeed, the rest are missing (their tasks
// wait for the rate limit); --resume on another queue with a healthy
// worker sends only the missing ones and keeps the pairs it had.
func TestGeneratePartialResume(t *testing.T) {
	e := setup(t)
	t.Parallel()
	limited := startFake(t, "limited", "--rpm", "4")
	e.startWorker(t, "limited", geminiAt(limited.addr))
	dir := t.TempDir()
	r := generate(t, dir, nil, append(e.celeryArgs(), "--input-file", filepath.Join(corpusDir, "en.csv"), "--output", "out", "--timeout", "3s")...)
	if r.code != 3 || !strings.Contains(r.stdout, "stopped early: timeout") {
		t.Fatalf("run with a timeout\n%s", r)
	}
	first := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", runIDOf(manifestPath(t, dir, r), "custom_upload"))
	st := first.manifest.states()
	missing := st["missing"]
	if st["succeeded"] == 0 || missing == 0 || st["succeeded"]+missing != enChunks {
		t.Fatalf("states %v: want some succeeded and some missing", st)
	}
	if first.summary["missing_chunks"] != float64(missing) || first.summary["stopped"] != "timeout" || len(first.failures) != missing+1 {
		t.Errorf("summary %v, failures %v", first.summary, first.failures)
	}
	for _, row := range first.failures[1:] {
		if row[2] != "missing" || row[3] != "no result before the run stopped" {
			t.Errorf("failure row %v", row)
		}
	}

	// The missing tasks are still queued behind the rate limit on the old
	// queue; resume sends new ones to a healthy worker's queue, under
	// another key prefix (the fleet-wide 429 pause is per prefix).
	other := *e
	other.queue, other.prefix = e.queue+"_b", testenv.Prefix(t)
	good := startFake(t, "good")
	other.startWorker(t, "good", geminiAt(good.addr))
	r = generate(t, dir, nil, "--resume", first.runID, "--output", "out", "-Q", other.queue, "--broker", e.url, "--result-backend", e.url, "--key-prefix", other.prefix)
	if r.code != 0 || !strings.Contains(r.stdout, "Celery workers on queue "+other.queue) || !strings.Contains(r.stdout, "chunks: 9 succeeded, 0 failed, 0 missing") {
		t.Fatalf("resume\n%s", r)
	}
	if n := good.requests(t); n != int64(missing) {
		t.Errorf("resume made %d requests for %d missing chunks", n, missing)
	}
	second := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", runIDOf(manifestPath(t, dir, r), "custom_upload"))
	checkComplete(t, second, enChunks)
	if second.manifest.ResumedFrom != first.runID {
		t.Errorf("resumed from %q", second.manifest.ResumedFrom)
	}
	for i, u := range first.manifest.Units {
		v := second.manifest.Units[i]
		switch u.State {
		case "succeeded":
			if v.TaskID != u.TaskID || len(v.Pairs) != len(u.Pairs) || string(v.Pairs[0]) != string(u.Pairs[0]) {
				t.Errorf("succeeded unit %v changed", u.ChunkIDs)
			}
		case "missing":
			if v.TaskID == u.TaskID || v.State != "succeeded" {
				t.Errorf("missing unit %v: task %s -> %s, %s", u.ChunkIDs, u.TaskID, v.TaskID, v.State)
			}
		}
	}
	// A complete run has nothing to resume.
	r = generate(t, dir, nil, "--resume", manifestPath(t, dir, r), "--output", "out", "--broker", e.url, "--key-prefix", e.prefix)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to send") {
		t.Errorf("resume of a complete run\n%s", r)
	}
}

// TestGenerateTimeoutResume: in-process with a provider slower than
// --timeout: every chunk missing, exit 3; --resume (by manifest path) with
// a working provider completes the run.
func TestGenerateTimeoutResume(t *testing.T) {
	t.Parallel()
	slow := startFake(t, "slow", "--latency", "30s")
	dir := t.TempDir()
	r := generate(t, dir, geminiAt(slow.addr), "--input-file", filepath.Join(corpusDir, "en.txt"), "--output", "out", "--timeout", "1s", "--concurrency", "4")
	if r.code != 3 || !strings.Contains(r.stdout, "stopped early: timeout") || !strings.Contains(r.stderr, "0 chunks failed and 9 are missing") {
		t.Fatalf("run with a timeout\n%s", r)
	}
	path := manifestPath(t, dir, r)
	first := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", runIDOf(path, "custom_upload"))
	if st := first.manifest.states(); st["missing"] != 9 || len(st) != 1 {
		t.Fatalf("states %v", st)
	}
	if first.summary["missing_chunks"] != 9.0 || first.summary["stopped"] != "timeout" || len(first.failures) != 10 || first.failures[1][2] != "missing" {
		t.Errorf("summary %v, failures %v", first.summary, first.failures)
	}

	ok := startFake(t, "ok")
	r = generate(t, dir, geminiAt(ok.addr), "--resume", path, "--output", "out", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "dry run: nothing sent") || ok.requests(t) != 0 {
		t.Fatalf("resume --dry-run sent something\n%s", r)
	}
	r = generate(t, dir, geminiAt(ok.addr), "--resume", path, "--output", "out")
	if r.code != 0 || !strings.Contains(r.stdout, "[resume] run "+first.runID+": 9 of 9 tasks") {
		t.Fatalf("resume\n%s", r)
	}
	second := readOutputs(t, filepath.Join(dir, "out"), "custom_upload", runIDOf(manifestPath(t, dir, r), "custom_upload"))
	checkComplete(t, second, 9)
	if second.manifest.ResumedFrom != first.runID || ok.requests(t) != 9 {
		t.Errorf("resumed from %q, %d requests", second.manifest.ResumedFrom, ok.requests(t))
	}
	for _, row := range second.csv[1:] {
		if row[7] != "gemini" {
			t.Fatalf("resume changed the provider: %v", row)
		}
	}
}
