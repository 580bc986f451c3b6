package worker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/clock"
)

func TestParseRateLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		bad  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"10", 10, false}, {"10/s", 10, false}, {"120/m", 2, false},
		{"3600/h", 1, false}, {" 5 / sec ", 5, false}, {"1/x", 0, true}, {"abc", 0, true}, {"-1/s", 0, true}, {"10/", 0, true},
	} {
		got, err := parseRateLimit(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("parseRateLimit(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestRateLimiterBucket(t *testing.T) {
	r := newRateLimiter()
	if err := r.set("t", "2/s"); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	// Celery's bucket holds one token: no burst, tasks 1/rate apart.
	if d := r.reserve("t", now); d != 0 {
		t.Fatalf("first task waited %v", d)
	}
	if d := r.reserve("t", now); d != 500*time.Millisecond {
		t.Fatalf("second task waits %v, want 500ms", d)
	}
	if d := r.reserve("t", now); d != time.Second {
		t.Fatalf("third task waits %v, want 1s", d)
	}
	if d := r.reserve("t", now.Add(5*time.Second)); d != 0 {
		t.Fatalf("after a long pause the bucket must hold one token, got a wait of %v", d)
	}
	if d := r.reserve("t", now.Add(5*time.Second)); d != 500*time.Millisecond {
		t.Fatalf("a pause must not build up a burst, got a wait of %v", d)
	}
	if d := r.reserve("other", now); d != 0 {
		t.Fatal("a task without a limit was delayed")
	}
	if err := r.set("t", ""); err != nil || r.reserve("t", now) != 0 || r.spec("t") != "" {
		t.Fatal("removing the limit did not take")
	}
}

func TestRevokedSetLimitsAndStateDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "worker.db")
	r, err := newRevokedSet(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	r.add(now, "a", "b")
	if !r.has(now, "a") || r.has(now, "c") {
		t.Fatal("membership")
	}
	if r.has(now.Add(revokedExpire+time.Second), "a") {
		t.Fatal("revoked ids must expire after 3 h, as in Celery")
	}
	r.add(now, "a")
	if err := r.save(now); err != nil {
		t.Fatal(err)
	}
	again, err := newRevokedSet(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(again.list(now), ","); got != "a,b" {
		t.Fatalf("restored %q", got)
	}
	// mingle's hello merge keeps the earlier time.
	again.merge(now, map[string]float64{"c": float64(now.Add(-time.Hour).Unix())})
	if snap := again.snapshot(now); snap["c"] != float64(now.Add(-time.Hour).Unix()) || len(snap) != 3 {
		t.Fatalf("merged snapshot %v", snap)
	}
	os.WriteFile(path, []byte("not json"), 0o644)
	if _, err := newRevokedSet(path); err == nil {
		t.Fatal("a corrupt statedb was accepted silently")
	}
}

func TestRevokedSetSizeLimit(t *testing.T) {
	r, _ := newRevokedSet("")
	now := time.Unix(0, 0)
	for i := 0; i < revokedMax+10; i++ {
		r.add(now.Add(time.Duration(i)*time.Microsecond), "id"+string(rune(i)))
	}
	if n := len(r.list(now.Add(time.Second))); n > revokedMax || n < revokedMax*9/10 {
		t.Fatalf("%d ids kept, want at most %d", n, revokedMax)
	}
	if r.has(now, "id"+string(rune(0))) {
		t.Fatal("the oldest id survived the trim")
	}
}

func newIdleWorker(t *testing.T) *Worker {
	t.Helper()
	reg := NewRegistry()
	Register(reg, "t.add", func(_ context.Context, a struct{ X, Y int }) (int, error) { return a.X + a.Y, nil }, WithRateLimit("10/m"))
	w, err := New(Config{Queues: []string{"q"}, Hostname: "n1@h", Clock: clock.NewFake(time.Unix(100, 0)), Logger: zerolog.Nop()}, reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func call(t *testing.T, w *Worker, method, args string) (string, bool) {
	t.Helper()
	reply, send := w.control(&celery.ControlRequest{Method: method, Arguments: json.RawMessage(args)})
	return string(reply), send
}

func TestControlCommandsWithoutBroker(t *testing.T) {
	w := newIdleWorker(t)
	for _, tc := range []struct{ method, args, want string }{
		{"ping", `{}`, `{"ok":"pong"}`},
		{"registered", `{}`, `["t.add [rate_limit=10/m]"]`},
		{"no_such_cmd", `{}`, `{"error":"KeyError('no_such_cmd')"}`},
		{"rate_limit", `{"task_name": "t.add", "rate_limit": "5/s"}`, `{"ok":"new rate limit set successfully"}`},
		{"rate_limit", `{"task_name": "t.add", "rate_limit": null}`, `{"ok":"rate limit disabled successfully"}`},
		{"rate_limit", `{"task_name": "t.add", "rate_limit": "fast"}`, `{"error":"Invalid rate limit string: fast"}`},
		{"rate_limit", `{"task_name": "nope", "rate_limit": "1/s"}`, `{"error":"unknown task"}`},
		{"time_limit", `{"task_name": "t.add", "hard": 20, "soft": 10}`, `{"ok":"time limits set successfully"}`},
		{"time_limit", `{"task_name": "nope", "hard": 20}`, `{"error":"unknown task"}`},
		{"revoke", `{"task_id": ["x1", "x2"]}`, `{"ok":"tasks x1, x2 flagged as revoked"}`},
		{"revoke", `{"task_id": "x3", "terminate": true}`, `{"ok":"terminate: tasks unknown"}`},
		{"revoked", `{}`, `["x1","x2","x3"]`},
		{"enable_events", `{}`, `{"ok":"task events enabled"}`},
		{"enable_events", `{}`, `{"ok":"task events already enabled"}`},
		{"disable_events", `{}`, `{"ok":"task events disabled"}`},
		{"autoscale", `{"max": 4, "min": 1}`, `{"error":"ValueError('Autoscale not enabled')"}`},
		{"hello", `{"from_node": "n1@h", "revoked": {}}`, `null`},
		{"query_task", `{"ids": ["zz"]}`, `{}`},
		{"pool_grow", `{"n": 3}`, `{"ok":"pool will grow"}`},
	} {
		got, send := call(t, w, tc.method, tc.args)
		if !send || got != tc.want {
			t.Errorf("%s %s = %s (send %v), want %s", tc.method, tc.args, got, send, tc.want)
		}
	}
	if l, ok := w.timeLimitOverride("t.add"); !ok || l[0] != 20*time.Second || l[1] != 10*time.Second {
		t.Errorf("time_limit override %v", l)
	}
	if slots, _, _ := w.pool.size(); slots != 11 {
		t.Errorf("pool_grow: %d slots, want 8+3", slots)
	}
	got, _ := call(t, w, "hello", `{"from_node": "other@h", "revoked": {"y": 50.5}}`)
	var hello struct {
		Revoked map[string]float64 `json:"revoked"`
	}
	if json.Unmarshal([]byte(got), &hello); hello.Revoked["y"] != 50.5 || len(hello.Revoked) != 4 {
		t.Errorf("hello reply %s", got)
	}
	if _, send := call(t, w, "shutdown", `{}`); send {
		t.Error("shutdown must not reply")
	}
	if got, _ := call(t, w, "stats", `{}`); !strings.Contains(got, `"max-concurrency":11`) || !strings.Contains(got, `"prefetch_count":11`) {
		t.Errorf("stats %s", got)
	}
}
