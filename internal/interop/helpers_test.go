package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"

	"github.com/qagen/qagen/internal/testenv"
)

// Set by TestMain.
var (
	qagenBin   string // the qagen binary built for this test run
	moduleRoot string
	pyDir      string // testdata/python
	fixtureDir string // testdata/fixtures
)

func TestMain(m *testing.M) {
	// The scenarios spend their time waiting (task sleeps, ETAs, visibility
	// timeouts), so GOMAXPROCS (2 on CI) would serialize them needlessly.
	// QAGEN_INTEROP_RACE=1 builds the workers with the race detector; a
	// race fails the test that ran the worker.
	os.Exit(testenv.MainWithQagen(m, "interop", 8, os.Getenv("QAGEN_INTEROP_RACE") == "1", func(bin, root string) {
		qagenBin, moduleRoot = bin, root
		pyDir = filepath.Join(root, "testdata", "python")
		fixtureDir = filepath.Join(root, "testdata", "fixtures")
	}))
}

// short returns a short unique suffix.
func short() string { return strings.ReplaceAll(uuid.NewString()[:8], "-", "") }

// newQueue returns a queue name unique to one test.
func newQueue() string { return "it_" + short() }

// env is the Redis setup a test shares with its Python scripts.
type env struct {
	t      *testing.T
	pool   *redis.Pool
	url    string
	queue  string
	prefix string // kombu global_keyprefix; "" for none
}

// setup must run before t.Parallel(): the first testenv.Redis call of the
// binary flushes database 14, which must not happen under a running test.
func setup(t *testing.T, withPrefix bool) *env {
	t.Helper()
	testenv.RequirePython(t)
	pool, _ := testenv.Redis(t, testenv.DBInterop)
	e := &env{t: t, pool: pool, url: testenv.URL(testenv.DBInterop), queue: newQueue()}
	if withPrefix {
		e.prefix = testenv.Prefix(t)
	}
	return e
}

func (e *env) pyEnv() []string {
	return append(os.Environ(),
		"QAGEN_IT_BROKER="+e.url,
		"QAGEN_IT_BACKEND="+e.url,
		"QAGEN_IT_QUEUE="+e.queue,
		"QAGEN_IT_PREFIX="+e.prefix,
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
		"PYTHONIOENCODING=utf-8",
	)
}

// ---------------------------------------------------------------------------
// Processes

// proc is a background process of a test (see testenv.Proc).
type proc = testenv.Proc

func startProc(t testing.TB, name, dir string, environ []string, argv ...string) *proc {
	t.Helper()
	return testenv.StartProc(t, name, dir, environ, argv...)
}

// waitFor polls until cond holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, cond)
}

// ---------------------------------------------------------------------------
// Go workers

type goWorker struct {
	*proc
	hostname string
}

// startGoWorker starts `qagen worker` on the env's queue with debug JSON
// logs and waits until it is consuming. extra are more flags.
func (e *env) startGoWorker(t *testing.T, tag string, concurrency int, extra ...string) *goWorker {
	t.Helper()
	return e.startGoWorkerAs(t, tag, goWorkerOpts{}, concurrency, extra...)
}

// goWorkerOpts override startGoWorker's defaults.
type goWorkerOpts struct {
	hostname string   // default go_<tag>_<random>@interop
	broker   string   // default the env's URL
	env      []string // more environment (later entries win; KEY= blanks one)
}

// startGoWorkerAs is startGoWorker with a chosen nodename or broker URL.
func (e *env) startGoWorkerAs(t *testing.T, tag string, o goWorkerOpts, concurrency int, extra ...string) *goWorker {
	t.Helper()
	host := o.hostname
	if host == "" {
		host = newGoHostname(tag)
	}
	brokerURL := o.broker
	if brokerURL == "" {
		brokerURL = e.url
	}
	argv := []string{qagenBin, "worker",
		"--broker", brokerURL, "--result-backend", e.url,
		"-Q", e.queue, "-l", "debug", "--log-format", "json",
		"--hostname", host, "-c", fmt.Sprint(concurrency),
	}
	if e.prefix != "" {
		argv = append(argv, "--key-prefix", e.prefix)
	}
	argv = append(argv, extra...)
	environ := append(os.Environ(), o.env...)
	w := &goWorker{proc: startProc(t, "go-worker-"+tag, moduleRoot, environ, argv...), hostname: host}
	w.WaitLog(t, `"worker ready"`, 15*time.Second)
	return w
}

// setupGoWorker is setup (with a key prefix), t.Parallel() and one Go
// worker: the start of most single-worker scenarios.
func setupGoWorker(t *testing.T, tag string, concurrency int, extra ...string) (*env, *goWorker) {
	t.Helper()
	e := setup(t, true)
	t.Parallel()
	return e, e.startGoWorker(t, tag, concurrency, extra...)
}

// newGoHostname returns a unique nodename for a Go worker.
func newGoHostname(tag string) string { return fmt.Sprintf("go_%s_%s@interop", tag, short()) }

// logLine is one JSON log line of a Go worker.
type logLine struct {
	Level   string `json:"level"`
	Message string `json:"message"`
	Task    string `json:"task"`
	ID      string `json:"id"`
	Count   int    `json:"messages"`
}

func (w *goWorker) lines() []logLine { return jsonLines[logLine](w.Log()) }

// jsonLines decodes the lines of a log that are JSON objects of shape T
// and skips the others.
func jsonLines[T any](log string) []T {
	var out []T
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l T
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// idsWith counts, per task id, the log lines with the given message.
func (w *goWorker) idsWith(message string) map[string]int {
	out := map[string]int{}
	for _, l := range w.lines() {
		if l.Message == message && l.ID != "" {
			out[l.ID]++
		}
	}
	return out
}

func (w *goWorker) messages(message string) []logLine {
	var out []logLine
	for _, l := range w.lines() {
		if l.Message == message {
			out = append(out, l)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Python

// pyOpts adjust a Python worker.
type pyOpts struct {
	env  []string // more environment (QAGEN_IT_VISIBILITY=...)
	pool []string // pool flags; default -P solo -c 1
}

// startPyWorker starts a real Celery 5.2.6 worker (testdata/python/pytasks)
// on the env's queue and waits until it is ready.
func (e *env) startPyWorker(t *testing.T, tag string, o pyOpts) *proc {
	t.Helper()
	name := fmt.Sprintf("py_%s_%s", tag, short())
	if o.pool == nil {
		o.pool = []string{"-P", "solo", "-c", "1"}
	}
	argv := append([]string{testenv.Python, "-m", "celery", "-A", "pytasks", "worker",
		"-Q", e.queue, "-n", name + "@%h", "-l", "info",
		"--without-mingle", "--without-gossip", "--without-heartbeat",
	}, o.pool...)
	p := startProc(t, "py-worker-"+tag, pyDir, append(e.pyEnv(), o.env...), argv...)
	p.WaitLog(t, " ready.", 30*time.Second)
	return p
}

var pySucceeded = regexp.MustCompile(`Task ([\w.]+)\[([0-9a-f-]{36})\] succeeded`)

// pyIDsSucceeded counts, per task id, the "succeeded" lines of a Python worker.
func pyIDsSucceeded(p *proc) map[string]int {
	out := map[string]int{}
	for _, m := range pySucceeded.FindAllStringSubmatch(p.Log(), -1) {
		out[m[2]]++
	}
	return out
}

// runPy runs testdata/python/client.py with the env's settings and decodes
// its one line of JSON into out. A script error fails the test.
func (e *env) runPy(t testing.TB, timeout time.Duration, out any, args ...string) {
	t.Helper()
	e.runPyEnv(t, timeout, nil, out, args...)
}

// runPyEnv is runPy with more environment variables (QAGEN_IT_TZ, ...).
func (e *env) runPyEnv(t testing.TB, timeout time.Duration, extraEnv []string, out any, args ...string) {
	t.Helper()
	e.runScript(t, "client.py", timeout, extraEnv, out, args...)
}

// runScript runs a script of testdata/python with the env's settings and
// decodes its last line of JSON into out. A script error fails the test.
func (e *env) runScript(t testing.TB, script string, timeout time.Duration, extraEnv []string, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Python, append([]string{script}, args...)...)
	cmd.Dir = pyDir
	cmd.Env = append(append(e.pyEnv(), extraEnv...), fmt.Sprintf("QAGEN_IT_TIMEOUT=%g", (timeout-5*time.Second).Seconds()))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s timed out after %s\nstderr:\n%s", script, strings.Join(args, " "), timeout, stderr.String())
	}
	line := lastLine(stdout.Bytes())
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", script, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s %s printed no JSON (%v)\nstdout:\n%s\nstderr:\n%s", script, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if testing.Verbose() {
		t.Logf("%s %s -> %s", script, strings.Join(args, " "), abbreviate(string(line), 1500))
	}
}

// sentTasks is what `client.py send` prints: the ids of each entry of the
// spec, and the time sending ended.
type sentTasks struct {
	IDs      [][]string `json:"ids"`
	SentAtTS float64    `json:"sent_at_ts"`
}

// send runs `client.py send SPEC`, SPEC a JSON list of {"task", "args",
// "kwargs", "options", "count"}.
func (e *env) send(t testing.TB, timeout time.Duration, spec string) sentTasks {
	t.Helper()
	var s sentTasks
	e.runPy(t, timeout, &s, "send", spec)
	return s
}

// collect runs `client.py collect IDS...`: get() of every task, within
// timeout in all, and its outcome by id.
func (e *env) collect(t testing.TB, timeout time.Duration, ids ...string) map[string]pyOutcome {
	t.Helper()
	var got struct {
		Results map[string]pyOutcome `json:"results"`
	}
	e.runPy(t, timeout, &got, append([]string{"collect"}, ids...)...)
	return got.Results
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func abbreviate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// pyExc is an exception raised by AsyncResult.get() in Python.
type pyExc struct {
	Type     string `json:"type"`
	Module   string `json:"module"`
	Qualname string `json:"qualname"`
	Message  string `json:"message"`
	Args     []any  `json:"args"`
}

// pyOutcome is client.py's description of one task.
type pyOutcome struct {
	ID                 string          `json:"id"`
	Got                bool            `json:"got"`
	Result             json.RawMessage `json:"result"`
	Raised             *pyExc          `json:"raised"`
	RaisedIsValueError bool            `json:"raised_is_value_error"`
	State              string          `json:"state"`
	Traceback          *string         `json:"traceback"`
	DateDone           *string         `json:"date_done"`
	DateDoneTS         *float64        `json:"date_done_ts"`
	Worker             *string         `json:"worker"`
	Retries            *int            `json:"retries"`
	StatesSeen         []string        `json:"states_seen"`
	SentAtTS           float64         `json:"sent_at_ts"`
	StateAt1s          string          `json:"state_at_1s"`
	StateCheckedAtTS   float64         `json:"state_checked_at_ts"`
	Equal              bool            `json:"equal"`
	ETA                string          `json:"eta"`
	ETATS              float64         `json:"eta_ts"`
	DeadFound          bool            `json:"dead_found"`
	DeadRecord         map[string]any  `json:"dead_record"`
	DeadMessageID      string          `json:"dead_message_id"`
	DeadMessageTask    string          `json:"dead_message_task"`
	DeadMessageError   string          `json:"dead_message_error"`
	Sent               json.RawMessage `json:"sent"`
	ErrorFromPython    *pyExc          `json:"error"`
}

func (o *pyOutcome) String() string {
	b, _ := json.Marshal(o)
	return abbreviate(string(b), 2000)
}

// expectSuccess checks a SUCCESS outcome whose result equals want (JSON).
func expectSuccess(t testing.TB, what string, o pyOutcome, want string) {
	t.Helper()
	if o.Raised != nil || !o.Got {
		t.Errorf("%s: get() raised %+v, want result %s (state %s)", what, o.Raised, want, o.State)
		return
	}
	if o.State != "SUCCESS" {
		t.Errorf("%s: state %s, want SUCCESS", what, o.State)
	}
	if !jsonEqual(o.Result, []byte(want)) {
		t.Errorf("%s: result %s, want %s", what, o.Result, want)
	}
	if o.DateDone == nil {
		t.Errorf("%s: date_done is missing", what)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// ---------------------------------------------------------------------------
// qagen call

type callResult struct {
	stdout, stderr string
	exitCode       int
	elapsed        time.Duration
}

// qagenCall runs `qagen call TASK --wait` with the env's broker and backend.
func (e *env) qagenCall(t testing.TB, task string, timeout time.Duration, flags ...string) callResult {
	t.Helper()
	// urfave/cli stops parsing flags at the first positional argument, so
	// the task name goes last.
	argv := append([]string{"call", "-Q", e.queue, "--wait", "--timeout", timeout.String(),
		"--broker", e.url, "--result-backend", e.url}, flags...)
	if e.prefix != "" {
		argv = append(argv, "--key-prefix", e.prefix)
	}
	argv = append(argv, task)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qagenBin, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := callResult{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.exitCode = ee.ExitCode()
	default:
		t.Fatalf("qagen %s: %v", strings.Join(argv, " "), err)
	}
	t.Logf("qagen call %s %s -> exit %d in %s\nstdout: %s\nstderr: %s", task, strings.Join(flags, " "),
		r.exitCode, r.elapsed.Round(time.Millisecond), strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
	return r
}

// ---------------------------------------------------------------------------
// Redis

func (e *env) do(t testing.TB, cmd string, args ...any) any {
	t.Helper()
	c := e.pool.Get()
	defer c.Close()
	v, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("redis %s %v: %v", cmd, args, err)
	}
	return v
}

// queueLists are the four priority lists of the env's queue (prefixed).
func (e *env) queueLists() []string {
	q := e.prefix + e.queue
	return []string{q, q + "\x06\x163", q + "\x06\x166", q + "\x06\x169"}
}

// brokerCounts returns the messages waiting in the queue and the entries of
// unacked and unacked_index (under the env's prefix).
func (e *env) brokerCounts(t testing.TB) (queued, unacked, index int) {
	t.Helper()
	for _, l := range e.queueLists() {
		n, _ := redis.Int(e.do(t, "LLEN", l), nil)
		queued += n
	}
	unacked, _ = redis.Int(e.do(t, "HLEN", e.prefix+"unacked"), nil)
	index, _ = redis.Int(e.do(t, "ZCARD", e.prefix+"unacked_index"), nil)
	return queued, unacked, index
}

// expectBrokerEmpty waits (a late ack lands just after the result) until
// the queue, unacked and unacked_index are empty.
func (e *env) expectBrokerEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		q, u, i := e.brokerCounts(t)
		if q == 0 && u == 0 && i == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("broker not empty after the run: %d queued, %d in %sunacked, %d in %sunacked_index",
				q, u, e.prefix, i, e.prefix)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectPendingBeforeETA checks the state a script read about 1 s after
// sending a task due etaAfter seconds after sending. On a machine so loaded
// that the read came too late to mean anything, it only logs.
func expectPendingBeforeETA(t testing.TB, o pyOutcome, etaAfter float64) {
	t.Helper()
	if late := o.StateCheckedAtTS - o.SentAtTS; late > etaAfter-0.3 {
		t.Logf("state read %.3f s after sending (%s); too late to check it is still PENDING", late, o.StateAt1s)
		return
	}
	if o.StateAt1s != "PENDING" {
		t.Errorf("state %.3f s after sending (ETA in %.0f s): %s, want PENDING", o.StateCheckedAtTS-o.SentAtTS, etaAfter, o.StateAt1s)
	}
}
