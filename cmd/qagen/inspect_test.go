package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/control"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/tasks"
	"github.com/qagen/qagen/worker"
)

func remoteApp(out *bytes.Buffer) *cli.App {
	return &cli.App{Name: "qagen", Writer: out, ErrWriter: out,
		Commands: []*cli.Command{inspectCommand(), controlCommand(), statusCommand()}}
}

// appMu serializes in-process runs: urfave/cli v2 sets up commands through
// package-level state (its help command), which parallel tests would race on.
var appMu sync.Mutex

// runRemote runs `qagen ARGS...` in process and returns its output, exit
// code and error.
func runRemote(args ...string) (string, int, error) {
	out, code, _, err := runRemoteTimed(args...)
	return out, code, err
}

// runRemoteTimed is runRemote that also says how long the command ran
// (not counting the wait for other tests' commands).
func runRemoteTimed(args ...string) (string, int, time.Duration, error) {
	appMu.Lock()
	defer appMu.Unlock()
	start := time.Now()
	var out bytes.Buffer
	app := remoteApp(&out)
	err := app.Run(interspersed(app, append([]string{"qagen"}, args...)))
	code := 0
	if err != nil {
		code = exitCode(err)
	}
	return out.String(), code, time.Since(start), err
}

func TestCompileRemoteArguments(t *testing.T) {
	for _, tc := range []struct {
		table map[string]panelCommand
		cmd   string
		args  []string
		want  string
	}{
		{inspectCommands, "ping", nil, `{}`},
		{inspectCommands, "registered", nil, `{"taskinfoitems":[]}`},
		{inspectCommands, "registered", []string{"rate_limit"}, `{"taskinfoitems":["rate_limit"]}`},
		{inspectCommands, "query_task", []string{"a", "b"}, `{"ids":["a","b"]}`},
		{inspectCommands, "conf", []string{"yes"}, `{"with_defaults":true}`},
		{inspectCommands, "conf", nil, `{}`},
		{controlCommands, "revoke", []string{"a", "b"}, `{"task_id":["a","b"]}`},
		{controlCommands, "terminate", []string{"SIGKILL", "a"}, `{"signal":"SIGKILL","task_id":["a"]}`},
		{controlCommands, "rate_limit", []string{"t.x", "5/m"}, `{"rate_limit":"5/m","task_name":"t.x"}`},
		// Celery's order: soft, then hard.
		{controlCommands, "time_limit", []string{"t.x", "10", "20.5"}, `{"hard":20.5,"soft":10,"task_name":"t.x"}`},
		{controlCommands, "time_limit", []string{"t.x", "10"}, `{"soft":10,"task_name":"t.x"}`},
		{controlCommands, "add_consumer", []string{"q", "ex", "topic", "rk"}, `{"exchange":"ex","exchange_type":"topic","queue":"q","routing_key":"rk"}`},
		{controlCommands, "cancel_consumer", []string{"q"}, `{"queue":"q"}`},
		{controlCommands, "pool_grow", nil, `{}`},
		{controlCommands, "pool_shrink", []string{"3"}, `{"n":3}`},
		{controlCommands, "autoscale", []string{"10", "2"}, `{"max":10,"min":2}`},
		{controlCommands, "enable_events", nil, `{}`},
	} {
		got, err := tc.table[tc.cmd].compile(tc.cmd, tc.args)
		if err != nil {
			t.Errorf("%s %v: %v", tc.cmd, tc.args, err)
			continue
		}
		b, _ := json.Marshal(got)
		if string(b) != tc.want {
			t.Errorf("%s %v = %s, want %s", tc.cmd, tc.args, b, tc.want)
		}
	}
	for _, tc := range []struct {
		table map[string]panelCommand
		cmd   string
		args  []string
	}{
		{inspectCommands, "ping", []string{"x"}},
		{inspectCommands, "query_task", nil},
		{inspectCommands, "conf", []string{"maybe"}},
		{controlCommands, "revoke", nil},
		{controlCommands, "rate_limit", []string{"t.x"}},
		{controlCommands, "time_limit", []string{"t.x", "ten"}},
		{controlCommands, "time_limit", []string{"t.x", "1", "2", "3"}},
		{controlCommands, "pool_grow", []string{"two"}},
		{controlCommands, "cancel_consumer", nil},
	} {
		if got, err := tc.table[tc.cmd].compile(tc.cmd, tc.args); err == nil {
			t.Errorf("%s %v accepted: %v", tc.cmd, tc.args, got)
		}
	}
}

// TestSayReplyLikeCelery pins the text output to what `celery inspect`
// prints (without colours).
func TestSayReplyLikeCelery(t *testing.T) {
	for _, tc := range []struct {
		result string
		body   bool
		want   string
	}{
		{`{"ok": "pong"}`, false, "->  w@h: OK\n"},
		{`{"ok": "pong"}`, true, "->  w@h: OK\n        pong\n"},
		{`{"error": "unknown task"}`, true, "->  w@h: ERROR\n        unknown task\n"},
		{`[]`, true, "->  w@h: OK\n    - empty -\n"},
		{`["qagen.add", "qagen.echo [rate_limit=5/s]"]`, true, "->  w@h: OK\n    * qagen.add\n    * qagen.echo [rate_limit=5/s]\n"},
		{`[{"name": "q", "exchange": {"name": "q"}}]`, true, "->  w@h: OK\n    * {\"name\":\"q\",\"exchange\":{\"name\":\"q\"}}\n"},
		{`{"clock": 12, "b": {"y": 1, "x": "<&>"}}`, true, "->  w@h: OK\n    {\n        \"b\": {\n            \"x\": \"<&>\",\n            \"y\": 1\n        },\n        \"clock\": 12\n    }\n"},
		{`{"ok": "line1\nline2"}`, true, "->  w@h: OK\n        line1\n        line2\n"},
		{`null`, true, "->  w@h: OK\n    None\n"},
		{`12345678901234567890`, true, "->  w@h: OK\n    12345678901234567890\n"},
	} {
		var b bytes.Buffer
		sayReply(&b, "w@h", json.RawMessage(tc.result), tc.body)
		if b.String() != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.result, b.String(), tc.want)
		}
	}
}

func TestInterspersedRemoteCommands(t *testing.T) {
	var out bytes.Buffer
	app := remoteApp(&out)
	for _, tc := range []struct{ in, want string }{
		{"qagen inspect ping -t 2", "qagen inspect -t 2 -- ping"},
		{"qagen inspect stats -d a@h,b@h --json --timeout 0.5", "qagen inspect -d a@h,b@h --json --timeout 0.5 -- stats"},
		{"qagen inspect query_task id1 -j id2", "qagen inspect -j -- query_task id1 id2"},
		{"qagen control revoke id1 --terminate --signal SIGKILL id2", "qagen control --terminate --signal SIGKILL -- revoke id1 id2"},
		{"qagen control time_limit qagen.add 10 20 -d w@h", "qagen control -d w@h -- time_limit qagen.add 10 20"},
		{"qagen status -t 0.5 --key-prefix p:", "qagen status -t 0.5 --key-prefix p: --"},
	} {
		if got := strings.Join(interspersed(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

// remoteEnv is a test's key prefix in database testenv.DBCommand with
// in-process Go workers on it.
type remoteEnv struct {
	t       *testing.T
	url     string
	prefix  string
	broker  *broker.Broker
	backend *backend.Backend
	client  *control.Client
}

func newRemoteEnv(t *testing.T) *remoteEnv {
	t.Helper()
	pool, _ := testenv.Redis(t, testenv.DBCommand)
	e := &remoteEnv{t: t, url: testenv.URL(testenv.DBCommand), prefix: testenv.Prefix(t)}
	e.broker = broker.New(pool, broker.Options{DB: testenv.DBCommand, KeyPrefix: e.prefix})
	e.backend = backend.New(pool, backend.Options{KeyPrefix: e.prefix})
	e.client = control.New(e.broker)
	return e
}

// flags are the connection flags of the env.
func (e *remoteEnv) flags() []string { return []string{"--broker", e.url, "--key-prefix", e.prefix} }

func (e *remoteEnv) run(args ...string) (string, int, error) {
	return runRemote(append(args, e.flags()...)...)
}

// mustRun runs a command that must succeed.
func (e *remoteEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, _, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("qagen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

type testWorker struct {
	name string
	done chan error
	stop func()
}

// startWorker runs an in-process Go worker and waits until it answers ping.
func (e *remoteEnv) startWorker(name, queue string, concurrency int) *testWorker {
	e.t.Helper()
	reg := worker.NewRegistry()
	tasks.RegisterDiagnostics(reg)
	var logs bytes.Buffer
	var logMu sync.Mutex
	w, err := worker.New(worker.Config{
		Queues: []string{queue}, Concurrency: concurrency, Hostname: name, AcksLate: true,
		RestoreInterval: -1, HeartbeatInterval: -1,
		Logger: zerolog.New(&lockedWriter{mu: &logMu, w: &logs}),
	}, reg, e.broker, e.backend)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tw := &testWorker{name: name, done: make(chan error, 1)}
	go func() { tw.done <- w.Run(ctx) }()
	var once sync.Once
	tw.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-tw.done:
				if err != nil {
					e.t.Errorf("%s: %v", name, err)
				}
			case <-time.After(30 * time.Second):
				e.t.Errorf("%s did not stop", name)
			}
		})
	}
	e.t.Cleanup(func() {
		tw.stop()
		if e.t.Failed() {
			logMu.Lock()
			e.t.Logf("log of %s:\n%s", name, logs.String())
			logMu.Unlock()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := e.client.Ping(context.Background(), control.Options{Destination: []string{name}, Timeout: 300 * time.Millisecond})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(got) == 1 {
			return tw
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s never answered ping", name)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("output lacks %q:\n%s", l, out)
		}
	}
}

// TestRemoteCommands runs inspect, control and status against two
// in-process Go workers.
func TestRemoteCommands(t *testing.T) {
	e := newRemoteEnv(t)
	t.Parallel()
	e.startWorker("c1@cli", "cq", 2)
	e.startWorker("c2@cli", "cq", 3)

	out := e.mustRun("status")
	wantLines(t, out, "->  c1@cli: OK\n", "->  c2@cli: OK\n", "\n\n2 nodes online.\n")
	if strings.Contains(out, "pong") {
		t.Errorf("status shows reply bodies:\n%s", out)
	}
	out = e.mustRun("status", "--json", "-t", "0.5")
	var st map[string]map[string]string
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 2 || st["c1@cli"]["ok"] != "pong" {
		t.Fatalf("status --json: %v\n%s", err, out)
	}

	// Flags after the command name.
	out = e.mustRun("inspect", "ping", "-t", "2", "-d", "c1@cli")
	if out != "->  c1@cli: OK\n        pong\n\n1 node online.\n" {
		t.Fatalf("inspect ping -d c1@cli:\n%q", out)
	}
	out = e.mustRun("inspect", "ping", "--pattern", "c2@*")
	if !strings.Contains(out, "c2@cli") || strings.Contains(out, "c1@cli") {
		t.Fatalf("inspect ping --pattern:\n%s", out)
	}

	out = e.mustRun("inspect", "stats", "--json")
	var stats map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	if total, _ := control.SumMaxConcurrency(stats); total != 5 {
		t.Fatalf("max-concurrency sum %d from\n%s", total, out)
	}
	out = e.mustRun("inspect", "stats", "-d", "c2@cli")
	wantLines(t, out, "->  c2@cli: OK\n    {\n", "        \"pool\": {\n", "            \"max-concurrency\": 3,\n")

	out = e.mustRun("inspect", "registered")
	wantLines(t, out, "->  c1@cli: OK\n", "    * qagen.add\n", "2 nodes online.")
	out = e.mustRun("inspect", "active")
	wantLines(t, out, "    - empty -\n")
	for _, cmd := range []string{"reserved", "scheduled", "revoked", "conf", "report", "clock", "active_queues"} {
		out = e.mustRun("inspect", cmd, "-d", "c1@cli")
		if !strings.HasPrefix(out, "->  c1@cli: OK\n") || !strings.HasSuffix(out, "\n1 node online.\n") {
			t.Errorf("inspect %s:\n%s", cmd, out)
		}
	}
	out = e.mustRun("inspect", "active_queues", "--json")
	if !strings.Contains(out, `"name":"cq"`) {
		t.Errorf("active_queues --json:\n%s", out)
	}
	out = e.mustRun("inspect", "conf", "--json", "-d", "c1@cli")
	if !strings.Contains(out, `"worker_concurrency":2`) {
		t.Errorf("conf:\n%s", out)
	}

	// A running task, seen by active and query_task.
	id := uuid.NewString()
	if _, err := producer.New(e.broker, e.backend).Send(context.Background(), producer.Task{Name: "qagen.sleep",
		Args: json.RawMessage(`[30000]`), Options: producer.Options{ID: id, Queue: "cq"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out = e.mustRun("inspect", "query_task", id, "--json", "-t", "0.3")
		if strings.Contains(out, `"active"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task never active:\n%s", out)
		}
	}
	out = e.mustRun("inspect", "active", "--args", `{"safe": true}`)
	wantLines(t, out, id, `"name":"qagen.sleep"`, `"args":"(30000,)"`) // safe: reprs

	// control: revoke --terminate stops it.
	out = e.mustRun("control", "revoke", id, "--terminate", "--signal", "SIGKILL")
	wantLines(t, out, "terminate: "+id, "terminate: tasks unknown")
	if strings.Contains(out, "online") {
		t.Errorf("control printed a node count:\n%s", out)
	}
	m := waitResult(t, e.backend, id)
	if m.Status != celery.StateRevoked {
		t.Fatalf("terminated task: %s %s", m.Status, m.Result)
	}
	// revoke then send: not run.
	revoked := uuid.NewString()
	out = e.mustRun("control", "revoke", revoked, "--json")
	var list []map[string]map[string]string
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
		t.Fatalf("control --json is Celery's list of replies: %v\n%s", err, out)
	}
	for _, r := range list {
		for node, res := range r {
			if !strings.Contains(res["ok"], revoked) {
				t.Errorf("%s: %v", node, res)
			}
		}
	}
	if _, err := producer.New(e.broker, e.backend).Send(context.Background(), producer.Task{Name: "qagen.add",
		Args: json.RawMessage(`[1, 2]`), Options: producer.Options{ID: revoked, Queue: "cq"}}); err != nil {
		t.Fatal(err)
	}
	if m := waitResult(t, e.backend, revoked); m.Status != celery.StateRevoked {
		t.Fatalf("revoked task ran: %s %s", m.Status, m.Result)
	}
	out = e.mustRun("inspect", "revoked", "-d", "c2@cli")
	wantLines(t, out, "    * "+revoked+"\n")

	out = e.mustRun("control", "rate_limit", "qagen.add", "10/s", "-d", "c1@cli")
	if out != "->  c1@cli: OK\n        new rate limit set successfully\n" {
		t.Errorf("rate_limit:\n%q", out)
	}
	wantLines(t, e.mustRun("inspect", "registered", "-d", "c1@cli"), "    * qagen.add [rate_limit=10/s]\n")
	out = e.mustRun("control", "rate_limit", "qagen.nope", "1/s", "-d", "c1@cli")
	if out != "->  c1@cli: ERROR\n        unknown task\n" {
		t.Errorf("rate_limit of an unknown task:\n%q", out)
	}
	wantLines(t, e.mustRun("control", "time_limit", "qagen.add", "10", "20"), "time limits set successfully")

	wantLines(t, e.mustRun("control", "pool_grow", "2", "-d", "c1@cli"), "pool will grow")
	wantLines(t, e.mustRun("inspect", "stats", "-d", "c1@cli"), "\"max-concurrency\": 4,")
	wantLines(t, e.mustRun("control", "pool_shrink", "-d", "c1@cli"), "pool will shrink")
	wantLines(t, e.mustRun("inspect", "stats", "-d", "c1@cli"), "\"max-concurrency\": 3,")

	wantLines(t, e.mustRun("control", "add_consumer", "extra", "-d", "c2@cli"), "add consumer extra")
	wantLines(t, e.mustRun("inspect", "active_queues", "-d", "c2@cli", "--json"), `"name":"extra"`)
	wantLines(t, e.mustRun("control", "cancel_consumer", "extra", "-d", "c2@cli"), "no longer consuming from extra")
	if out := e.mustRun("inspect", "active_queues", "-d", "c2@cli", "--json"); strings.Contains(out, `"extra"`) {
		t.Errorf("cancel_consumer did not cancel:\n%s", out)
	}
	wantLines(t, e.mustRun("control", "enable_events"), "task events enabled")
	wantLines(t, e.mustRun("inspect", "conf", "--json", "-d", "c1@cli"), `"worker_send_task_events":true`)
	wantLines(t, e.mustRun("control", "disable_events"), "task events disabled")

	out = e.mustRun("control", "heartbeat")
	if out != "-> heartbeat sent to every worker (workers send no reply)\n" {
		t.Errorf("heartbeat:\n%q", out)
	}
	if out := e.mustRun("control", "heartbeat", "--json"); out != "[]\n" {
		t.Errorf("heartbeat --json: %q", out)
	}

	// shutdown is a cast; the addressed worker stops, the other stays.
	e.startWorker("c3@cli", "other", 1)
	out = e.mustRun("control", "shutdown", "-d", "c3@cli")
	wantLines(t, out, "shutdown sent to c3@cli")
	deadline = time.Now().Add(20 * time.Second)
	for {
		out, code, _ := e.run("status", "-t", "0.5")
		if code == 0 && !strings.Contains(out, "c3@cli") && strings.Contains(out, "2 nodes online.") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c3 still online after shutdown:\n%s", out)
		}
	}

	// Usage errors.
	for _, args := range [][]string{
		{"inspect"}, {"inspect", "nope"}, {"inspect", "ping", "extra"}, {"control", "revoke"},
		{"control", "rate_limit", "qagen.add", "1/s", "--terminate"}, {"inspect", "ping", "--args", "[1]"},
		{"inspect", "ping", "-t", "0"}, {"status", "x"}, {"control", "time_limit", "qagen.add", "soon"},
	} {
		if out, code, err := e.run(args...); err == nil || code != 1 {
			t.Errorf("qagen %v: exit %d, %v\n%s", args, code, err, out)
		}
	}
}

func waitResult(t *testing.T, b *backend.Backend, id string) *celery.ResultMeta {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := b.Get(context.Background(), id)
		if err != nil && !errors.Is(err, backend.ErrNoResult) {
			t.Fatal(err)
		}
		if m != nil && m.Status.Ready() {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result for %s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRemoteNoReplies: nobody online is EX_UNAVAILABLE (69) with Celery's
// message, quickly; casts still succeed.
func TestRemoteNoReplies(t *testing.T) {
	e := newRemoteEnv(t)
	t.Parallel()
	for _, args := range [][]string{
		{"status", "-t", "0.2"},
		{"inspect", "ping", "-t", "0.2"},
		{"inspect", "stats", "-t", "0.2", "--json"},
		{"control", "revoke", "x", "-t", "0.2"},
		{"inspect", "ping", "-d", "ghost@cli", "-t", "0.2"},
	} {
		out, code, took, err := runRemoteTimed(append(args, e.flags()...)...)
		if code != exUnavailable || err == nil || err.Error() != "Error: No nodes replied within time constraint" || out != "" {
			t.Errorf("qagen %v: exit %d, err %v, output %q", args, code, err, out)
		}
		if took > 2*time.Second {
			t.Errorf("qagen %v took %s", args, took)
		}
	}
	if out, code, err := e.run("control", "shutdown", "-d", "ghost@cli"); code != 0 || err != nil {
		t.Errorf("cast: exit %d %v %s", code, err, out)
	}
}

// TestRemoteHidesPassword: broker passwords never reach the output or the
// error, whether the server is unreachable or refuses the password.
func TestRemoteHidesPassword(t *testing.T) {
	testenv.Redis(t, testenv.DBCommand)
	t.Parallel()
	const secret = "s3cr3t-pw"
	for _, url := range []string{
		"redis://:" + secret + "@127.0.0.1:1/15",
		"redis://user:" + secret + "@" + testenv.Addr() + "/15",
		"redis://" + testenv.Addr() + "/15?password=" + secret,
		"redis://:" + secret + "@" + testenv.Addr() + "/x",
	} {
		for _, args := range [][]string{{"status"}, {"inspect", "ping"}, {"control", "revoke", "x"}, {"control", "heartbeat"}} {
			out, code, err := runRemote(append(args, "-t", "0.2", "--broker", url)...)
			if err == nil || code == 0 {
				t.Errorf("%v with %s: no error", args, url)
				continue
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(out, secret) {
				t.Errorf("%v: the password leaked: %v %s", args, err, out)
			}
		}
	}
}

// qagenBinary builds the command into a temporary directory.
func qagenBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qagen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRemoteBinary runs the built command: the real exit status and
// stderr of `qagen status` with nobody online, and `inspect ping` with a
// worker, flags after the command name and the broker from
// CELERY_BROKER_URL.
func TestRemoteBinary(t *testing.T) {
	e := newRemoteEnv(t)
	t.Parallel()
	bin := qagenBinary(t)

	run := func(env []string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}
	stdout, stderr, code := run(nil, "status", "-t", "0.2", "--broker", e.url, "--key-prefix", e.prefix)
	if code != 69 || stdout != "" || strings.TrimSpace(stderr) != "qagen: Error: No nodes replied within time constraint" {
		t.Fatalf("status with nobody online: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}

	e.startWorker("b1@cli", "bq", 1)
	stdout, stderr, code = run([]string{"CELERY_BROKER_URL=" + e.url}, "inspect", "ping", "-t", "2", "--key-prefix", e.prefix)
	if code != 0 || stdout != "->  b1@cli: OK\n        pong\n\n1 node online.\n" {
		t.Fatalf("inspect ping: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	const secret = "hunter2-pw"
	stdout, stderr, code = run([]string{"CELERY_BROKER_URL=redis://:" + secret + "@127.0.0.1:1/0"}, "status")
	if code != 1 || strings.Contains(stdout+stderr, secret) || !strings.Contains(stderr, "redis://:***@127.0.0.1:1/0") {
		t.Fatalf("unreachable broker: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if out, _, _ := run(nil, "inspect", "--help"); !strings.Contains(out, "query_task") {
		t.Errorf("inspect --help lists no commands:\n%s", out)
	}
}
