package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/worker"
)

func TestSuccessStoresResultAndAcks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	id := h.send("qagen.add", []any{2, 3}, producer.Options{})
	m := h.result(id)
	if m.Status != celery.StateSuccess || string(m.Result) != "5" || m.TaskID != id || m.DateDone == nil {
		t.Fatalf("meta %+v result %s", m, m.Result)
	}
	h.eventually("ack", func() bool { return h.unacked() == 0 })
	if n := h.queueLen(); n != 0 {
		t.Fatalf("queue length %d", n)
	}
	// TTL of the result key is the default one day.
	ttl, _ := redis.Int(h.conn().Do("TTL", h.backend.Key(id)))
	if ttl < 86000 || ttl > 86400 {
		t.Fatalf("result TTL %d", ttl)
	}
}

func TestKwargsAndTypeErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	ctx := context.Background()
	ids, err := h.client.Send(ctx,
		producer.Task{Name: "qagen.add", Args: json.RawMessage(`[1]`), Kwargs: json.RawMessage(`{"y": 41}`), Options: producer.Options{Queue: h.queue}},
		producer.Task{Name: "qagen.add", Args: json.RawMessage(`["a", 2]`), Options: producer.Options{Queue: h.queue}},
		producer.Task{Name: "qagen.add", Args: json.RawMessage(`[1]`), Options: producer.Options{Queue: h.queue}},
		producer.Task{Name: "qagen.add", Args: json.RawMessage(`[1, 2]`), Kwargs: json.RawMessage(`{"z": 1}`), Options: producer.Options{Queue: h.queue}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if m := h.result(ids[0]); m.Status != celery.StateSuccess || string(m.Result) != "42" {
		t.Fatalf("kwargs: %s %s", m.Status, m.Result)
	}
	for i, want := range map[int]string{1: "wrong type", 2: "missing 1 required", 3: "unexpected keyword argument 'z'"} {
		m := h.result(ids[i])
		exc := h.exception(m)
		if m.Status != celery.StateFailure || exc.Type != "TypeError" || exc.Module != "builtins" || !strings.Contains(exc.Message(), want) {
			t.Errorf("task %d: %s %s", i, m.Status, m.Result)
		}
	}
	// Argument errors keep the raw message in the dead-letter list.
	h.eventually("dead letters", func() bool {
		dead, _ := h.broker.DeadLetters(ctx, 10)
		return len(dead) == 3
	})
	dead, _ := h.broker.DeadLetters(ctx, 10)
	for _, d := range dead {
		if d.TaskID == "" || d.Message == "" || d.Reason != "arguments do not match the task" {
			t.Errorf("dead record %+v", d)
		}
	}
}

func TestFailureKeepsWorkerRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	worker.Register(h.reg, "test.panic", func(context.Context, struct{}) (int, error) { panic("kaboom") })
	h.start()
	failID := h.send("qagen.fail", []any{"boom"}, producer.Options{})
	panicID := h.send("test.panic", nil, producer.Options{})
	okID := h.send("qagen.echo", []any{"still alive"}, producer.Options{})

	m := h.result(failID)
	exc := h.exception(m)
	if m.Status != celery.StateFailure || exc.Type != "ValueError" || exc.Module != "builtins" || exc.Message() != "boom" {
		t.Fatalf("fail: %s %s", m.Status, m.Result)
	}
	if !strings.Contains(m.Traceback, "ValueError: boom") {
		t.Fatalf("traceback %q", m.Traceback)
	}
	m = h.result(panicID)
	exc = h.exception(m)
	if m.Status != celery.StateFailure || exc.Type != "RuntimeError" || !strings.Contains(exc.Message(), "kaboom") {
		t.Fatalf("panic: %s %s", m.Status, m.Result)
	}
	if !strings.Contains(m.Traceback, "goroutine") {
		t.Fatalf("panic traceback has no Go stack: %q", m.Traceback)
	}
	if m := h.result(okID); string(m.Result) != `"still alive"` {
		t.Fatalf("echo after failures: %s", m.Result)
	}
}

func TestUnknownTaskAndUndecodableMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	ctx := context.Background()
	unknown := h.send("nope.nothing", []any{1}, producer.Options{})
	m := h.result(unknown)
	exc := h.exception(m)
	if m.Status != celery.StateFailure || exc.Type != "NotRegistered" || exc.Module != "celery.exceptions" || exc.Message() != "nope.nothing" {
		t.Fatalf("unknown: %s %s", m.Status, m.Result)
	}

	// A v2 message whose body is not valid base64: FAILURE DecodeError for its id.
	badBody := `{"body": "!!!not base64!!!", "content-encoding": "utf-8", "content-type": "application/json",
	  "headers": {"lang": "py", "task": "qagen.echo", "id": "bad-body-1", "root_id": "bad-body-1"},
	  "properties": {"delivery_info": {"exchange": "", "routing_key": "q"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "tag-bad-body"}}`
	// A pickle message: refused, never deserialized.
	pickle := `{"body": "gASVAAAAAAAAAAA=", "content-encoding": "binary", "content-type": "application/x-python-serialize",
	  "headers": {"lang": "py", "task": "qagen.echo", "id": "pickle-1", "root_id": "pickle-1"},
	  "properties": {"delivery_info": {"exchange": "", "routing_key": "q"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "tag-pickle"}}`
	// Not JSON at all, and JSON without a delivery tag: no id to report to.
	garbage := `this is not a message`
	noTag := `{"body": "", "headers": {}, "properties": {}}`
	c := h.conn()
	for _, raw := range []string{badBody, pickle, garbage, noTag} {
		if _, err := c.Do("LPUSH", h.broker.Key(h.queue), raw); err != nil {
			t.Fatal(err)
		}
	}
	m = h.result("bad-body-1")
	if exc := h.exception(m); exc.Type != "DecodeError" || exc.Module != "kombu.exceptions" {
		t.Fatalf("bad body: %s", m.Result)
	}
	m = h.result("pickle-1")
	if exc := h.exception(m); exc.Type != "ContentDisallowed" {
		t.Fatalf("pickle: %s", m.Result)
	}
	h.eventually("five dead letters", func() bool {
		dead, _ := h.broker.DeadLetters(ctx, 10)
		return len(dead) == 5
	})
	dead, _ := h.broker.DeadLetters(ctx, 10)
	seen := map[string]bool{}
	for _, d := range dead {
		seen[d.Message] = true
	}
	for _, raw := range []string{badBody, pickle, garbage, noTag} {
		if !seen[raw] {
			t.Errorf("raw message not kept in the dead-letter list: %.40s", raw)
		}
	}
	h.eventually("unacked empty", func() bool { return h.unacked() == 0 })
	if m := h.result(h.send("qagen.echo", []any{1}, producer.Options{})); m.Status != celery.StateSuccess {
		t.Fatal("worker stopped working after bad input")
	}
}

func TestAcksLateKeepsMessageUnackedWhileRunning(t *testing.T) {
	t.Parallel()
	for _, late := range []bool{true, false} {
		t.Run(fmt.Sprintf("acks_late=%v", late), func(t *testing.T) {
			t.Parallel()
			g := newGate()
			defer g.open()
			h := newHarness(t, func(c *worker.Config) { c.AcksLate = late })
			g.register(h.reg, false)
			h.start()
			id := h.send("test.block", nil, producer.Options{})
			g.waitStarted(t)
			want := 0
			if late {
				want = 1
			}
			h.eventually("unacked while running", func() bool { return h.unacked() == want })
			if a := h.w.Active(); len(a) != 1 || a[0].ID != id || a[0].Acknowledged == late {
				t.Fatalf("active %+v", a)
			}
			g.open()
			if m := h.result(id); m.Status != celery.StateSuccess {
				t.Fatalf("%s", m.Status)
			}
			h.eventually("acked", func() bool { return h.unacked() == 0 })
		})
	}
}

func TestPrefetchWindow(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) { c.Concurrency = 2; c.PrefetchMultiplier = 2 })
	g.register(h.reg, false)
	h.start()
	for i := 0; i < 10; i++ {
		h.send("test.block", nil, producer.Options{})
	}
	g.waitStarted(t)
	g.waitStarted(t)
	// 2 running + 2 reserved = the window of concurrency × multiplier.
	h.eventually("window filled", func() bool { return h.unacked() == 4 && len(h.w.Reserved()) == 2 })
	time.Sleep(50 * time.Millisecond)
	if n := h.unacked(); n != 4 {
		t.Fatalf("unacked %d, want the prefetch window of 4", n)
	}
	if n := h.queueLen(); n != 6 {
		t.Fatalf("queue length %d, want 6", n)
	}
	g.open()
	h.eventually("all done", func() bool { return h.w.Processed() == 10 })
}

func TestPriorityZeroFirst(t *testing.T) {
	t.Parallel()
	var order []string
	done := make(chan struct{}, 10)
	h := newHarness(t, func(c *worker.Config) { c.Concurrency = 1 })
	worker.Register(h.reg, "test.record", func(_ context.Context, a struct{ Tag string }) (string, error) {
		order = append(order, a.Tag)
		done <- struct{}{}
		return a.Tag, nil
	})
	for i := 0; i < 3; i++ {
		h.send("test.record", []any{fmt.Sprintf("p9-%d", i)}, producer.Options{Priority: 9})
	}
	for i := 0; i < 3; i++ {
		h.send("test.record", []any{fmt.Sprintf("p0-%d", i)}, producer.Options{Priority: 0})
	}
	h.send("test.record", []any{"p5-0"}, producer.Options{Priority: 5})
	h.start()
	for i := 0; i < 7; i++ {
		<-done
	}
	want := "p0-0 p0-1 p0-2 p5-0 p9-0 p9-1 p9-2"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

func TestETAHeldUntilDue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *worker.Config) { c.Concurrency = 1; c.PrefetchMultiplier = 1 })
	h.start()
	id := h.send("qagen.echo", []any{"later"}, producer.Options{ETA: h.clock.Now().Add(time.Hour)})
	h.eventually("scheduled", func() bool { return len(h.w.Scheduled()) == 1 })
	// A held ETA task does not use up the prefetch window of 1.
	other := h.send("qagen.echo", []any{"now"}, producer.Options{})
	if m := h.result(other); m.Status != celery.StateSuccess {
		t.Fatal(m.Status)
	}
	if m := h.meta(id); m != nil {
		t.Fatalf("ETA task ran early: %s", m.Status)
	}
	h.eventually("only the held ETA message unacked", func() bool { return h.unacked() == 1 })
	h.clock.Advance(59 * time.Minute)
	time.Sleep(20 * time.Millisecond)
	if m := h.meta(id); m != nil {
		t.Fatalf("ETA task ran a minute early: %s", m.Status)
	}
	h.clock.Advance(time.Minute)
	if m := h.result(id); m.Status != celery.StateSuccess || string(m.Result) != `"later"` {
		t.Fatalf("%s %s", m.Status, m.Result)
	}
}

func TestExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	past := h.send("qagen.echo", []any{1}, producer.Options{Expires: h.clock.Now().Add(-time.Second)})
	m := h.result(past)
	exc := h.exception(m)
	if m.Status != celery.StateRevoked || exc.Type != "TaskRevokedError" || exc.Message() != "expired" || m.Traceback != "" {
		t.Fatalf("expired: %s %s tb=%q", m.Status, m.Result, m.Traceback)
	}
	// Expiry is checked again when the ETA fires.
	late := h.send("qagen.echo", []any{2}, producer.Options{ETA: h.clock.Now().Add(10 * time.Second), Expires: h.clock.Now().Add(5 * time.Second)})
	h.eventually("scheduled", func() bool { return len(h.w.Scheduled()) == 1 })
	h.clock.Advance(10 * time.Second)
	if m := h.result(late); m.Status != celery.StateRevoked {
		t.Fatalf("eta past expiry: %s", m.Status)
	}
	h.eventually("acked", func() bool { return h.unacked() == 0 })
}

func TestSoftTimeLimit(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) { c.TimeLimit = 300 * time.Second; c.SoftTimeLimit = 240 * time.Second })
	g.register(h.reg, false)
	h.start()
	id := h.send("test.block", nil, producer.Options{})
	g.waitStarted(t)
	h.clock.Advance(239 * time.Second)
	time.Sleep(10 * time.Millisecond)
	if h.meta(id) != nil {
		t.Fatal("soft limit fired early")
	}
	h.clock.Advance(time.Second)
	m := h.result(id)
	exc := h.exception(m)
	if m.Status != celery.StateFailure || exc.Type != "SoftTimeLimitExceeded" || exc.Module != "billiard.exceptions" || len(exc.Args) != 0 {
		t.Fatalf("%s %s", m.Status, m.Result)
	}
}

func TestHardTimeLimitFreesSlot(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) {
		c.Concurrency = 1
		c.TimeLimit = 10 * time.Second
		c.SoftTimeLimit = 5 * time.Second
	})
	g.register(h.reg, true) // ignores cancellation
	h.start()
	stuck := h.send("test.block", nil, producer.Options{})
	g.waitStarted(t)
	next := h.send("qagen.echo", []any{"next"}, producer.Options{})
	h.clock.Advance(5 * time.Second) // soft: ignored by the stubborn task
	time.Sleep(10 * time.Millisecond)
	if h.meta(stuck) != nil {
		t.Fatal("result before the hard limit")
	}
	h.clock.Advance(5 * time.Second) // hard
	m := h.result(stuck)
	exc := h.exception(m)
	if m.Status != celery.StateFailure || exc.Type != "TimeLimitExceeded" || len(exc.Args) != 1 || exc.Args[0] != 10.0 || m.Traceback != "" {
		t.Fatalf("%s %s tb=%q", m.Status, m.Result, m.Traceback)
	}
	// The only slot was freed: the next task runs while the stuck one hangs.
	if m := h.result(next); m.Status != celery.StateSuccess {
		t.Fatal(m.Status)
	}
	// When the stuck body returns at last, its result is discarded.
	g.open()
	time.Sleep(20 * time.Millisecond)
	if m := h.meta(stuck); m.Status != celery.StateFailure {
		t.Fatalf("late result overwrote the failure: %s", m.Status)
	}
}

func TestTimeLimitHeaderOverridesDefaults(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) { c.TimeLimit = 300 * time.Second; c.SoftTimeLimit = 240 * time.Second })
	g.register(h.reg, false)
	h.start()
	id := h.send("test.block", nil, producer.Options{TimeLimit: 2 * time.Second, SoftLimit: time.Second})
	g.waitStarted(t)
	if a := h.w.Active(); len(a) != 1 {
		t.Fatalf("active %v", a)
	}
	h.clock.Advance(time.Second)
	if exc := h.exception(h.result(id)); exc.Type != "SoftTimeLimitExceeded" {
		t.Fatalf("%v", exc)
	}
}

func TestRetryRepublishesAndExhausts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	ok := h.send("qagen.flaky", []any{2, 30}, producer.Options{}) // 2 failures, 30 s countdown
	h.eventually("first retry scheduled", func() bool {
		m := h.meta(ok)
		return m != nil && m.Status == celery.StateRetry && len(h.w.Scheduled()) == 1
	})
	m := h.meta(ok)
	if m.DateDone != nil || !strings.Contains(string(m.Children), ok) {
		t.Fatalf("RETRY meta %s", m.AppendJSON(nil))
	}
	if exc := h.exception(m); exc.Type != "RuntimeError" || exc.Message() != "flaky failure" {
		t.Fatalf("RETRY exception %s", m.Result)
	}
	s := h.w.Scheduled()[0]
	if s.ID != ok || s.ETA == nil || s.ETA.Sub(h.clock.Now()) < 29*time.Second {
		t.Fatalf("scheduled retry %+v", s)
	}
	h.clock.Advance(30 * time.Second)
	h.eventually("second retry", func() bool { return len(h.w.Scheduled()) == 1 && h.w.Processed() >= 0 })
	h.clock.Advance(30 * time.Second)
	m = h.result(ok)
	if m.Status != celery.StateSuccess || string(m.Result) != `{"attempts":3}` || m.ParentID != ok {
		t.Fatalf("final %s %s parent=%q", m.Status, m.Result, m.ParentID)
	}

	// More failures than max_retries (3): FAILURE with the task's exception.
	bad := h.send("qagen.flaky", []any{10, 0.001}, producer.Options{})
	h.eventually("retries exhausted", func() bool {
		h.clock.Advance(time.Second)
		m := h.meta(bad)
		return m != nil && m.Status.Ready()
	})
	m = h.result(bad)
	if exc := h.exception(m); m.Status != celery.StateFailure || exc.Type != "RuntimeError" {
		t.Fatalf("exhausted: %s %s", m.Status, m.Result)
	}
	h.eventually("acked", func() bool { return h.unacked() == 0 })
}

func TestRetryWithoutExceptionRaisesMaxRetriesExceeded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	worker.Register(h.reg, "test.always_retry", func(ctx context.Context, _ struct{}) (int, error) {
		return 0, worker.Retry(nil, worker.Countdown(0), worker.MaxRetries(1))
	})
	h.start()
	id := h.send("test.always_retry", nil, producer.Options{})
	m := h.result(id)
	exc := h.exception(m)
	if exc.Type != "MaxRetriesExceededError" || exc.Module != "celery.exceptions" || !strings.Contains(exc.Message(), "Can't retry test.always_retry["+id+"]") {
		t.Fatalf("%s", m.Result)
	}
}

func TestIgnoreResultHeader(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	okID := h.send("qagen.echo", []any{1}, producer.Options{IgnoreResult: true})
	failID := h.send("qagen.fail", []any{"x"}, producer.Options{IgnoreResult: true})
	if m := h.result(failID); m.Status != celery.StateFailure {
		t.Fatal("failures are stored even with ignore_result")
	}
	h.eventually("processed", func() bool { return h.w.Processed() == 2 })
	h.eventually("acked", func() bool { return h.unacked() == 0 })
	if m := h.meta(okID); m != nil {
		t.Fatalf("SUCCESS stored despite ignore_result: %s", m.Status)
	}
}

func TestTrackStartedAndResultExtended(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) { c.TrackStarted = true; c.ResultExtended = true })
	g.register(h.reg, false)
	h.start()
	id := h.send("test.block", []any{"n"}, producer.Options{})
	g.waitStarted(t)
	h.eventually("STARTED", func() bool { m := h.meta(id); return m != nil && m.Status == celery.StateStarted })
	m := h.meta(id)
	var started struct {
		PID      int    `json:"pid"`
		Hostname string `json:"hostname"`
	}
	if err := json.Unmarshal(m.Result, &started); err != nil || started.PID == 0 || started.Hostname != "test@host" || m.DateDone != nil {
		t.Fatalf("STARTED meta %s", m.AppendJSON(nil))
	}
	g.open()
	m = h.result(id)
	e := m.Extended
	if e == nil || e.Name != "test.block" || string(e.Args) != `["n"]` || e.Worker != "test@host" || e.Queue != h.queue || e.Retries != 0 {
		t.Fatalf("extended %+v", e)
	}
}

func TestWarmShutdownRestoresUnstartedAndWaitsForRunning(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) { c.Concurrency = 1; c.PrefetchMultiplier = 3 })
	g.register(h.reg, false)
	h.start()
	running := h.send("test.block", nil, producer.Options{})
	g.waitStarted(t)
	waiting := h.send("qagen.echo", []any{"w"}, producer.Options{Priority: 9})
	eta := h.send("qagen.echo", []any{"e"}, producer.Options{ETA: h.clock.Now().Add(time.Hour)})
	h.eventually("reserved and scheduled", func() bool { return len(h.w.Reserved()) == 1 && len(h.w.Scheduled()) == 1 })

	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	// Unstarted messages go back at once, with the redelivered flag, to
	// their priority lists, while the running task still runs.
	h.eventually("restored", func() bool { return h.queueLen() == 2 })
	c := h.conn()
	raw9, err := redis.Bytes(c.Do("LINDEX", h.broker.Key(h.queue+celery.Sep+"9"), 0))
	if err != nil {
		t.Fatalf("priority-9 message not restored to its list: %v", err)
	}
	m9, err := celery.DecodeTask(raw9, celery.DecodeOptions{})
	if err != nil || m9.ID != waiting || !m9.Redelivered {
		t.Fatalf("restored %+v %v", m9, err)
	}
	rawETA, _ := redis.Bytes(c.Do("LINDEX", h.broker.Key(h.queue), -1))
	if mETA, err := celery.DecodeTask(rawETA, celery.DecodeOptions{}); err != nil || mETA.ID != eta {
		t.Fatalf("ETA message not at the front of the queue: %v", err)
	}
	select {
	case <-stopped:
		t.Fatal("shutdown did not wait for the running task")
	case <-time.After(50 * time.Millisecond):
	}
	g.open()
	<-stopped
	if m := h.meta(running); m == nil || m.Status != celery.StateSuccess {
		t.Fatalf("running task did not finish: %v", m)
	}
	if n := h.unacked(); n != 0 {
		t.Fatalf("unacked after shutdown: %d", n)
	}
}

func TestAbortRestoresRunningLateAckTasks(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, nil)
	g.register(h.reg, true)
	h.start()
	id := h.send("test.block", nil, producer.Options{})
	g.waitStarted(t)
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	time.Sleep(20 * time.Millisecond)
	h.w.Abort()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("abort did not end the shutdown")
	}
	if n := h.queueLen(); n != 1 || h.unacked() != 0 {
		t.Fatalf("queue %d unacked %d: the running message must be restored", n, h.unacked())
	}
	if m := h.meta(id); m != nil {
		t.Fatalf("aborted task stored %s", m.Status)
	}
}

func TestLeaseRefreshKeepsHeldMessagesVisible(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) { c.VisibilityTimeout = time.Hour })
	g.register(h.reg, false)
	h.start()
	h.send("test.block", nil, producer.Options{})
	g.waitStarted(t)
	eta := h.send("qagen.echo", nil, producer.Options{ETA: h.clock.Now().Add(3 * time.Hour)})
	_ = eta
	h.eventually("both held", func() bool { return h.unacked() == 2 })
	c := h.conn()
	// The broker scores with the real clock; push the index back in time
	// as if the messages had been delivered two hours ago.
	old := float64(time.Now().Add(-2*time.Hour).UnixMicro()) / 1e6
	tags, _ := redis.Strings(c.Do("ZRANGE", h.broker.Key("unacked_index"), 0, -1))
	for _, tag := range tags {
		c.Do("ZADD", h.broker.Key("unacked_index"), old, tag)
	}
	h.clock.Advance(15 * time.Minute) // lease interval = visibility/4
	h.eventually("scores refreshed", func() bool {
		fresh, _ := redis.Int(c.Do("ZCOUNT", h.broker.Key("unacked_index"), time.Now().Add(-time.Minute).Unix(), "+inf"))
		return fresh == 2
	})
	// A visibility pass by any consumer now leaves them alone.
	n, err := h.broker.RestoreVisible(context.Background())
	if err != nil || n != 0 {
		t.Fatalf("restored %d held messages (%v)", n, err)
	}
	g.open()
}

func TestRecovererRestoresDeadConsumersMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *worker.Config) { c.VisibilityTimeout = time.Second; c.RestoreInterval = time.Minute })
	// A message delivered long ago to a consumer that died.
	h.send("qagen.echo", []any{"orphan"}, producer.Options{})
	ds, err := h.broker.Fetch(context.Background(), []string{h.queue}, 1)
	if err != nil || len(ds) != 1 {
		t.Fatal(err)
	}
	c := h.conn()
	c.Do("ZADD", h.broker.Key("unacked_index"), float64(time.Now().Add(-time.Hour).Unix()), ds[0].Tag)
	raw, _ := celery.DecodeTask(ds[0].Raw, celery.DecodeOptions{})
	h.start() // the recoverer runs at start
	if m := h.result(raw.ID); m.Status != celery.StateSuccess {
		t.Fatal(m.Status)
	}
}

func TestChainCallbacksAndErrbacks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	// chain(add(1, 2), add(10), add(100)) as Celery sends it: the rest of
	// the chain reversed in the embed; the client waits on the last id.
	body := `[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": [
	  {"task": "qagen.add", "args": [100], "kwargs": {}, "options": {"task_id": "chain-3", "queue": "q"}, "subtask_type": null, "immutable": false},
	  {"task": "qagen.add", "args": [10], "kwargs": {}, "options": {"task_id": "chain-2", "queue": "q"}, "subtask_type": null, "immutable": false}], "chord": null}]`
	h.pushV2("chain-1", "qagen.add", body)
	m := h.result("chain-3")
	if string(m.Result) != "113" || m.ParentID != "chain-2" {
		t.Fatalf("chain end %s parent %q", m.Result, m.ParentID)
	}
	if m := h.result("chain-1"); !strings.Contains(string(m.Children), "chain-2") {
		t.Fatalf("children of the head %s", m.Children)
	}

	// link: the callback gets the result first; immutable ones do not.
	body = `[[2, 2], {}, {"callbacks": [
	  {"task": "qagen.add", "args": [1], "kwargs": {}, "options": {"task_id": "link-cb", "queue": "q"}, "subtask_type": null, "immutable": false},
	  {"task": "qagen.echo", "args": ["fixed"], "kwargs": {}, "options": {"task_id": "link-si", "queue": "q"}, "subtask_type": null, "immutable": true}],
	  "errbacks": null, "chain": null, "chord": null}]`
	h.pushV2("link-head", "qagen.add", body)
	if m := h.result("link-cb"); string(m.Result) != "5" {
		t.Fatalf("link callback %s", m.Result)
	}
	if m := h.result("link-si"); string(m.Result) != `"fixed"` {
		t.Fatalf("immutable callback %s", m.Result)
	}

	// A failing chain step fails every remaining step; errbacks get the id.
	body = `[["boom"], {}, {"callbacks": null, "errbacks": [
	  {"task": "qagen.echo", "args": [], "kwargs": {}, "options": {"task_id": "errback-1", "queue": "q"}, "subtask_type": null, "immutable": false}],
	  "chain": [{"task": "qagen.add", "args": [1], "kwargs": {}, "options": {"task_id": "fail-next", "queue": "q"}, "subtask_type": null, "immutable": false}], "chord": null}]`
	h.pushV2("fail-head", "qagen.fail", body)
	m = h.result("fail-next")
	if exc := h.exception(m); m.Status != celery.StateFailure || exc.Message() != "boom" {
		t.Fatalf("chain failure propagation %s %s", m.Status, m.Result)
	}
	if m := h.result("errback-1"); string(m.Result) != `"fail-head"` {
		t.Fatalf("errback got %s", m.Result)
	}
}

// pushV2 LPUSHes a hand-made protocol 2 message with the given body.
func (h *harness) pushV2(id, task, body string) {
	h.t.Helper()
	var raw json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		h.t.Fatal(err)
	}
	var parts []json.RawMessage
	json.Unmarshal(raw, &parts)
	m := &celery.TaskMessage{ID: id, Task: task, Args: parts[0], Kwargs: parts[1], DeliveryInfo: celery.DeliveryInfo{RoutingKey: h.queue}}
	if err := json.Unmarshal(parts[2], &m.Embed); err != nil {
		h.t.Fatal(err)
	}
	env, err := celery.EncodeTask(m, celery.EncodeOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.broker.Publish(context.Background(), broker.Message{Queue: h.queue, Body: env}); err != nil {
		h.t.Fatal(err)
	}
}

func TestRejectAndIgnore(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	calls := 0
	worker.Register(h.reg, "test.reject_once", func(ctx context.Context, _ struct{}) (string, error) {
		calls++
		if !worker.RequestFrom(ctx).Redelivered {
			return "", worker.Reject("not yet", true)
		}
		return "second time", nil
	})
	worker.Register(h.reg, "test.ignore", func(ctx context.Context, _ struct{}) (string, error) {
		return "", worker.ErrIgnore
	})
	h.start()
	id := h.send("test.reject_once", nil, producer.Options{})
	if m := h.result(id); string(m.Result) != `"second time"` {
		t.Fatalf("%s", m.Result)
	}
	ign := h.send("test.ignore", nil, producer.Options{})
	h.eventually("ignored and acked", func() bool { return h.w.Processed() >= 3 && h.unacked() == 0 })
	if h.meta(ign) != nil {
		t.Fatal("Ignore stored a result")
	}
	_ = errors.New
}

func TestSetConcurrency(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) { c.Concurrency = 1 })
	g.register(h.reg, false)
	h.start()
	for i := 0; i < 3; i++ {
		h.send("test.block", nil, producer.Options{})
	}
	g.waitStarted(t)
	h.w.SetConcurrency(3)
	g.waitStarted(t)
	g.waitStarted(t)
	if slots, running, _ := h.w.PoolSize(); slots != 3 || running != 3 {
		t.Fatalf("slots %d running %d", slots, running)
	}
	h.w.SetConcurrency(1)
	g.open()
	h.eventually("done", func() bool { return h.w.Processed() == 3 })
	if slots, running, _ := h.w.PoolSize(); slots != 1 || running != 0 {
		t.Fatalf("after shrink: slots %d running %d", slots, running)
	}
}

func TestChordJoin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	c := h.conn()
	header := func(id, group string, index int, task, args, callbackID string) {
		body := `[` + args + `, {}, {"callbacks": null, "errbacks": null, "chain": null, "chord":
		  {"task": "qagen.echo", "args": [], "kwargs": {}, "options": {"task_id": "` + callbackID + `", "queue": "q"}, "subtask_type": null, "immutable": false}}]`
		var parts []json.RawMessage
		json.Unmarshal([]byte(body), &parts)
		m := &celery.TaskMessage{ID: id, Task: task, Args: parts[0], Kwargs: parts[1], Group: group, GroupIndex: &index,
			DeliveryInfo: celery.DeliveryInfo{RoutingKey: h.queue}}
		json.Unmarshal(parts[2], &m.Embed)
		env, _ := celery.EncodeTask(m, celery.EncodeOptions{})
		if err := h.broker.Publish(context.Background(), broker.Message{Queue: h.queue, Body: env}); err != nil {
			t.Fatal(err)
		}
	}
	// The client sets the chord size before sending the header tasks.
	setSize := func(group string, n int) {
		if _, err := c.Do("SETEX", h.backend.GroupKey(group)+".s", 86400, n); err != nil {
			t.Fatal(err)
		}
	}
	setSize("g-ok", 3)
	header("h-2", "g-ok", 2, "qagen.add", "[2, 2]", "cb-ok")
	header("h-0", "g-ok", 0, "qagen.add", "[0, 0]", "cb-ok")
	header("h-1", "g-ok", 1, "qagen.add", "[1, 1]", "cb-ok")
	m := h.result("cb-ok")
	if m.Status != celery.StateSuccess || string(m.Result) != "[0,2,4]" {
		t.Fatalf("chord callback %s %s", m.Status, m.Result)
	}
	h.eventually("chord keys deleted", func() bool {
		n, _ := redis.Int(c.Do("EXISTS", h.backend.GroupKey("g-ok")+".j"))
		return n == 0
	})

	setSize("g-bad", 2)
	header("hb-0", "g-bad", 0, "qagen.add", "[1, 1]", "cb-bad")
	header("hb-1", "g-bad", 1, "qagen.fail", `["header broke"]`, "cb-bad")
	m = h.result("cb-bad")
	exc := h.exception(m)
	if m.Status != celery.StateFailure || exc.Type != "ChordError" || !strings.Contains(exc.Message(), "Dependency hb-1 raised ValueError('header broke')") {
		t.Fatalf("failed chord %s %s", m.Status, m.Result)
	}
	h.eventually("acked", func() bool { return h.unacked() == 0 })
}

func TestRevokeAndTerminate(t *testing.T) {
	t.Parallel()
	g := newGate()
	defer g.open()
	h := newHarness(t, func(c *worker.Config) { c.Concurrency = 1 })
	g.register(h.reg, true) // ignores cancellation, like a stuck LLM call
	h.start()
	// Revoked before it arrives: refused on arrival.
	h.w.Revoke(false, "", "early")
	if _, err := h.client.Send(context.Background(), producer.Task{Name: "qagen.echo", Options: producer.Options{ID: "early", Queue: h.queue}}); err != nil {
		t.Fatal(err)
	}
	if m := h.result("early"); m.Status != celery.StateRevoked || h.exception(m).Message() != "revoked" {
		t.Fatalf("early: %s %s", m.Status, m.Result)
	}
	// Revoked while waiting for its ETA: REVOKED when it comes due.
	eta := h.send("qagen.echo", nil, producer.Options{ETA: h.clock.Now().Add(time.Minute)})
	h.eventually("scheduled", func() bool { return len(h.w.Scheduled()) == 1 })
	h.w.Revoke(false, "", eta)
	h.clock.Advance(time.Minute)
	if m := h.result(eta); m.Status != celery.StateRevoked {
		t.Fatalf("eta: %s", m.Status)
	}
	// Terminated while running: the only slot is freed at once.
	running := h.send("test.block", nil, producer.Options{})
	g.waitStarted(t)
	next := h.send("qagen.echo", []any{"next"}, producer.Options{})
	if got := h.w.Revoke(true, "SIGTERM", running); len(got) != 1 {
		t.Fatalf("terminated %v", got)
	}
	m := h.result(running)
	if exc := h.exception(m); m.Status != celery.StateRevoked || exc.Message() != "terminated" {
		t.Fatalf("terminated: %s %s", m.Status, m.Result)
	}
	if m := h.result(next); m.Status != celery.StateSuccess {
		t.Fatalf("slot not freed: %s", m.Status)
	}
	h.eventually("acked", func() bool { return h.unacked() == 0 })
}

func TestRateLimitDelaysWithoutHoldingSlots(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *worker.Config) { c.Concurrency = 2; c.PrefetchMultiplier = 4 })
	worker.Register(h.reg, "test.limited", func(context.Context, struct{}) (int, error) { return 1, nil }, worker.WithRateLimit("1/s"))
	h.start()
	ids := []string{h.send("test.limited", nil, producer.Options{}), h.send("test.limited", nil, producer.Options{}), h.send("test.limited", nil, producer.Options{})}
	other := h.send("qagen.echo", []any{1}, producer.Options{})
	h.result(ids[0])
	if m := h.result(other); m.Status != celery.StateSuccess {
		t.Fatal("an unlimited task waited behind rate-limited ones")
	}
	time.Sleep(20 * time.Millisecond)
	if h.meta(ids[1]) != nil {
		t.Fatal("second task ran before its token")
	}
	if r := h.w.Reserved(); len(r) != 2 {
		t.Fatalf("rate-limited tasks should be reserved, got %d", len(r))
	}
	h.clock.Advance(time.Second)
	h.result(ids[1])
	h.clock.Advance(time.Second)
	h.result(ids[2])
}

// TestSnoozeIsNotARetry: a snoozed task (the rate limiter's "come back
// later") leaves its slot, is held until its ETA, and runs again with the
// same retries count; no RETRY is stored, and max_retries does not apply.
func TestSnoozeIsNotARetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var calls atomic.Int32
	var seenRetries []int
	var mu sync.Mutex
	worker.Register(h.reg, "test.snoozy", func(ctx context.Context, _ struct{}) (int, error) {
		mu.Lock()
		seenRetries = append(seenRetries, worker.RequestFrom(ctx).Retries)
		mu.Unlock()
		if n := calls.Add(1); n <= 5 { // more snoozes than max_retries (3)
			return 0, worker.Snooze(10 * time.Second)
		}
		return 42, nil
	})
	h.start()
	id := h.send("test.snoozy", nil, producer.Options{})
	for i := 1; i <= 5; i++ {
		h.eventually("snoozed", func() bool { return calls.Load() == int32(i) && len(h.w.Scheduled()) == 1 })
		if m := h.meta(id); m != nil {
			t.Fatalf("snooze %d stored %s", i, m.Status)
		}
		if s := h.w.Scheduled()[0]; s.ETA == nil || s.ETA.Sub(h.clock.Now()) < 9*time.Second {
			t.Fatalf("snooze %d scheduled %+v", i, s)
		}
		if a := h.w.Active(); len(a) != 0 {
			t.Fatalf("a snoozed task holds a slot: %+v", a)
		}
		h.clock.Advance(10 * time.Second)
	}
	m := h.result(id)
	if m.Status != celery.StateSuccess || string(m.Result) != "42" || m.ParentID != "" {
		t.Fatalf("final %s %s parent=%q", m.Status, m.Result, m.ParentID)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range seenRetries {
		if r != 0 {
			t.Fatalf("retries seen by the task: %v", seenRetries)
		}
	}
	h.eventually("acked", func() bool { return h.unacked() == 0 })
}

// TestConfiguredRateLimits: Config.RateLimits (qagen worker
// --task-rate-limit, Celery's task_annotations) limits a registered task
// by name; a name nobody registered is an error at start.
func TestConfiguredRateLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *worker.Config) { c.RateLimits = map[string]string{"qagen.echo": "1/s"} })
	h.start()
	first, second := h.send("qagen.echo", []any{1}, producer.Options{}), h.send("qagen.echo", []any{2}, producer.Options{})
	h.result(first)
	h.eventually("second reserved", func() bool { return len(h.w.Reserved()) == 1 })
	if h.meta(second) != nil {
		t.Fatal("second task ran before its token")
	}
	h.clock.Advance(time.Second)
	if m := h.result(second); string(m.Result) != "2" {
		t.Fatalf("second: %s", m.Result)
	}

	bad := newHarness(t, func(c *worker.Config) { c.RateLimits = map[string]string{"no.such.task": "1/s"} })
	if _, err := worker.New(bad.cfg, bad.reg, bad.broker, bad.backend); err == nil || !strings.Contains(err.Error(), "no.such.task") {
		t.Errorf("unknown task: %v", err)
	}
	bad = newHarness(t, func(c *worker.Config) { c.RateLimits = map[string]string{"qagen.echo": "fast"} })
	if _, err := worker.New(bad.cfg, bad.reg, bad.broker, bad.backend); err == nil {
		t.Error("bad rate limit string accepted")
	}
}
