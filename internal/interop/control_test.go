package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"

	"github.com/qagen/qagen/internal/testenv"
)

// Remote control (pidbox) and events: the real Python Celery 5.2.6 tools,
// `celery inspect`/`status`/`control`, app.control, app.events.Receiver and
// celery.events.state.State, against the Go worker. Every worker here has a
// key prefix of its own, which its pidbox and event channels carry too, so
// parallel tests never see each other's workers.

// ---------------------------------------------------------------------------
// Helpers

// celery runs `/usr/bin/python3 -m celery -b <broker> --config
// celeryconfig_interop ARGS...` (the config module gives the CLI the env's
// global_keyprefix) and returns its stdout and exit code.
func (e *env) celery(t testing.TB, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv := append([]string{"-m", "celery", "-b", e.url, "--config", "celeryconfig_interop"}, args...)
	cmd := exec.CommandContext(ctx, testenv.Python, argv...)
	cmd.Dir = pyDir
	cmd.Env = e.pyEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("celery %s timed out\nstderr:\n%s", strings.Join(args, " "), stderr.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("celery %s: %v", strings.Join(args, " "), err)
	}
	if testing.Verbose() || code != 0 {
		t.Logf("celery %s -> exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code,
			abbreviate(strings.TrimSpace(stdout.String()), 2000), abbreviate(strings.TrimSpace(stderr.String()), 2000))
	}
	return stdout.String(), code
}

// celeryJSON runs a `celery inspect|control ... -j` command, which must
// exit 0, decodes its JSON output into out and returns the raw output.
func (e *env) celeryJSON(t testing.TB, out any, args ...string) string {
	t.Helper()
	stdout, code := e.celery(t, append(args, "-j")...)
	if code != 0 {
		t.Fatalf("celery %s exited %d", strings.Join(args, " "), code)
	}
	if err := json.Unmarshal(bytes.TrimSpace([]byte(stdout)), out); err != nil {
		t.Fatalf("celery %s printed no JSON: %v\n%s", strings.Join(args, " "), err, stdout)
	}
	return stdout
}

// control runs testdata/python/control.py SCENARIO ARGS... and decodes its
// JSON line into out.
func (e *env) control(t testing.TB, timeout time.Duration, out any, args ...string) {
	t.Helper()
	e.runScript(t, "control.py", timeout, nil, out, args...)
}

// controlReplies is what app.control.<command>(reply=True) returns: a list
// of {nodename: reply}.
type controlReplies []map[string]json.RawMessage

// only returns the one reply of node, failing unless it is the only one.
func (r controlReplies) only(t testing.TB, node string) json.RawMessage {
	t.Helper()
	if len(r) != 1 || r[0][node] == nil || len(r[0]) != 1 {
		t.Fatalf("replies %s, want exactly one from %s", mustJSON(r), node)
	}
	return r[0][node]
}

// expectReply checks that node alone replied want (JSON).
func expectReply(t testing.TB, what string, r controlReplies, node, want string) {
	t.Helper()
	if len(r) != 1 || len(r[0]) != 1 || !jsonEqual(r[0][node], []byte(want)) {
		t.Errorf("%s: replies %s, want [{%q: %s}]", what, mustJSON(r), node, want)
	}
}

// revokedReply is a worker's reply to revoke(id).
func revokedReply(id string) string { return fmt.Sprintf(`{"ok": "tasks %s flagged as revoked"}`, id) }

// revoke revokes id on node with app.control.revoke and checks the reply.
func (e *env) revoke(t testing.TB, node, id string) {
	t.Helper()
	var rev struct {
		Replies controlReplies `json:"replies"`
	}
	e.control(t, 30*time.Second, &rev, "control", node, "revoke", mustJSON([]string{id}))
	expectReply(t, "revoke", rev.Replies, node, revokedReply(id))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// expectRevoked checks a task that ended REVOKED with TaskRevokedError(reason).
func expectRevoked(t testing.TB, what string, o pyOutcome, reason string) {
	t.Helper()
	if o.State != "REVOKED" || o.Raised == nil || o.Raised.Qualname != "celery.exceptions.TaskRevokedError" ||
		len(o.Raised.Args) != 1 || o.Raised.Args[0] != reason {
		t.Errorf("%s: state %s, raised %+v; want REVOKED, TaskRevokedError(%q)", what, o.State, o.Raised, reason)
	}
}

// passwordBrokerURL returns the env's broker URL with a password in it
// when Redis accepts one (a Redis 6+ default user without a password
// accepts AUTH default <anything>); otherwise the plain URL and "".
func (e *env) passwordBrokerURL(t testing.TB) (string, string) {
	t.Helper()
	secret := "pw-" + short() + short()
	c, err := redis.Dial("tcp", testenv.Addr(), redis.DialUsername("default"), redis.DialPassword(secret),
		redis.DialConnectTimeout(5*time.Second))
	if err != nil {
		t.Logf("Redis refuses AUTH default <password> (%v): the stats check runs without a password in the URL", err)
		return e.url, ""
	}
	c.Close()
	return strings.Replace(e.url, "redis://", "redis://default:"+secret+"@", 1), secret
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pyStream is a script whose stdout lines are read as they come: the
// events scenario prints progress lines the test acts on.
type pyStream struct {
	name   string
	cmd    *exec.Cmd
	lines  chan []byte
	stderr *lockedBuffer
	done   chan struct{}
}

func (e *env) startScript(t *testing.T, timeout time.Duration, script string, args ...string) *pyStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, testenv.Python, append([]string{script}, args...)...)
	cmd.Dir = pyDir
	cmd.Env = append(e.pyEnv(), fmt.Sprintf("QAGEN_IT_TIMEOUT=%g", (timeout-10*time.Second).Seconds()))
	s := &pyStream{name: script + " " + strings.Join(args, " "), cmd: cmd, lines: make(chan []byte, 64),
		stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", s.name, err)
	}
	// The scripts print a handful of lines, so the buffered channel never
	// blocks the reader; Wait comes only after everything was read.
	go func() {
		defer close(s.done)
		defer cancel()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<26)
		for sc.Scan() {
			s.lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(s.lines)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
		if t.Failed() {
			t.Logf("---- stderr of %s ----\n%s---- end ----", s.name, s.stderr.String())
		}
	})
	return s
}

// next returns the next line, a JSON object, failing on a script error, on
// end of output or after timeout.
func (s *pyStream) next(t testing.TB, timeout time.Duration) json.RawMessage {
	t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			<-s.done
			t.Fatalf("%s ended early (%v)\nstderr:\n%s", s.name, s.cmd.ProcessState, s.stderr.String())
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%s printed a line that is not a JSON object: %s", s.name, line)
		}
		if m["error"] != nil && m["traceback"] != nil {
			t.Fatalf("%s failed: %s\n%s", s.name, m["error"], m["traceback"])
		}
		if testing.Verbose() {
			t.Logf("%s -> %s", s.name, abbreviate(string(line), 1500))
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("%s printed nothing for %s\nstderr:\n%s", s.name, timeout, s.stderr.String())
	}
	return nil
}

// ---------------------------------------------------------------------------
// Scenario 1: `celery inspect ...` and `celery status` see the Go worker.

// requestInfo is Celery's Request.info() as inspect returns it.
type requestInfo struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Args         json.RawMessage `json:"args"`
	Kwargs       json.RawMessage `json:"kwargs"`
	Hostname     string          `json:"hostname"`
	TimeStart    *float64        `json:"time_start"`
	Acknowledged *bool           `json:"acknowledged"`
	WorkerPID    *int            `json:"worker_pid"`
	DeliveryInfo struct {
		Exchange    *string `json:"exchange"`
		RoutingKey  string  `json:"routing_key"`
		Priority    *int    `json:"priority"`
		Redelivered *bool   `json:"redelivered"`
	} `json:"delivery_info"`
}

func TestCeleryCLIInspectGoWorker(t *testing.T) {
	e := setup(t, true)
	t.Parallel()
	brokerURL, secret := e.passwordBrokerURL(t)
	const concurrency = 2
	w := e.startGoWorkerAs(t, "cli", goWorkerOpts{broker: brokerURL}, concurrency,
		"--acks-late", "--prefetch-multiplier", "2")
	host := w.hostname
	dest := []string{"-d", host, "-t", "5"}
	// cli runs `celery ARGS... -d <worker> -t 5 -j` (see celeryJSON).
	cli := func(t testing.TB, out any, args ...string) string {
		t.Helper()
		return e.celeryJSON(t, out, append(args, dest...)...)
	}

	// Tasks that finish, for the totals of stats.
	done := e.send(t, 30*time.Second, `[{"task": "qagen.add", "args": [1, 2], "count": 3},
		{"task": "qagen.echo", "args": ["x"], "count": 2}]`)
	for id, o := range e.collect(t, 30*time.Second, append(done.IDs[0], done.IDs[1]...)...) {
		if o.State != "SUCCESS" {
			t.Fatalf("task %s: %s", id, o.String())
		}
	}

	// Then state to inspect: two qagen.sleep running (acks_late: not
	// acknowledged), one echo waiting for a slot, one add held for its ETA.
	sentAt := float64(time.Now().UnixMicro()) / 1e6
	held := e.send(t, 30*time.Second, `[{"task": "qagen.sleep", "args": [30000], "kwargs": {"size": 3}},
		{"task": "qagen.sleep", "args": [30000]},
		{"task": "qagen.echo", "args": ["reserved"]},
		{"task": "qagen.add", "args": [7, 8], "options": {"countdown": 60}}]`)
	sleepA, sleepB, reserved, eta := held.IDs[0][0], held.IDs[1][0], held.IDs[2][0], held.IDs[3][0]
	etaWant := sentAt + 60
	waitFor(t, 10*time.Second, "both sleeps to run", func() bool {
		var active map[string][]requestInfo
		cli(t, &active, "inspect", "active")
		return len(active[host]) == 2
	})
	// Something for `inspect revoked` to list.
	revokedID := uuid.NewString()
	var rev controlReplies
	cli(t, &rev, "control", "revoke", revokedID)
	expectReply(t, "celery control revoke", rev, host, revokedReply(revokedID))

	noSecret := func(t *testing.T, what, out string) {
		t.Helper()
		if secret != "" && strings.Contains(out, secret) {
			t.Errorf("%s shows the broker password: %s", what, out)
		}
	}

	// The inspections run at once while the state holds.
	t.Run("Inspect", func(t *testing.T) {
		t.Run("ping", func(t *testing.T) {
			t.Parallel()
			var r map[string]json.RawMessage
			out := cli(t, &r, "inspect", "ping")
			noSecret(t, "ping", out)
			if len(r) != 1 || !jsonEqual(r[host], []byte(`{"ok": "pong"}`)) {
				t.Errorf("inspect ping: %s", out)
			}
		})
		t.Run("status", func(t *testing.T) {
			t.Parallel()
			out, code := e.celery(t, append([]string{"status"}, dest...)...)
			if code != 0 || !strings.Contains(out, "->  "+host+": OK") || !strings.Contains(out, "1 node online.") {
				t.Errorf("celery status: exit %d, output:\n%s", code, out)
			}
		})
		t.Run("stats", func(t *testing.T) {
			t.Parallel()
			var r map[string]struct {
				Total  map[string]int `json:"total"`
				PID    int            `json:"pid"`
				Clock  string         `json:"clock"`
				Uptime *int           `json:"uptime"`
				Pool   struct {
					MaxConcurrency int   `json:"max-concurrency"`
					Processes      []int `json:"processes"`
				} `json:"pool"`
				Broker struct {
					Hostname  string `json:"hostname"`
					Port      int    `json:"port"`
					Transport string `json:"transport"`
					UserID    any    `json:"userid"`
					Options   struct {
						GlobalKeyprefix string `json:"global_keyprefix"`
					} `json:"transport_options"`
				} `json:"broker"`
				PrefetchCount int                `json:"prefetch_count"`
				Rusage        map[string]float64 `json:"rusage"`
			}
			out := cli(t, &r, "inspect", "stats")
			noSecret(t, "stats", out)
			s, ok := r[host]
			if !ok || len(r) != 1 {
				t.Fatalf("inspect stats: %s", out)
			}
			if s.Pool.MaxConcurrency != concurrency {
				t.Errorf("pool.max-concurrency %d, want -c %d", s.Pool.MaxConcurrency, concurrency)
			}
			if want := map[string]int{"qagen.add": 3, "qagen.echo": 2}; !jsonEqual([]byte(mustJSON(s.Total)), []byte(mustJSON(want))) {
				t.Errorf("total %v, want %v", s.Total, want)
			}
			if s.PID != w.Cmd.Process.Pid {
				t.Errorf("pid %d, want the worker's %d", s.PID, w.Cmd.Process.Pid)
			}
			if s.Clock == "" || s.Uptime == nil || s.PrefetchCount != 2*concurrency || len(s.Rusage) == 0 {
				t.Errorf("clock %q, uptime %v, prefetch_count %d (want %d), rusage %v", s.Clock, s.Uptime,
					s.PrefetchCount, 2*concurrency, s.Rusage)
			}
			if s.Broker.Transport != "redis" || s.Broker.Port == 0 || s.Broker.Hostname == "" ||
				s.Broker.Options.GlobalKeyprefix != e.prefix {
				t.Errorf("broker %+v", s.Broker)
			}
		})
		t.Run("active", func(t *testing.T) {
			t.Parallel()
			var r map[string][]requestInfo
			out := cli(t, &r, "inspect", "active")
			noSecret(t, "active", out)
			byID := map[string]requestInfo{}
			for _, a := range r[host] {
				byID[a.ID] = a
			}
			if len(r[host]) != 2 || byID[sleepA].ID == "" || byID[sleepB].ID == "" {
				t.Fatalf("inspect active: %s; want %s and %s", out, sleepA, sleepB)
			}
			now := float64(time.Now().UnixMicro()) / 1e6
			for id, wantKwargs := range map[string]string{sleepA: `{"size": 3}`, sleepB: `{}`} {
				a := byID[id]
				if a.Name != "qagen.sleep" || a.Type != "qagen.sleep" || a.Hostname != host {
					t.Errorf("active %s: name %q type %q hostname %q", id, a.Name, a.Type, a.Hostname)
				}
				if !jsonEqual(a.Args, []byte(`[30000]`)) || !jsonEqual(a.Kwargs, []byte(wantKwargs)) {
					t.Errorf("active %s: args %s kwargs %s, want [30000] %s", id, a.Args, a.Kwargs, wantKwargs)
				}
				if a.Acknowledged == nil || *a.Acknowledged {
					t.Errorf("active %s under acks_late: acknowledged %v, want false", id, a.Acknowledged)
				}
				if a.TimeStart == nil || *a.TimeStart < sentAt-1 || *a.TimeStart > now {
					t.Errorf("active %s: time_start %v, want between %.3f and %.3f", id, a.TimeStart, sentAt, now)
				}
				if a.WorkerPID == nil || a.DeliveryInfo.RoutingKey != e.queue || a.DeliveryInfo.Redelivered == nil {
					t.Errorf("active %s: worker_pid %v, delivery_info %+v", id, a.WorkerPID, a.DeliveryInfo)
				}
			}
		})
		t.Run("active_safe", func(t *testing.T) {
			t.Parallel()
			// inspect().active(safe=True) (the CLI cannot pass safe): args and
			// kwargs as the reprs the client sent (argsrepr, kwargsrepr).
			var safe struct {
				Reply map[string][]requestInfo `json:"reply"`
			}
			e.control(t, 30*time.Second, &safe, "inspect", host, "active", "[true]")
			r, out := safe.Reply, mustJSON(safe.Reply)
			for _, a := range r[host] {
				if a.ID == sleepA && (!jsonEqual(a.Args, []byte(`"[30000]"`)) || !jsonEqual(a.Kwargs, []byte(`"{'size': 3}"`))) {
					t.Errorf("active safe=True: args %s kwargs %s, want \"[30000]\" \"{'size': 3}\"", a.Args, a.Kwargs)
				}
			}
			if len(r[host]) != 2 {
				t.Errorf("inspect().active(safe=True): %s", out)
			}
		})
		t.Run("reserved", func(t *testing.T) {
			t.Parallel()
			var r map[string][]requestInfo
			out := cli(t, &r, "inspect", "reserved")
			if len(r[host]) != 1 || r[host][0].ID != reserved || r[host][0].Name != "qagen.echo" ||
				!jsonEqual(r[host][0].Args, []byte(`["reserved"]`)) || r[host][0].TimeStart != nil {
				t.Errorf("inspect reserved: %s; want the echo %s only, not started", out, reserved)
			}
		})
		t.Run("scheduled", func(t *testing.T) {
			t.Parallel()
			var r map[string][]struct {
				ETA      string      `json:"eta"`
				Priority int         `json:"priority"`
				Request  requestInfo `json:"request"`
			}
			out := cli(t, &r, "inspect", "scheduled")
			if len(r[host]) != 1 {
				t.Fatalf("inspect scheduled: %s; want the ETA task %s", out, eta)
			}
			s := r[host][0]
			if s.Request.ID != eta || s.Request.Name != "qagen.add" || !jsonEqual(s.Request.Args, []byte(`[7, 8]`)) || s.Priority != 6 {
				t.Errorf("inspect scheduled: %s; want qagen.add %s with priority 6", out, eta)
			}
			at, err := time.Parse(time.RFC3339Nano, s.ETA)
			if err != nil {
				t.Fatalf("scheduled eta %q: %v", s.ETA, err)
			}
			if got := float64(at.UnixMicro()) / 1e6; math.Abs(got-etaWant) > 3 {
				t.Errorf("scheduled eta %s, want about %s", s.ETA, time.UnixMicro(int64(etaWant*1e6)).UTC().Format(time.RFC3339Nano))
			}
		})
		t.Run("registered", func(t *testing.T) {
			t.Parallel()
			var r map[string][]string
			out := cli(t, &r, "inspect", "registered")
			want := []string{"celery_tasks.generate_qa_for_batch_async", "celery_tasks.generate_qa_for_chunk_async",
				"celery_tasks.generate_qa_unified_async", "qagen.add", "qagen.echo", "qagen.fail", "qagen.flaky", "qagen.sleep"}
			if strings.Join(r[host], " ") != strings.Join(want, " ") {
				t.Errorf("inspect registered: %s; want %v", out, want)
			}
		})
		t.Run("active_queues", func(t *testing.T) {
			t.Parallel()
			var r map[string][]struct {
				Name       string `json:"name"`
				RoutingKey string `json:"routing_key"`
				Exchange   struct {
					Name string `json:"name"`
					Type string `json:"type"`
				} `json:"exchange"`
				Durable bool `json:"durable"`
			}
			out := cli(t, &r, "inspect", "active_queues")
			q := r[host]
			if len(q) != 1 || q[0].Name != e.queue || q[0].RoutingKey != e.queue || q[0].Exchange.Name != e.queue ||
				q[0].Exchange.Type != "direct" {
				t.Errorf("inspect active_queues: %s; want %s", out, e.queue)
			}
		})
		t.Run("revoked", func(t *testing.T) {
			t.Parallel()
			var r map[string][]string
			out := cli(t, &r, "inspect", "revoked")
			if len(r[host]) != 1 || r[host][0] != revokedID {
				t.Errorf("inspect revoked: %s; want [%s]", out, revokedID)
			}
		})
		t.Run("conf", func(t *testing.T) {
			t.Parallel()
			var r map[string]map[string]any
			out := cli(t, &r, "inspect", "conf")
			noSecret(t, "conf", out)
			c := r[host]
			if c["worker_concurrency"] != float64(concurrency) || c["task_acks_late"] != true || c["worker_hostname"] != host {
				t.Errorf("inspect conf: %s", out)
			}
			if secret != "" && !strings.Contains(fmt.Sprint(c["broker_url"]), "***") {
				t.Errorf("conf broker_url %v: want the password masked", c["broker_url"])
			}
		})
		t.Run("query_task", func(t *testing.T) {
			t.Parallel()
			var r map[string]map[string][]json.RawMessage
			out := cli(t, &r, "inspect", "query_task", sleepA, reserved, eta, uuid.NewString())
			q := r[host]
			for id, want := range map[string]string{sleepA: "active", reserved: "reserved"} {
				var state string
				var info requestInfo
				if len(q[id]) != 2 {
					t.Errorf("query_task %s: %s", id, out)
					continue
				}
				mustDecode(t, q[id][0], &state)
				mustDecode(t, q[id][1], &info)
				if state != want || info.ID != id {
					t.Errorf("query_task %s: state %q, info id %q; want %q", id, state, info.ID, want)
				}
			}
			// A 5.2.6 worker only knows an ETA task once it is due, so it is
			// absent there; the Go worker reports it as reserved.
			if len(q) > 3 {
				t.Errorf("query_task answered for an unknown id: %s", out)
			}
		})
	})

	// Clean up through the CLI too: terminate the sleeps and revoke the ETA task.
	var term controlReplies
	cli(t, &term, "control", "terminate", "SIGTERM", sleepA, sleepB)
	var ok struct {
		OK string `json:"ok"`
	}
	mustDecode(t, term.only(t, host), &ok)
	if ok.OK != "terminate: "+sleepA+", "+sleepB && ok.OK != "terminate: "+sleepB+", "+sleepA {
		t.Errorf("celery control terminate: %s", mustJSON(term))
	}
	cli(t, &rev, "control", "revoke", eta)
	after := e.collect(t, 30*time.Second, sleepA, sleepB, reserved)
	expectRevoked(t, "terminated sleep A", after[sleepA], "terminated")
	expectRevoked(t, "terminated sleep B", after[sleepB], "terminated")
	expectSuccess(t, "reserved echo", after[reserved], `"reserved"`)
}

// ---------------------------------------------------------------------------
// Scenario 2: a Go and a Python worker side by side: the Python producer's
// pre-flight check sums their pool sizes, a Python worker's mingle takes
// the Go worker's revoked ids, and both are addressed as kombu addresses
// nodes.

func TestGoAndPythonWorkersTogether(t *testing.T) {
	e, w := setupGoWorker(t, "mixed", 3)

	// Revoked on the Go worker before the Python worker exists.
	revokedID := uuid.NewString()
	e.revoke(t, w.hostname, revokedID)

	// A Python worker with mingle on (startPyWorker turns it off), on a
	// queue of its own.
	pyQueue := e.queue + "_py"
	pyName := "py_mixed_" + short()
	py := startProc(t, "py-worker-mixed", pyDir, e.pyEnv(), testenv.Python, "-m", "celery", "-A", "pytasks", "worker",
		"-Q", pyQueue, "-n", pyName+"@%h", "-l", "info", "--without-gossip", "--without-heartbeat",
		"-P", "threads", "-c", "2")
	py.WaitLog(t, " ready.", 30*time.Second)

	t.Run("StatsSum", func(t *testing.T) {
		var out struct {
			Nodes          []string       `json:"nodes"`
			MaxConcurrency map[string]int `json:"max_concurrency"`
			Sum            int            `json:"sum"`
		}
		e.control(t, 30*time.Second, &out, "stats_sum")
		var pyNode string
		for _, n := range out.Nodes {
			if strings.HasPrefix(n, pyName+"@") {
				pyNode = n
			}
		}
		if len(out.Nodes) != 2 || out.MaxConcurrency[w.hostname] != 3 || pyNode == "" || out.MaxConcurrency[pyNode] != 2 {
			t.Errorf("inspect(timeout=2.0).stats(): %s; want %s with 3 and %s@… with 2", mustJSON(out), w.hostname, pyName)
		}
		if out.Sum != 3+2 {
			t.Errorf("sum of pool.max-concurrency %d, want 5", out.Sum)
		}
	})

	t.Run("MingleTakesGoRevoked", func(t *testing.T) {
		if !strings.Contains(py.Log(), "mingle: sync with 1 nodes") {
			t.Errorf("the Python worker's mingle did not sync with the Go worker")
		}
		e.send(t, 30*time.Second, mustJSON([]map[string]any{{"task": "qagen.echo", "args": []string{"never"},
			"options": map[string]string{"task_id": revokedID, "queue": pyQueue}}}))
		expectRevoked(t, "task revoked on the Go worker, run on the Python worker", e.collect(t, 30*time.Second, revokedID)[revokedID], "revoked")
	})

	// kombu's matching, with the Python worker as the reference: pcre is
	// re.match (anchored at the start), glob is fnmatch ([!…] negates), a
	// falsy destination means everyone. Go node go_mixed_…@interop, Python
	// node py_mixed_…@<host>.
	t.Run("AddressingLikeKombu", func(t *testing.T) {
		cases := [][2]string{
			{"pcre", "go_"}, {"pcre", "py_"}, {"pcre", ".*@interop$"},
			{"glob", "go_*"}, {"glob", "*mixed_*"},
			{"pcre", "mixed_"}, {"pcre", "interop"}, {"glob", "[!g]*"},
		}
		var out struct {
			Nodes []string `json:"nodes"`
			Cases []struct {
				What string   `json:"what"`
				Got  []string `json:"got"`
				Want []string `json:"want"`
			} `json:"cases"`
		}
		e.control(t, 60*time.Second, &out, "addressing", mustJSON(cases))
		if len(out.Nodes) != 2 {
			t.Fatalf("ping answered by %v, want the Go and the Python worker", out.Nodes)
		}
		for _, c := range out.Cases {
			t.Run(c.What, func(t *testing.T) {
				if strings.Join(c.Got, " ") != strings.Join(c.Want, " ") {
					t.Errorf("broadcast('ping', %s): answered by %v; kombu's matching selects %v", c.What, c.Got, c.Want)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// Scenario 3: revoke.

func TestRevokeFromPython(t *testing.T) {
	t.Run("ETATaskNotYetDue", func(t *testing.T) {
		e, w := setupGoWorker(t, "reveta", 2)
		var out struct {
			ID              string          `json:"id"`
			Outcome         pyOutcome       `json:"outcome"`
			ETATS           float64         `json:"eta_ts"`
			Scheduled       json.RawMessage `json:"scheduled"`
			ScheduledETATS  *float64        `json:"scheduled_eta_ts"`
			Replies         controlReplies  `json:"replies"`
			RevokedAtTS     float64         `json:"revoked_at_ts"`
			StateAfter      string          `json:"state_after_revoke"`
			ListedAsRevoked bool            `json:"listed_as_revoked"`
		}
		e.control(t, 30*time.Second, &out, "revoke_eta", w.hostname, "3")
		if out.ScheduledETATS == nil {
			t.Fatalf("the task never showed in inspect().scheduled(): %s", out.Scheduled)
		}
		// Python parsed the eta the worker reported, and it is the one sent.
		if d := math.Abs(*out.ScheduledETATS - out.ETATS); d > 0.001 {
			t.Errorf("scheduled eta %.6f, sent %.6f", *out.ScheduledETATS, out.ETATS)
		}
		expectReply(t, "revoke", out.Replies, w.hostname, revokedReply(out.ID))
		if !out.ListedAsRevoked {
			t.Errorf("inspect().revoked() does not list %s", out.ID)
		}
		if out.RevokedAtTS < out.ETATS-0.3 && out.StateAfter != "PENDING" {
			t.Errorf("state right after the revoke (before the ETA): %s, want PENDING", out.StateAfter)
		}
		expectRevoked(t, "revoked ETA task", out.Outcome, "revoked")
		if dd := out.Outcome.DateDoneTS; dd == nil || *dd < out.ETATS-0.05 {
			t.Errorf("date_done %v: a revoked ETA task ends REVOKED when due (%.3f), as in Celery", dd, out.ETATS)
		}
		e.expectBrokerEmpty(t, 5*time.Second)
	})

	t.Run("BeforeSent", func(t *testing.T) {
		e, w := setupGoWorker(t, "revfirst", 2)
		var out struct {
			ID      string         `json:"id"`
			Replies controlReplies `json:"replies"`
			Outcome pyOutcome      `json:"outcome"`
		}
		e.control(t, 30*time.Second, &out, "revoke_first", w.hostname)
		expectReply(t, "revoke", out.Replies, w.hostname, revokedReply(out.ID))
		expectRevoked(t, "task revoked before it was sent", out.Outcome, "revoked")
		if n := len(w.idsWith("succeeded")); n != 0 {
			t.Errorf("the worker ran %d tasks", n)
		}
		e.expectBrokerEmpty(t, 5*time.Second)
	})

	t.Run("TerminateRunning", func(t *testing.T) {
		e, w := setupGoWorker(t, "term", 1, "--acks-late")
		var out struct {
			ID          string          `json:"id"`
			WasActive   bool            `json:"was_active"`
			Replies     controlReplies  `json:"replies"`
			Outcome     pyOutcome       `json:"outcome"`
			RevokedS    float64         `json:"revoked_after_s"`
			Next        pyOutcome       `json:"next"`
			NextS       float64         `json:"next_after_s"`
			ActiveAfter json.RawMessage `json:"active_after"`
		}
		e.control(t, 60*time.Second, &out, "terminate", w.hostname)
		if !out.WasActive {
			t.Fatalf("qagen.sleep(30000) never showed in inspect().active()")
		}
		expectReply(t, "revoke(terminate=True)", out.Replies, w.hostname, fmt.Sprintf(`{"ok": "terminate: %s"}`, out.ID))
		expectRevoked(t, "terminated qagen.sleep(30000)", out.Outcome, "terminated")
		if out.RevokedS > 3 {
			t.Errorf("REVOKED came %.2f s after the terminate, want at once", out.RevokedS)
		}
		// The -c 1 worker's only slot is free again.
		expectSuccess(t, "qagen.add after the terminate", out.Next, "3")
		if out.NextS > 5 {
			t.Errorf("the next task took %.2f s on the freed slot", out.NextS)
		}
		if !jsonEqual(out.ActiveAfter, []byte(`[]`)) {
			t.Errorf("inspect().active() after: %s, want []", out.ActiveAfter)
		}
		e.expectBrokerEmpty(t, 5*time.Second)
	})

	t.Run("StateDBSurvivesRestart", func(t *testing.T) {
		e := setup(t, true)
		t.Parallel()
		db := filepath.Join(t.TempDir(), "worker.state")
		host := newGoHostname("statedb")
		w1 := e.startGoWorkerAs(t, "statedb1", goWorkerOpts{hostname: host}, 1, "--statedb", db)
		id := uuid.NewString()
		e.revoke(t, host, id)
		if err := w1.Stop(30 * time.Second); err != nil {
			t.Fatalf("first worker: %v", err)
		}
		if data, err := os.ReadFile(db); err != nil || !strings.Contains(string(data), id) {
			t.Errorf("statedb %s after the first worker: %q, %v; want it to hold %s", db, data, err, id)
		}

		w2 := e.startGoWorkerAs(t, "statedb2", goWorkerOpts{hostname: host}, 1, "--statedb", db)
		var listed struct {
			Reply map[string][]string `json:"reply"`
		}
		e.control(t, 30*time.Second, &listed, "inspect", w2.hostname, "revoked")
		if !slices.Contains(listed.Reply[host], id) {
			t.Errorf("inspect().revoked() after the restart: %v; want %s", listed.Reply, id)
		}
		e.send(t, 30*time.Second, mustJSON([]map[string]any{
			{"task": "qagen.echo", "args": []string{"never"}, "options": map[string]string{"task_id": id}}}))
		expectRevoked(t, "task revoked before the restart", e.collect(t, 30*time.Second, id)[id], "revoked")
	})
}

// ---------------------------------------------------------------------------
// Scenario 4: the other control commands.

func TestControlCommandsFromPython(t *testing.T) {
	t.Run("RateLimit", func(t *testing.T) {
		e, w := setupGoWorker(t, "rate", 4)
		var out struct {
			Replies    controlReplies `json:"replies"`
			Unknown    controlReplies `json:"unknown_task"`
			Disable    controlReplies `json:"disable"`
			Registered []string       `json:"registered"`
			Results    []pyOutcome    `json:"results"`
			ElapsedS   float64        `json:"elapsed_s"`
			SpreadS    *float64       `json:"spread_s"`
		}
		e.control(t, 60*time.Second, &out, "rate_limit", w.hostname, "2/s", "10")
		expectReply(t, "rate_limit('qagen.add', '2/s')", out.Replies, w.hostname, `{"ok": "new rate limit set successfully"}`)
		expectReply(t, "rate_limit('qagen.nope', '1/s')", out.Unknown, w.hostname, `{"error": "unknown task"}`)
		expectReply(t, "rate_limit('qagen.add', '0')", out.Disable, w.hostname, `{"ok": "rate limit disabled successfully"}`)
		if !slices.Contains(out.Registered, "qagen.add [rate_limit=2/s]") {
			t.Errorf("registered while limited: %v; want \"qagen.add [rate_limit=2/s]\"", out.Registered)
		}
		for i, o := range out.Results {
			expectSuccess(t, fmt.Sprintf("qagen.add(%d, %d)", i, i), o, fmt.Sprint(2*i))
		}
		// 2/s: Celery (bucket of 1) needs 4.5 s for 10 tasks, qagen (bucket
		// of one second's worth) 4 s; a wide window for loaded machines.
		if out.SpreadS == nil || *out.SpreadS < 3.0 || *out.SpreadS > 7.5 {
			t.Errorf("10 tasks at 2/s: date_done spread %v s, want about 4-4.5 s", out.SpreadS)
		} else {
			t.Logf("10 tasks at 2/s: date_done spread %.2f s, %.2f s in all", *out.SpreadS, out.ElapsedS)
		}
	})

	// Celery 5.2.6 gives each rate-limited task a token bucket of capacity
	// 1 (Consumer.bucket_for_task: TokenBucket(limit, capacity=1)): no
	// burst, the first task runs at once and each next one 1/rate later.
	t.Run("RateLimitNoBurst", func(t *testing.T) {
		e, w := setupGoWorker(t, "burst", 4)
		var out struct {
			Replies controlReplies `json:"replies"`
			Results []pyOutcome    `json:"results"`
			SpreadS *float64       `json:"spread_s"`
		}
		e.control(t, 60*time.Second, &out, "rate_limit", w.hostname, "10/s", "10")
		expectReply(t, "rate_limit('qagen.add', '10/s')", out.Replies, w.hostname, `{"ok": "new rate limit set successfully"}`)
		for i, o := range out.Results {
			expectSuccess(t, fmt.Sprintf("qagen.add(%d, %d)", i, i), o, fmt.Sprint(2*i))
		}
		// A Celery worker: 0.9 s from the first to the tenth.
		if out.SpreadS == nil {
			t.Fatalf("no date_done: %+v", out.Results)
		}
		if *out.SpreadS < 0.7 {
			t.Errorf("10 tasks at 10/s: date_done spread %.3f s; a Celery worker needs 0.9 s (bucket capacity 1)", *out.SpreadS)
		}
	})

	t.Run("TimeLimit", func(t *testing.T) {
		e, w := setupGoWorker(t, "tlimit", 2)
		var out struct {
			Replies  controlReplies `json:"replies"`
			Unknown  controlReplies `json:"unknown_task"`
			Outcome  pyOutcome      `json:"outcome"`
			ElapsedS float64        `json:"elapsed_s"`
			Short    pyOutcome      `json:"short"`
		}
		e.control(t, 60*time.Second, &out, "time_limit", w.hostname)
		expectReply(t, "time_limit('qagen.sleep', soft=1, hard=2)", out.Replies, w.hostname, `{"ok": "time limits set successfully"}`)
		expectReply(t, "time_limit('qagen.nope', soft=1)", out.Unknown, w.hostname, `{"error": "unknown task"}`)
		o := out.Outcome
		if o.State != "FAILURE" || o.Raised == nil || o.Raised.Type != "SoftTimeLimitExceeded" {
			t.Errorf("qagen.sleep(5000) under soft=1: state %s, raised %+v; want FAILURE SoftTimeLimitExceeded", o.State, o.Raised)
		}
		if out.ElapsedS < 0.9 || out.ElapsedS > 4 {
			t.Errorf("qagen.sleep(5000) under soft=1 ended after %.2f s, want about 1 s", out.ElapsedS)
		}
		expectSuccess(t, "qagen.sleep(100)", out.Short, `{"slept_ms": 100, "pad": ""}`)
	})

	t.Run("PoolGrowShrink", func(t *testing.T) {
		e, w := setupGoWorker(t, "pool", 1)
		var out struct {
			Before      int            `json:"before"`
			Grow        controlReplies `json:"grow"`
			AfterGrow   int            `json:"after_grow"`
			GrownPeak   int            `json:"grown_peak"`
			Grown       []pyOutcome    `json:"grown"`
			Shrink      controlReplies `json:"shrink"`
			AfterShrink int            `json:"after_shrink"`
			ShrunkPeak  int            `json:"shrunk_peak"`
			Shrunk      []pyOutcome    `json:"shrunk"`
		}
		e.control(t, 60*time.Second, &out, "pool", w.hostname)
		expectReply(t, "pool_grow(2)", out.Grow, w.hostname, `{"ok": "pool will grow"}`)
		expectReply(t, "pool_shrink(2)", out.Shrink, w.hostname, `{"ok": "pool will shrink"}`)
		if out.Before != 1 || out.AfterGrow != 3 || out.AfterShrink != 1 {
			t.Errorf("stats pool.max-concurrency: %d, after pool_grow(2) %d, after pool_shrink(2) %d; want 1, 3, 1",
				out.Before, out.AfterGrow, out.AfterShrink)
		}
		if out.GrownPeak != 3 {
			t.Errorf("after pool_grow(2), %d of 3 qagen.sleep(2500) ran at once, want 3", out.GrownPeak)
		}
		if out.ShrunkPeak != 1 {
			t.Errorf("after pool_shrink(2), %d of 2 qagen.sleep(800) ran at once, want 1", out.ShrunkPeak)
		}
		for _, o := range append(out.Grown, out.Shrunk...) {
			if o.State != "SUCCESS" {
				t.Errorf("task %s: %s", o.ID, o.String())
			}
		}
		if len(out.Shrunk) == 2 && out.Shrunk[0].DateDoneTS != nil && out.Shrunk[1].DateDoneTS != nil {
			if gap := math.Abs(*out.Shrunk[1].DateDoneTS - *out.Shrunk[0].DateDoneTS); gap < 0.7 {
				t.Errorf("after pool_shrink two qagen.sleep(800) finished %.2f s apart, want one after the other", gap)
			}
		}
	})

	t.Run("AddCancelConsumer", func(t *testing.T) {
		e, w := setupGoWorker(t, "consumer", 2)
		other := e.queue + "_other"
		var out struct {
			Add             controlReplies `json:"add"`
			QueuesAdded     []string       `json:"queues_added"`
			OnOther         pyOutcome      `json:"on_other"`
			Cancel          controlReplies `json:"cancel"`
			QueuesCancelled []string       `json:"queues_cancelled"`
			LateState       string         `json:"late_state"`
			LateWaiting     int            `json:"late_waiting"`
			Main            pyOutcome      `json:"main"`
		}
		e.control(t, 60*time.Second, &out, "consumers", w.hostname, other)
		expectReply(t, "add_consumer", out.Add, w.hostname, fmt.Sprintf(`{"ok": "add consumer %s"}`, other))
		expectReply(t, "cancel_consumer", out.Cancel, w.hostname, fmt.Sprintf(`{"ok": "no longer consuming from %s"}`, other))
		want := []string{e.queue, other}
		sort.Strings(want)
		if strings.Join(out.QueuesAdded, ",") != strings.Join(want, ",") {
			t.Errorf("active_queues after add_consumer: %v, want %v", out.QueuesAdded, want)
		}
		if strings.Join(out.QueuesCancelled, ",") != e.queue {
			t.Errorf("active_queues after cancel_consumer: %v, want [%s]", out.QueuesCancelled, e.queue)
		}
		expectSuccess(t, "echo sent to the added queue", out.OnOther, `"other"`)
		if out.LateState != "PENDING" || out.LateWaiting != 1 {
			t.Errorf("a task sent to %s after cancel_consumer: state %s, %d waiting in the queue; want PENDING and 1",
				other, out.LateState, out.LateWaiting)
		}
		expectSuccess(t, "echo on the main queue", out.Main, `"main"`)
	})

	t.Run("EnableDisableEvents", func(t *testing.T) {
		e, w := setupGoWorker(t, "evtoggle", 2)
		var out struct {
			Before        pyOutcome      `json:"before"`
			BeforeEvents  []string       `json:"before_events"`
			Enable        controlReplies `json:"enable"`
			EnableAgain   controlReplies `json:"enable_again"`
			During        pyOutcome      `json:"during"`
			DuringEvents  []string       `json:"during_events"`
			Disable       controlReplies `json:"disable"`
			DisableAgain  controlReplies `json:"disable_again"`
			After         pyOutcome      `json:"after"`
			AfterEvents   []string       `json:"after_events"`
			ReceiverError *string        `json:"receiver_error"`
		}
		e.control(t, 60*time.Second, &out, "events_toggle", w.hostname)
		expectReply(t, "enable_events", out.Enable, w.hostname, `{"ok": "task events enabled"}`)
		expectReply(t, "enable_events again", out.EnableAgain, w.hostname, `{"ok": "task events already enabled"}`)
		expectReply(t, "disable_events", out.Disable, w.hostname, `{"ok": "task events disabled"}`)
		expectReply(t, "disable_events again", out.DisableAgain, w.hostname, `{"ok": "task events already disabled"}`)
		if len(out.BeforeEvents) != 0 || len(out.AfterEvents) != 0 {
			t.Errorf("task events while disabled: before %v, after %v", out.BeforeEvents, out.AfterEvents)
		}
		if want := "task-received task-started task-succeeded"; strings.Join(out.DuringEvents, " ") != want {
			t.Errorf("task events while enabled: %v, want %s", out.DuringEvents, want)
		}
		for _, o := range []pyOutcome{out.Before, out.During, out.After} {
			if o.State != "SUCCESS" {
				t.Errorf("task %s: %s", o.ID, o.String())
			}
		}
		if out.ReceiverError != nil {
			t.Errorf("event receiver: %s", *out.ReceiverError)
		}
	})

	t.Run("UnknownCommand", func(t *testing.T) {
		e, w := setupGoWorker(t, "unknown", 1)
		var out struct {
			Replies controlReplies `json:"replies"`
		}
		e.control(t, 30*time.Second, &out, "control", w.hostname, "broadcast", `["no_such_cmd"]`)
		expectReply(t, "broadcast('no_such_cmd', reply=True)", out.Replies, w.hostname, `{"error": "KeyError('no_such_cmd')"}`)
	})
}

// ---------------------------------------------------------------------------
// Scenario 5: events, as app.events.Receiver and celery.events.state see them.

// pyEvent is one event as a Python Receiver handed it over.
type pyEvent struct {
	Type          string    `json:"type"`
	Hostname      string    `json:"hostname"`
	PID           int       `json:"pid"`
	Clock         int       `json:"clock"`
	Timestamp     float64   `json:"timestamp"`
	LocalReceived float64   `json:"local_received"`
	UTCOffset     *int      `json:"utcoffset"`
	Freq          *float64  `json:"freq"`
	Active        *int      `json:"active"`
	Processed     *int      `json:"processed"`
	Loadavg       []float64 `json:"loadavg"`
	SwIdent       string    `json:"sw_ident"`
	SwVer         string    `json:"sw_ver"`
	SwSys         string    `json:"sw_sys"`
	UUID          string    `json:"uuid"`
	Name          string    `json:"name"`
	Args          *string   `json:"args"`
	Kwargs        *string   `json:"kwargs"`
	Retries       *int      `json:"retries"`
	RootID        *string   `json:"root_id"`
	Result        *string   `json:"result"`
	Runtime       *float64  `json:"runtime"`
	Exception     *string   `json:"exception"`
	Traceback     *string   `json:"traceback"`
}

// eventsRun is the final line of `control.py events`.
type eventsRun struct {
	OnlineSeen        bool                 `json:"online_seen"`
	AliveAfterOnline  bool                 `json:"alive_after_online"`
	Outcomes          map[string]pyOutcome `json:"outcomes"`
	HeartbeatAfter    *pyEvent             `json:"heartbeat_after_tasks"`
	HeartbeatOnline   *pyEvent             `json:"heartbeat_after_online"`
	TaskStates        map[string]*string   `json:"task_states"`
	AliveBeforeStop   bool                 `json:"alive_before_stop"`
	AliveWorkers      []string             `json:"alive_workers"`
	ShutdownReplies   json.RawMessage      `json:"shutdown_replies"`
	OfflineSeen       bool                 `json:"offline_seen"`
	AliveAfterOffline bool                 `json:"alive_after_offline"`
	IDs               map[string]string    `json:"ids"`
	Events            []pyEvent            `json:"events"`
	ReceiverError     *string              `json:"receiver_error"`
}

// checkWorkerEvent checks the fields of worker-online/heartbeat/offline.
func checkWorkerEvent(t *testing.T, ev pyEvent, pid int, freq float64) {
	t.Helper()
	if ev.Freq == nil || *ev.Freq != freq || ev.Active == nil || ev.Processed == nil || ev.SwIdent != "qagen" ||
		ev.SwSys == "" || ev.SwVer == "" || len(ev.Loadavg) != 3 {
		t.Errorf("%s: %s; want freq %g, active, processed, loadavg, sw_ident qagen", ev.Type, mustJSON(ev), freq)
	}
	if ev.PID != pid || ev.Clock <= 0 || ev.Timestamp <= 0 || ev.UTCOffset == nil {
		t.Errorf("%s: pid %d (want %d), clock %d, timestamp %f, utcoffset %v", ev.Type, ev.PID, pid, ev.Clock, ev.Timestamp, ev.UTCOffset)
	}
	// The receiver corrects the timestamp by utcoffset: whole hours off
	// would mean a wrong sign or unit.
	if d := math.Abs(ev.LocalReceived - ev.Timestamp); d > 60 {
		t.Errorf("%s: timestamp %.3f is %.0f s from its receipt", ev.Type, ev.Timestamp, d)
	}
}

func TestEventsSeenByPython(t *testing.T) {
	e := setup(t, true)
	t.Parallel()
	host := newGoHostname("events")
	s := e.startScript(t, 90*time.Second, "control.py", "events", host, "sigterm")
	s.next(t, 30*time.Second) // {"ready": true}: the receiver listens
	w := e.startGoWorkerAs(t, "events", goWorkerOpts{hostname: host}, 2, "-E")
	pid := w.Cmd.Process.Pid
	s.next(t, 60*time.Second) // {"stop": true}
	if err := w.Stop(30 * time.Second); err != nil {
		t.Errorf("worker exit after SIGTERM: %v, want status 0", err)
	}
	var out eventsRun
	mustDecode(t, s.next(t, 40*time.Second), &out)

	if out.ReceiverError != nil {
		t.Errorf("event receiver: %s", *out.ReceiverError)
	}
	if !out.OnlineSeen || !out.AliveAfterOnline {
		t.Errorf("worker-online seen %v; State alive after it %v", out.OnlineSeen, out.AliveAfterOnline)
	}
	if !out.AliveBeforeStop || !slices.Contains(out.AliveWorkers, host) {
		t.Errorf("State during the run: alive %v, alive_workers %v; want %s alive", out.AliveBeforeStop, out.AliveWorkers, host)
	}
	if !out.OfflineSeen || out.AliveAfterOffline {
		t.Errorf("worker-offline seen %v; State alive after it %v (want false)", out.OfflineSeen, out.AliveAfterOffline)
	}

	byType := map[string][]pyEvent{}
	clocks := map[int]bool{}
	for _, ev := range out.Events {
		byType[ev.Type] = append(byType[ev.Type], ev)
		if clocks[ev.Clock] {
			t.Errorf("clock %d used twice (%s)", ev.Clock, ev.Type)
		}
		clocks[ev.Clock] = true
		if ev.PID != pid || ev.UTCOffset == nil || ev.Timestamp <= 0 {
			t.Errorf("%s: pid %d (want %d), utcoffset %v, timestamp %f", ev.Type, ev.PID, pid, ev.UTCOffset, ev.Timestamp)
		}
	}
	if n := len(out.Events); n == 0 || out.Events[0].Type != "worker-online" || out.Events[n-1].Type != "worker-offline" {
		t.Errorf("events do not run from worker-online to worker-offline: %s", abbreviate(mustJSON(out.Events), 3000))
	}
	for _, typ := range []string{"worker-online", "worker-heartbeat", "worker-offline"} {
		if len(byType[typ]) == 0 {
			t.Errorf("no %s event", typ)
		}
		for _, ev := range byType[typ] {
			checkWorkerEvent(t, ev, pid, 2.0)
		}
	}
	if on := byType["worker-online"]; len(on) == 1 && (*on[0].Processed != 0 || *on[0].Active != 0) {
		t.Errorf("worker-online: processed %d active %d, want 0 0", *on[0].Processed, *on[0].Active)
	}
	if hb := out.HeartbeatAfter; hb == nil {
		t.Errorf("no worker-heartbeat after the tasks")
	} else if hb.Processed == nil || *hb.Processed < 3 || hb.Active == nil || *hb.Active != 0 {
		t.Errorf("worker-heartbeat after 3 tasks: processed %v active %v; want >= 3 and 0", hb.Processed, hb.Active)
	}

	// Task life cycles.
	tasks := map[string][]pyEvent{}
	for _, ev := range out.Events {
		if strings.HasPrefix(ev.Type, "task-") {
			tasks[ev.UUID] = append(tasks[ev.UUID], ev)
		}
	}
	typesOf := func(id string) string {
		var ts []string
		for _, ev := range tasks[id] {
			ts = append(ts, ev.Type)
		}
		return strings.Join(ts, " ")
	}
	find := func(id, typ string) pyEvent {
		for _, ev := range tasks[id] {
			if ev.Type == typ {
				return ev
			}
		}
		t.Errorf("task %s: no %s event (has %s)", id, typ, typesOf(id))
		return pyEvent{}
	}
	add, fail, flaky := out.IDs["add"], out.IDs["fail"], out.IDs["flaky"]
	if got := typesOf(add); got != "task-received task-started task-succeeded" {
		t.Errorf("qagen.add events: %s", got)
	}
	rcv := find(add, "task-received")
	if rcv.Name != "qagen.add" || deref(rcv.Args) != "[2]" || deref(rcv.Kwargs) != "{'y': 3}" || rcv.Retries == nil ||
		*rcv.Retries != 0 || deref(rcv.RootID) != add {
		t.Errorf("task-received: %s; want name qagen.add, args \"[2]\", kwargs \"{'y': 3}\" (the client's reprs)", mustJSON(rcv))
	}
	if ok := find(add, "task-succeeded"); deref(ok.Result) != "5" || ok.Runtime == nil || *ok.Runtime < 0 || *ok.Runtime > 5 {
		t.Errorf("task-succeeded: result %s runtime %v; want \"5\" and a runtime", deref(ok.Result), ok.Runtime)
	}
	if got := typesOf(fail); got != "task-received task-started task-failed" {
		t.Errorf("qagen.fail events: %s", got)
	}
	if f := find(fail, "task-failed"); deref(f.Exception) != "ValueError('boom')" || !strings.Contains(deref(f.Traceback), "ValueError: boom") {
		t.Errorf("task-failed: exception %s, traceback %q", deref(f.Exception), deref(f.Traceback))
	}
	if got := typesOf(flaky); got != "task-received task-started task-retried task-received task-started task-succeeded" {
		t.Errorf("qagen.flaky(1) events: %s", got)
	}
	if r := find(flaky, "task-retried"); deref(r.Exception) != "RuntimeError('flaky failure')" || r.Traceback == nil {
		t.Errorf("task-retried: exception %s, traceback %v", deref(r.Exception), r.Traceback)
	}
	if ok := find(flaky, "task-succeeded"); deref(ok.Result) != "{'attempts': 2}" {
		t.Errorf("qagen.flaky task-succeeded result %s", deref(ok.Result))
	}
	for k, want := range map[string]string{"add": "SUCCESS", "fail": "FAILURE", "flaky": "SUCCESS"} {
		if got := out.TaskStates[k]; got == nil || *got != want {
			t.Errorf("State.tasks[%s].state = %v, want %s", k, got, want)
		}
	}
	expectSuccess(t, "qagen.add(2, y=3)", out.Outcomes["add"], "5")
	expectSuccess(t, "qagen.flaky(1)", out.Outcomes["flaky"], `{"attempts": 2}`)
}

// The shutdown command stops the Go worker warmly: it exits 0 and says
// goodbye with worker-offline.
func TestShutdownCommandFromPython(t *testing.T) {
	e := setup(t, true)
	t.Parallel()
	host := newGoHostname("shutdown")
	s := e.startScript(t, 60*time.Second, "control.py", "events", host, "shutdown")
	s.next(t, 30*time.Second) // {"ready": true}
	w := e.startGoWorkerAs(t, "shutdown", goWorkerOpts{hostname: host}, 2, "--heartbeat-interval", "0.5")
	var out eventsRun
	mustDecode(t, s.next(t, 40*time.Second), &out)
	if err := w.Wait(20 * time.Second); err != nil {
		t.Errorf("worker exit after broadcast('shutdown'): %v, want status 0", err)
	}
	if !strings.Contains(w.Log(), "shutdown requested by remote control") || !strings.Contains(w.Log(), `"worker stopped"`) {
		t.Errorf("the log does not show a remote shutdown followed by a warm stop")
	}
	if !jsonEqual(out.ShutdownReplies, []byte("null")) {
		t.Errorf("broadcast('shutdown') without reply returned %s", out.ShutdownReplies)
	}
	if !out.OnlineSeen || out.HeartbeatOnline == nil || !out.AliveBeforeStop {
		t.Errorf("before the shutdown: online %v, heartbeat %v, alive %v", out.OnlineSeen, out.HeartbeatOnline != nil, out.AliveBeforeStop)
	} else {
		checkWorkerEvent(t, *out.HeartbeatOnline, w.Cmd.Process.Pid, 0.5)
	}
	if !out.OfflineSeen || out.AliveAfterOffline {
		t.Errorf("worker-offline seen %v; State alive after it %v (want false)", out.OfflineSeen, out.AliveAfterOffline)
	}
}
