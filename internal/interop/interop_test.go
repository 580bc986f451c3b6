package interop

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Scenario 1: a Python Celery client sends tasks by name to a Go worker.
func TestPythonClientToGoWorker(t *testing.T) {
	e := setup(t, false)
	t.Parallel()
	w := e.startGoWorker(t, "py2go", 4, "--result-extended")

	t.Run("ArgsAndKwargs", func(t *testing.T) {
		t.Parallel()
		var out map[string]json.RawMessage
		e.runPy(t, 30*time.Second, &out, "args")
		for name, want := range map[string]string{"args": "5", "kwargs": "5", "mixed": "5", "float": "3.75"} {
			var o pyOutcome
			mustDecode(t, out[name], &o)
			expectSuccess(t, name, o, want)
		}
		var big pyOutcome
		mustDecode(t, out["bigint"], &big)
		var exp, got string
		mustDecode(t, out["bigint_expected"], &exp)
		mustDecode(t, out["bigint_got"], &got)
		if big.State != "SUCCESS" || got != exp {
			t.Errorf("qagen.add(2**70, 1): state %s, result %s, want %s", big.State, got, exp)
		}
	})

	for _, proto := range []int{1, 2} {
		t.Run(fmt.Sprintf("Protocol%d", proto), func(t *testing.T) {
			t.Parallel()
			var out struct {
				Probe struct {
					HeadersTask  *string `json:"headers_task"`
					BodyIsObject bool    `json:"body_is_object"`
				} `json:"probe"`
				Outcome pyOutcome `json:"outcome"`
			}
			e.runPy(t, 30*time.Second, &out, "protocol", fmt.Sprint(proto))
			// The probe shows Python really sent the protocol asked for.
			if proto == 1 && (out.Probe.HeadersTask != nil || !out.Probe.BodyIsObject) {
				t.Fatalf("probe: task_protocol=1 did not produce a v1 message: %+v", out.Probe)
			}
			if proto == 2 && (out.Probe.HeadersTask == nil || out.Probe.BodyIsObject) {
				t.Fatalf("probe: task_protocol=2 did not produce a v2 message: %+v", out.Probe)
			}
			expectSuccess(t, "qagen.add(20, 22)", out.Outcome, "42")
		})
	}

	t.Run("Compression", func(t *testing.T) {
		t.Parallel()
		type variant struct {
			HeaderCompression *string   `json:"header_compression"`
			Outcome           pyOutcome `json:"outcome"`
			Equal             bool      `json:"equal"`
		}
		var out map[string]json.RawMessage
		e.runPy(t, 40*time.Second, &out, "compression")
		for _, name := range []string{"per_call", "per_call_bzip2", "task_compression_setting", "result_compression_setting"} {
			var v variant
			mustDecode(t, out[name], &v)
			hc := "<none>"
			if v.HeaderCompression != nil {
				hc = *v.HeaderCompression
			}
			t.Logf("%s: headers.compression = %s", name, hc)
			switch name {
			case "per_call", "result_compression_setting":
				// result_compression compresses task messages in 5.2.6 (its bug).
				if hc != "application/x-gzip" {
					t.Errorf("%s: probe shows headers.compression %s, want application/x-gzip", name, hc)
				}
			case "per_call_bzip2":
				if hc != "application/x-bz2" {
					t.Errorf("%s: probe shows headers.compression %s, want application/x-bz2", name, hc)
				}
			}
			if v.Outcome.State != "SUCCESS" || !v.Equal {
				t.Errorf("%s: echo of a compressed message: state %s, equal %v, raised %+v", name, v.Outcome.State, v.Equal, v.Outcome.Raised)
			}
		}
	})

	t.Run("Countdown", func(t *testing.T) {
		t.Parallel()
		var o pyOutcome
		e.runPy(t, 30*time.Second, &o, "countdown")
		expectSuccess(t, "countdown=2", o, `"countdown"`)
		if o.StateAt1s != "PENDING" {
			t.Errorf("state 1 s after sending with countdown=2: %s, want PENDING", o.StateAt1s)
		}
		if o.DateDoneTS != nil {
			if d := *o.DateDoneTS - o.SentAtTS; d < 1.95 {
				t.Errorf("countdown=2 task finished %.3f s after it was sent, want >= 2 s", d)
			} else {
				t.Logf("countdown=2 task finished %.3f s after it was sent", d)
			}
		}
	})

	t.Run("ExpiresInThePast", func(t *testing.T) {
		t.Parallel()
		var out map[string]pyOutcome
		e.runPy(t, 30*time.Second, &out, "expires")
		for _, name := range []string{"minus_one", "past_datetime"} {
			o := out[name]
			if o.Raised == nil || o.Raised.Qualname != "celery.exceptions.TaskRevokedError" {
				t.Errorf("%s: get() raised %+v, want celery.exceptions.TaskRevokedError", name, o.Raised)
			} else if !strings.Contains(o.Raised.Message, "expired") {
				t.Errorf("%s: TaskRevokedError message %q, want 'expired'", name, o.Raised.Message)
			}
			if o.State != "REVOKED" {
				t.Errorf("%s: state %s, want REVOKED", name, o.State)
			}
		}
		for _, l := range w.messages("succeeded") {
			if l.ID == out["minus_one"].ID || l.ID == out["past_datetime"].ID {
				t.Errorf("expired task %s ran", l.ID)
			}
		}
	})

	t.Run("Failure", func(t *testing.T) {
		t.Parallel()
		var o pyOutcome
		e.runPy(t, 30*time.Second, &o, "fail")
		if o.Raised == nil || o.Raised.Qualname != "builtins.ValueError" || !o.RaisedIsValueError {
			t.Errorf("qagen.fail: get() raised %+v (isinstance ValueError: %v), want builtins.ValueError", o.Raised, o.RaisedIsValueError)
		} else if o.Raised.Message != "boom" {
			t.Errorf("qagen.fail: message %q, want 'boom'", o.Raised.Message)
		}
		if o.State != "FAILURE" {
			t.Errorf("qagen.fail: state %s, want FAILURE", o.State)
		}
		if o.Traceback == nil || strings.TrimSpace(*o.Traceback) == "" {
			t.Errorf("qagen.fail: traceback is empty")
		}
	})

	t.Run("FlakySucceedsAfterRetries", func(t *testing.T) {
		t.Parallel()
		var o pyOutcome
		e.runPy(t, 30*time.Second, &o, "flaky", "2")
		expectSuccess(t, "qagen.flaky(2)", o, `{"attempts": 3}`)
		// The worker runs with --result-extended: the stored meta says how
		// many retries the final run was.
		if o.Retries == nil || *o.Retries != 2 {
			t.Errorf("qagen.flaky(2): stored retries %v, want 2", o.Retries)
		}
		t.Logf("states published while waiting: %v", o.StatesSeen)
	})

	t.Run("FlakyExhaustsRetries", func(t *testing.T) {
		t.Parallel()
		var o pyOutcome
		e.runPy(t, 30*time.Second, &o, "flaky", "5")
		if o.State != "FAILURE" {
			t.Errorf("qagen.flaky(5): state %s, want FAILURE", o.State)
		}
		if o.Raised == nil || o.Raised.Qualname != "builtins.RuntimeError" {
			t.Errorf("qagen.flaky(5): get() raised %+v, want builtins.RuntimeError", o.Raised)
		}
		if o.Retries == nil || *o.Retries != 3 {
			t.Errorf("qagen.flaky(5): stored retries %v, want 3 (max_retries)", o.Retries)
		}
		t.Logf("states published while waiting: %v", o.StatesSeen)
	})

	t.Run("NonASCII", func(t *testing.T) {
		t.Parallel()
		var out map[string]struct {
			State  string          `json:"state"`
			Raised *pyExc          `json:"raised"`
			Equal  bool            `json:"equal"`
			Sent   json.RawMessage `json:"sent"`
			Got    json.RawMessage `json:"got"`
		}
		e.runPy(t, 30*time.Second, &out, "unicode")
		if len(out) == 0 {
			t.Fatal("no cases ran")
		}
		for name, c := range out {
			if c.State != "SUCCESS" || !c.Equal {
				t.Errorf("%s: state %s, raised %+v; sent %s, got %s", name, c.State, c.Raised, c.Sent, c.Got)
			}
		}
	})

	t.Run("UnknownTask", func(t *testing.T) {
		t.Parallel()
		var o pyOutcome
		e.runPy(t, 30*time.Second, &o, "unknown")
		if o.Raised == nil || o.Raised.Qualname != "celery.exceptions.NotRegistered" {
			t.Errorf("unknown task: get() raised %+v, want celery.exceptions.NotRegistered", o.Raised)
		}
		if o.State != "FAILURE" {
			t.Errorf("unknown task: state %s, want FAILURE", o.State)
		}
		if !o.DeadFound {
			t.Fatalf("no record with task_id %s in the qagen.dead list", o.ID)
		}
		if o.DeadMessageID != o.ID || o.DeadMessageTask != "qagen.does_not_exist" {
			t.Errorf("dead record's raw message: id %q task %q (%s), want id %s", o.DeadMessageID, o.DeadMessageTask, o.DeadMessageError, o.ID)
		}
		if q, _ := o.DeadRecord["queue"].(string); q != e.queue {
			t.Errorf("dead record queue %q, want %q (record %v)", q, e.queue, o.DeadRecord)
		}
	})

	t.Run("ResultByDirectGET", func(t *testing.T) {
		t.Parallel()
		var out struct {
			ID    string         `json:"id"`
			Found bool           `json:"found"`
			Meta  map[string]any `json:"meta"`
			Equal bool           `json:"equal"`
			TTL   json.Number    `json:"ttl"`
		}
		e.runPy(t, 30*time.Second, &out, "rawget")
		if !out.Found {
			t.Fatalf("celery-task-meta-%s never appeared", out.ID)
		}
		m := out.Meta
		if m["status"] != "SUCCESS" || !out.Equal || m["task_id"] != out.ID {
			t.Errorf("meta %v: want status SUCCESS, the echoed value and task_id %s", m, out.ID)
		}
		if dd, _ := m["date_done"].(string); dd == "" {
			t.Errorf("meta has no date_done: %v", m)
		}
		for _, k := range []string{"traceback", "children"} {
			if _, ok := m[k]; !ok {
				t.Errorf("meta has no %q: %v", k, m)
			}
		}
		if ttl, _ := out.TTL.Int64(); ttl <= 0 || ttl > 86400 {
			t.Errorf("result TTL %s, want result_expires (86400 s)", out.TTL)
		}
	})
}

// Scenario 1, priorities: on Redis, priority 0 is consumed before 9.
func TestPythonClientPriorityOrder(t *testing.T) {
	e := setup(t, false)
	t.Parallel()
	// A worker declares the queue, then stops, so the messages wait.
	first := e.startGoWorker(t, "prio-declare", 1)
	if err := first.stop(30 * time.Second); err != nil {
		t.Fatalf("first worker exited with %v", err)
	}
	const n = 4
	spec := fmt.Sprintf(`[{"task": "qagen.sleep", "args": [30], "count": %d, "options": {"priority": 9}},
		{"task": "qagen.sleep", "args": [30], "count": %d, "options": {"priority": 0}}]`, n, n)
	var sent struct {
		IDs [][]string `json:"ids"`
	}
	e.runPy(t, 20*time.Second, &sent, "send", spec)
	p9, p0 := sent.IDs[0], sent.IDs[1]
	lists := e.queueLists()
	if n0, _ := e.do(t, "LLEN", lists[0]).(int64); n0 != n {
		t.Errorf("LLEN %q = %d, want %d priority-0 messages", lists[0], n0, n)
	}
	if n9, _ := e.do(t, "LLEN", lists[3]).(int64); n9 != n {
		t.Errorf("LLEN %q = %d, want %d priority-9 messages", lists[3], n9, n)
	}

	e.startGoWorker(t, "prio", 1)
	var got struct {
		Results map[string]pyOutcome `json:"results"`
	}
	e.runPy(t, 30*time.Second, &got, append([]string{"collect"}, append(append([]string{}, p9...), p0...)...)...)
	done := func(ids []string) []float64 {
		var ts []float64
		for _, id := range ids {
			o := got.Results[id]
			if o.State != "SUCCESS" || o.DateDoneTS == nil {
				t.Fatalf("task %s: state %s, raised %+v", id, o.State, o.Raised)
			}
			ts = append(ts, *o.DateDoneTS)
		}
		return ts
	}
	t0, t9 := done(p0), done(p9)
	if last0, first9 := maxOf(t0), minOf(t9); last0 >= first9 {
		t.Errorf("a priority-9 task finished (%.6f) before the last priority-0 task (%.6f); on Redis 0 is consumed first", first9, last0)
	}
	if !sort.Float64sAreSorted(t0) || !sort.Float64sAreSorted(t9) {
		t.Errorf("tasks of one priority did not run in FIFO order: p0 %v, p9 %v", t0, t9)
	}
}

// Scenario 2: a kombu >= 5.3 (Celery 5.5) envelope with type markers,
// stamps and a +09:00 ETA, LPUSHed raw, runs on the Go worker at its ETA.
func TestKombu53EnvelopeOnGoWorker(t *testing.T) {
	e := setup(t, false)
	t.Parallel()
	w := e.startGoWorker(t, "kombu53", 2)
	var o pyOutcome
	e.runPy(t, 30*time.Second, &o, "kombu53", filepath.Join(fixtureDir, "celery-5.5.3", "broker", "prod_v2_args.json"))
	if o.Raised != nil || o.State != "SUCCESS" {
		t.Fatalf("hand-made 5.5 envelope: state %s, raised %+v", o.State, o.Raised)
	}
	if !o.Equal {
		t.Errorf("echo changed the argument with __type__ markers:\nsent %s\ngot  %s", o.Sent, o.Result)
	}
	if o.StateAt1s != "PENDING" {
		t.Errorf("state 1 s after the push (ETA +2 s): %s, want PENDING", o.StateAt1s)
	}
	if o.DateDoneTS == nil || *o.DateDoneTS < o.ETATS {
		t.Errorf("task finished at %v, before its eta %s (%.6f)", o.DateDone, o.ETA, o.ETATS)
	} else {
		t.Logf("eta %s, finished %.3f s after it", o.ETA, *o.DateDoneTS-o.ETATS)
	}
	if n := w.idsWith("succeeded")[o.ID]; n != 1 {
		t.Errorf("the Go worker logged %d successes of %s, want 1", n, o.ID)
	}
}

// Scenario 3: `qagen call` (Go producer) to a real Python Celery worker.
func TestGoProducerToPythonWorker(t *testing.T) {
	e := setup(t, false)
	t.Parallel()
	e.startPyWorker(t, "go2py")

	type printed struct {
		TaskID string          `json:"task_id"`
		Status string          `json:"status"`
		Result json.RawMessage `json:"result"`
	}
	cases := []struct {
		name  string
		flags []string
		min   time.Duration
	}{
		{"Plain", nil, 0},
		{"Protocol1", []string{"--protocol", "1"}, 0},
		{"Countdown1", []string{"--countdown", "1"}, time.Second},
		{"Priority9", []string{"--priority", "9"}, 0},
		{"Gzip", []string{"--compression", "gzip"}, 0},
		{"Protocol1Gzip", []string{"--protocol", "1", "--compression", "gzip"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := e.qagenCall(t, "qagen.add", 20*time.Second, append([]string{"--args", "[2,3]"}, c.flags...)...)
			if r.exitCode != 0 {
				t.Fatalf("qagen call exited %d: %s", r.exitCode, r.stderr)
			}
			var p printed
			if err := json.Unmarshal([]byte(lastLine([]byte(r.stdout))), &p); err != nil {
				t.Fatalf("qagen call printed %q: %v", r.stdout, err)
			}
			if p.Status != "SUCCESS" || string(p.Result) != "5" {
				t.Errorf("qagen call printed %+v, want SUCCESS 5", p)
			}
			if r.elapsed < c.min {
				t.Errorf("finished after %s, before the countdown of %s", r.elapsed, c.min)
			}
		})
	}
	t.Run("Failure", func(t *testing.T) {
		t.Parallel()
		r := e.qagenCall(t, "qagen.fail", 20*time.Second, "--args", `["boom"]`)
		if r.exitCode == 0 {
			t.Fatalf("qagen call of a failing task exited 0")
		}
		if !strings.Contains(r.stderr+r.stdout, "ValueError") || !strings.Contains(r.stderr+r.stdout, "boom") {
			t.Errorf("qagen call output does not show ValueError('boom'):\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, `"FAILURE"`) {
			t.Errorf("qagen call did not print the FAILURE meta: %s", r.stdout)
		}
	})
}

// Scenario 4: a Go and a Python worker consume one queue; every task runs
// exactly once and nothing is left behind.
func TestSharedQueueGoAndPython(t *testing.T) {
	e := setup(t, true)
	t.Parallel()
	gw := e.startGoWorker(t, "shared", 2)
	pw := e.startPyWorker(t, "shared")

	const n = 300
	var out struct {
		Results []struct {
			I      int             `json:"i"`
			ID     string          `json:"id"`
			State  string          `json:"state"`
			Result json.RawMessage `json:"result"`
			Raised *pyExc          `json:"raised"`
		} `json:"results"`
	}
	e.runPy(t, 60*time.Second, &out, "shared", fmt.Sprint(n), "10", "0.03")
	if len(out.Results) != n {
		t.Fatalf("%d results, want %d", len(out.Results), n)
	}
	ids := map[string]bool{}
	byGo, byPy := map[string]bool{}, map[string]bool{}
	for _, r := range out.Results {
		ids[r.ID] = true
		if r.State != "SUCCESS" {
			t.Errorf("task %d (%s): state %s, raised %+v", r.I, r.ID, r.State, r.Raised)
			continue
		}
		var py struct {
			Worker string `json:"worker"`
			X      int    `json:"x"`
		}
		switch {
		case string(r.Result) == fmt.Sprint(r.I):
			byGo[r.ID] = true
		case json.Unmarshal(r.Result, &py) == nil && py.Worker == "py" && py.X == r.I:
			byPy[r.ID] = true
		default:
			t.Errorf("task %d (%s): unexpected result %s", r.I, r.ID, r.Result)
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct task ids, want %d", len(ids), n)
	}
	t.Logf("Go worker ran %d tasks, Python worker %d", len(byGo), len(byPy))
	if len(byGo) == 0 || len(byPy) == 0 {
		t.Errorf("both workers should have done some work: Go %d, Python %d", len(byGo), len(byPy))
	}
	e.expectBrokerEmpty(t, 10*time.Second)

	// Exactly once, from the workers' own logs.
	goRuns := gw.idsWith("succeeded")
	pyRuns := pyIDsSucceeded(pw)
	for id := range ids {
		g, p := goRuns[id], pyRuns[id]
		if g+p != 1 {
			t.Errorf("task %s ran %d times on Go and %d on Python, want once in all", id, g, p)
		}
	}
	if len(goRuns)+len(pyRuns) != n {
		t.Errorf("workers logged %d+%d successes, want %d", len(goRuns), len(pyRuns), n)
	}
}

// Scenario 5: a warm shutdown of a late-acking Go worker loses nothing and
// runs nothing twice.
func TestWarmShutdownRestoresUnstarted(t *testing.T) {
	e := setup(t, true)
	t.Parallel()
	a := e.startGoWorker(t, "warm-a", 2, "--result-extended")
	const n = 20
	var sent struct {
		IDs [][]string `json:"ids"`
	}
	e.runPy(t, 20*time.Second, &sent, "send", fmt.Sprintf(`[{"task": "qagen.sleep", "args": [1500], "count": %d}]`, n))
	ids := sent.IDs[0]
	waitFor(t, 10*time.Second, "worker A to start 2 tasks", func() bool { return len(a.idsWith("received")) >= 2 })
	time.Sleep(time.Second)
	termAt := time.Now()
	if err := a.stop(30 * time.Second); err != nil {
		t.Errorf("worker A exited with %v after SIGTERM", err)
	}
	t.Logf("worker A stopped %s after SIGTERM", time.Since(termAt).Round(time.Millisecond))
	if d := time.Since(termAt); d > 5*time.Second {
		t.Errorf("warm shutdown took %s; the running tasks needed about 0.5 s", d)
	}
	// Nothing may be lost between the two workers.
	q, u, _ := e.brokerCounts(t)
	if u != 0 {
		t.Errorf("%d messages still in unacked after worker A's warm shutdown", u)
	}
	if q+len(a.idsWith("succeeded")) != n {
		t.Errorf("after worker A stopped: %d queued + %d done by A != %d sent", q, len(a.idsWith("succeeded")), n)
	}

	b := e.startGoWorker(t, "warm-b", 4, "--result-extended")
	var got struct {
		Results map[string]pyOutcome `json:"results"`
	}
	e.runPy(t, 60*time.Second, &got, append([]string{"collect"}, ids...)...)
	ranA, ranB := a.idsWith("succeeded"), b.idsWith("succeeded")
	for _, id := range ids {
		o := got.Results[id]
		if o.State != "SUCCESS" {
			t.Errorf("task %s: state %s, raised %+v", id, o.State, o.Raised)
		}
		if ranA[id]+ranB[id] != 1 {
			t.Errorf("task %s ran %d times on A and %d on B, want exactly once", id, ranA[id], ranB[id])
		}
		if o.Worker != nil && ((ranA[id] == 1 && *o.Worker != a.hostname) || (ranB[id] == 1 && *o.Worker != b.hostname)) {
			t.Errorf("task %s: stored worker %s disagrees with the logs", id, *o.Worker)
		}
	}
	if len(ranA) != 2 {
		t.Errorf("worker A finished %d tasks during its warm shutdown, want the 2 it was running", len(ranA))
	}
	for _, l := range a.messages("running tasks did not finish in time; restoring their messages") {
		t.Errorf("worker A gave up running tasks: %+v", l)
	}
	e.expectBrokerEmpty(t, 5*time.Second)
}

// Scenario 6a: messages of a SIGKILLed worker come back after the
// visibility timeout and run on another worker.
func TestCrashRestoreAfterVisibilityTimeout(t *testing.T) {
	e := setup(t, true)
	t.Parallel()
	a := e.startGoWorker(t, "crash-a", 2, "--visibility-timeout", "3")
	var sent struct {
		IDs [][]string `json:"ids"`
	}
	e.runPy(t, 20*time.Second, &sent, "send", `[{"task": "qagen.sleep", "args": [20000], "count": 2}]`)
	ids := sent.IDs[0]
	waitFor(t, 10*time.Second, "worker A to start both tasks", func() bool { return len(a.idsWith("received")) == 2 })
	time.Sleep(500 * time.Millisecond)
	a.kill()
	killedAt := time.Now()
	if _, u, _ := e.brokerCounts(t); u != 2 {
		t.Fatalf("%d entries in unacked after the crash, want the 2 running tasks", u)
	}

	// --restore-interval 1: kombu's ~100 s cadence would make this test
	// take minutes; the interval is not what is under test.
	b := e.startGoWorker(t, "crash-b", 2, "--visibility-timeout", "3", "--restore-interval", "1", "--result-extended")
	var restoredAt time.Time
	waitFor(t, 15*time.Second, "worker B to receive the restored tasks", func() bool {
		if len(b.idsWith("received")) == 2 {
			restoredAt = time.Now()
			return true
		}
		return false
	})
	d := restoredAt.Sub(killedAt)
	t.Logf("restored and received by B %s after the crash", d.Round(time.Millisecond))
	if d < 2*time.Second {
		t.Errorf("restored %s after the crash, before the 3 s visibility timeout could pass", d)
	}
	var got struct {
		Results map[string]pyOutcome `json:"results"`
	}
	e.runPy(t, 45*time.Second, &got, append([]string{"collect"}, ids...)...)
	ranB := b.idsWith("succeeded")
	for _, id := range ids {
		o := got.Results[id]
		if o.State != "SUCCESS" {
			t.Errorf("task %s: state %s, raised %+v", id, o.State, o.Raised)
		}
		if o.Worker == nil || *o.Worker != b.hostname {
			t.Errorf("task %s: stored worker %v, want %s", id, o.Worker, b.hostname)
		}
		if ranB[id] != 1 {
			t.Errorf("task %s ran %d times on B, want 1", id, ranB[id])
		}
	}
	e.expectBrokerEmpty(t, 5*time.Second)
}

// Scenario 6b: a live worker's lease keeps another worker's visibility
// pass from duplicating a task that runs longer than the timeout.
func TestLiveLeaseIsNotRestored(t *testing.T) {
	e := setup(t, true)
	t.Parallel()
	a := e.startGoWorker(t, "lease-a", 1, "--visibility-timeout", "2", "--result-extended")
	var sent struct {
		IDs [][]string `json:"ids"`
	}
	e.runPy(t, 20*time.Second, &sent, "send", `[{"task": "qagen.sleep", "args": [6000], "count": 1}]`)
	id := sent.IDs[0][0]
	waitFor(t, 10*time.Second, "worker A to start the task", func() bool { return a.idsWith("received")[id] == 1 })
	b := e.startGoWorker(t, "lease-b", 1, "--visibility-timeout", "2", "--restore-interval", "0.5")

	var got struct {
		Results map[string]pyOutcome `json:"results"`
	}
	e.runPy(t, 30*time.Second, &got, "collect", id)
	o := got.Results[id]
	if o.State != "SUCCESS" {
		t.Fatalf("task %s: state %s, raised %+v", id, o.State, o.Raised)
	}
	if o.Worker == nil || *o.Worker != a.hostname {
		t.Errorf("stored worker %v, want %s", o.Worker, a.hostname)
	}
	// Give B's restore passes a moment more after the task finished.
	time.Sleep(time.Second)
	if n := b.idsWith("received")[id]; n != 0 {
		t.Errorf("worker B received the task %d times while A was running it", n)
	}
	if n := a.idsWith("succeeded")[id]; n != 1 {
		t.Errorf("worker A ran the task %d times, want 1", n)
	}
	for _, l := range b.messages("restored unacknowledged messages older than the visibility timeout") {
		t.Errorf("worker B restored %d live messages", l.Count)
	}
	e.expectBrokerEmpty(t, 5*time.Second)
}

func mustDecode(t testing.TB, raw json.RawMessage, v any) {
	t.Helper()
	if len(raw) == 0 {
		t.Fatalf("missing field in the script output (want %T)", v)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", abbreviate(string(raw), 300), err)
	}
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func minOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}
