package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/llm/fakellm"
)

// Set by TestMain.
var (
	qagenBin   string
	moduleRoot string
	corpusDir  string // testdata/corpus
	pyDir      string // testdata/python
)

func TestMain(m *testing.M) {
	// The tests mostly wait for processes; run them all at once.
	os.Exit(testenv.MainWithQagen(m, "e2e", 8, false, func(bin, root string) {
		qagenBin, moduleRoot = bin, root
		corpusDir = filepath.Join(root, "testdata", "corpus")
		pyDir = filepath.Join(root, "testdata", "python")
	}))
}

// env is one test's Redis setup: database testenv.DBE2E, a queue and a
// kombu key prefix of its own.
type env struct {
	url    string
	queue  string
	prefix string
}

// setup must run before t.Parallel(): the first testenv.Redis call of the
// binary flushes the database.
func setup(t *testing.T) *env {
	t.Helper()
	testenv.Redis(t, testenv.DBE2E)
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	return &env{url: testenv.URL(testenv.DBE2E), queue: "e2e_" + id, prefix: testenv.Prefix(t)}
}

// cleanEnv is the environment without anything that would choose a
// provider, a key, a broker or qagen settings behind a test's back.
func cleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GOOGLE_") || strings.HasPrefix(k, "GEMINI_") || strings.HasPrefix(k, "OPENAI_") ||
			strings.HasPrefix(k, "QAGEN_") || strings.HasPrefix(k, "CELERY_") || strings.HasPrefix(k, "FAKE_LLM_") || k == "LLM_PROVIDER" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// geminiAt points the Gemini provider at a fake server.
func geminiAt(addr string) []string {
	return []string{"GOOGLE_API_KEY=e2e-not-a-key", "GOOGLE_GEMINI_BASE_URL=http://" + addr}
}

// ---------------------------------------------------------------------------
// Background processes

// proc is a background process of a test (see testenv.Proc).
type proc = testenv.Proc

func startProc(t testing.TB, name, dir string, environ []string, argv ...string) *proc {
	t.Helper()
	return testenv.StartProc(t, name, dir, environ, argv...)
}

// fakeLLM is a `qagen fake-llm` process on a port the kernel picked.
type fakeLLM struct {
	*proc
	addr string
}

func startFake(t *testing.T, tag string, flags ...string) *fakeLLM {
	t.Helper()
	p, addr := testenv.StartFakeLLM(t, tag, qagenBin, moduleRoot, cleanEnv(), flags...)
	return &fakeLLM{proc: p, addr: addr}
}

// stats reads the fake's counters (GET /stats).
func (f *fakeLLM) stats(t *testing.T) fakellm.Stats {
	t.Helper()
	var st fakellm.Stats
	testenv.GetJSON(t, "http://"+f.addr+"/stats", &st)
	return st
}

// requests is the number of API requests the fake has answered.
func (f *fakeLLM) requests(t *testing.T) int64 {
	t.Helper()
	var n int64
	for _, v := range f.stats(t).Requests {
		n += v
	}
	return n
}

// startWorker starts a Go worker (`qagen worker`) on the env's queue and
// prefix, waiting until it consumes. environ adds to cleanEnv.
func (e *env) startWorker(t *testing.T, tag string, environ []string, flags ...string) *proc {
	t.Helper()
	argv := append([]string{qagenBin, "worker", "--broker", e.url, "--result-backend", e.url, "--key-prefix", e.prefix,
		"-Q", e.queue, "-n", "e2e_" + tag + "_" + uuid.NewString()[:8] + "@%h", "-c", "4", "--log-format", "json",
		"--qa-retry-delay", "0.05"}, flags...)
	p := startProc(t, "worker-"+tag, moduleRoot, cleanEnv(environ...), argv...)
	p.WaitLog(t, `"worker ready"`, 15*time.Second)
	return p
}

// startPyWorker starts a real Celery 5.2.6 worker with the Python
// stand-in of the Q&A tasks (testdata/python/qa_standin.py).
func (e *env) startPyWorker(t *testing.T) *proc {
	t.Helper()
	testenv.RequirePython(t)
	environ := cleanEnv("QAGEN_IT_BROKER="+e.url, "QAGEN_IT_BACKEND="+e.url, "QAGEN_IT_QUEUE="+e.queue, "QAGEN_IT_PREFIX="+e.prefix,
		"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PYTHONIOENCODING=utf-8")
	p := startProc(t, "py-worker", pyDir, environ, testenv.Python, "-m", "celery", "-A", "qa_standin", "worker",
		"-Q", e.queue, "-n", "py_e2e_"+uuid.NewString()[:8]+"@%h", "-l", "info",
		"--without-mingle", "--without-gossip", "--without-heartbeat", "-P", "solo", "-c", "1")
	p.WaitLog(t, " ready.", 30*time.Second)
	return p
}

// ---------------------------------------------------------------------------
// qagen generate

// result is one `qagen generate` run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// generate runs `qagen generate` with args in dir and the environment
// cleanEnv(environ...).
func generate(t *testing.T, dir string, environ []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qagenBin, append([]string{"generate"}, args...)...)
	cmd.Dir, cmd.Env = dir, cleanEnv(environ...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("qagen generate %s timed out\n%s", strings.Join(args, " "), r)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if testing.Verbose() {
		t.Logf("qagen generate %s\n%s", strings.Join(args, " "), r)
	}
	return r
}

// celeryArgs are the flags that put generate on the env's Redis.
func (e *env) celeryArgs() []string {
	return []string{"--use-celery", "--broker", e.url, "--result-backend", e.url, "--key-prefix", e.prefix, "-Q", e.queue}
}

// outputs are the files of one run, found in its output directory.
type outputs struct {
	runID    string
	manifest manifest
	summary  map[string]any
	pairs    []map[string]any
	csv      [][]string
	failures [][]string // nil when there is no failures file
}

type manifest struct {
	ID          string `json:"run_id"`
	DatasetType string `json:"dataset_type"`
	ResumedFrom string `json:"resumed_from"`
	Chunks      int    `json:"chunks"`
	Units       []struct {
		TaskID   string            `json:"task_id"`
		ChunkIDs []string          `json:"chunk_ids"`
		State    string            `json:"state"`
		Error    string            `json:"error"`
		Pairs    []json.RawMessage `json:"pairs"`
	} `json:"units"`
}

// states counts the manifest's chunks per state.
func (m manifest) states() map[string]int {
	out := map[string]int{}
	for _, u := range m.Units {
		out[u.State] += len(u.ChunkIDs)
	}
	return out
}

// readOutputs reads the files of run id (the newest run when id is "").
func readOutputs(t *testing.T, dir, dataset, id string) outputs {
	t.Helper()
	if id == "" {
		runs, _ := filepath.Glob(filepath.Join(dir, "run_"+dataset+"_*.json"))
		if len(runs) == 0 {
			t.Fatalf("no run manifest in %s", dir)
		}
		id = runIDOf(runs[len(runs)-1], dataset)
	}
	name := func(kind, ext string) string { return filepath.Join(dir, kind+"_"+dataset+"_"+id+"."+ext) }
	o := outputs{runID: id}
	testenv.ReadJSON(t, name("run", "json"), &o.manifest)
	testenv.ReadJSON(t, name("summary", "json"), &o.summary)
	testenv.ReadJSON(t, name("qa_pairs", "json"), &o.pairs)
	o.csv = testenv.ReadCSV(t, name("qa_pairs", "csv"))
	if _, err := os.Stat(name("failures", "csv")); err == nil {
		o.failures = testenv.ReadCSV(t, name("failures", "csv"))
	}
	return o
}

// checkComplete checks a run in which every chunk succeeded: counts in the
// summary, manifest and files agree, and every chunk has pairs
// attributed to it.
func checkComplete(t *testing.T, o outputs, chunks int) {
	t.Helper()
	if st := o.manifest.states(); st["succeeded"] != chunks || len(st) != 1 || o.manifest.Chunks != chunks {
		t.Errorf("manifest states %v (%d chunks), want %d succeeded", st, o.manifest.Chunks, chunks)
	}
	if o.summary["succeeded_chunks"] != float64(chunks) || o.summary["failed_chunks"] != 0.0 || o.summary["missing_chunks"] != 0.0 ||
		o.summary["total_chunks"] != float64(chunks) || o.summary["total_qa_pairs"] != float64(len(o.pairs)) || o.failures != nil {
		t.Errorf("summary %v (failures file %v)", o.summary, o.failures != nil)
	}
	if len(o.csv) != len(o.pairs)+1 || len(o.pairs) < chunks {
		t.Errorf("%d pairs in JSON, %d CSV rows, %d chunks", len(o.pairs), len(o.csv)-1, chunks)
	}
	want := []string{"question", "answer", "question_type", "source_chunk_id", "doc_id", "dataset_type", "chunk_idx", "provider"}
	if len(o.csv) > 0 && strings.Join(o.csv[0], ",") != strings.Join(want, ",") {
		t.Errorf("csv header %v", o.csv[0])
	}
	perChunk := map[string]int{}
	for _, p := range o.pairs {
		perChunk[p["source_chunk_id"].(string)]++
	}
	for _, u := range o.manifest.Units {
		for _, id := range u.ChunkIDs {
			if perChunk[id] == 0 {
				t.Errorf("chunk %s has no pairs", id)
			}
			delete(perChunk, id)
		}
	}
	if len(perChunk) != 0 {
		t.Errorf("pairs of chunks not in the run: %v", perChunk)
	}
}
