package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/testenv"
)

func TestEncodeArgs(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, `{}`},
		{json.RawMessage(nil), `{}`},
		{json.RawMessage(" null "), `{}`},
		{map[string]any{"n": 2}, `{"n":2}`},
		{json.RawMessage(` {"a": [1]} `), `{"a": [1]}`},
		{[]byte(`{}`), `{}`},
		{struct {
			X int `json:"x"`
		}{3}, `{"x":3}`},
	} {
		got, err := encodeArgs(tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("encodeArgs(%v) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []any{[]int{1}, "x", json.RawMessage(`{"a":`), 3, func() {}} {
		if got, err := encodeArgs(bad); err == nil {
			t.Errorf("encodeArgs(%v) = %s, want an error", bad, got)
		}
	}
}

func TestSumMaxConcurrency(t *testing.T) {
	total, per := SumMaxConcurrency(map[string]json.RawMessage{
		"a@h": json.RawMessage(`{"pool": {"max-concurrency": 8, "processes": [1]}}`),
		"b@h": json.RawMessage(`{"pool": {"max-concurrency": 3}}`),
		"c@h": json.RawMessage(`{"pool": {}}`),                   // no number: one slot
		"d@h": json.RawMessage(`{"error": "KeyError('stats')"}`), // one slot
		"e@h": json.RawMessage(`{"pool": {"max-concurrency": 0}}`),
	})
	if total != 13 || per["a@h"] != 8 || per["b@h"] != 3 || per["c@h"] != 1 || per["d@h"] != 1 || per["e@h"] != 0 {
		t.Fatalf("total %d, per node %v", total, per)
	}
	if total, per := SumMaxConcurrency(nil); total != 0 || len(per) != 0 {
		t.Fatalf("no replies: %d %v", total, per)
	}
}

func TestDecode(t *testing.T) {
	ok, failed := Decode[[]string](map[string]json.RawMessage{
		"a": json.RawMessage(`["x", "y"]`),
		"b": json.RawMessage(`{"error": "boom"}`),
	})
	if len(ok) != 1 || !slices.Equal(ok["a"], []string{"x", "y"}) || failed["b"] != `{"error": "boom"}` {
		t.Fatalf("ok %v failed %v", ok, failed)
	}
}

func TestBroadcastValidation(t *testing.T) {
	c := New(broker.New(nil, broker.Options{}))
	ctx := context.Background()
	if _, err := c.Broadcast(ctx, "", nil, Options{}); err == nil {
		t.Error("empty method accepted")
	}
	if _, err := c.Broadcast(ctx, "ping", []int{1}, Options{}); err == nil {
		t.Error("a JSON list accepted as arguments")
	}
	if _, err := c.Broadcast(ctx, "ping", nil, Options{Pattern: "x", Matcher: "regex"}); err == nil {
		t.Error("unknown matcher accepted")
	}
	if _, err := c.Revoke(ctx, nil, false, "", Options{}); err == nil {
		t.Error("revoke without ids accepted")
	}
}

// TestBroadcastGoWorkers runs the inspect commands against two in-process
// Go workers: every node, a destination, a glob and a pcre pattern, a
// limit, and the typed helpers.
func TestBroadcastGoWorkers(t *testing.T) {
	e := newEnv(t)
	t.Parallel()
	ctx := context.Background()
	w1 := e.startWorker("w1@ctl", "q1", 3)
	e.startWorker("w2@ctl", "q2", 5)

	pong := func(got map[string]json.RawMessage, want ...string) {
		t.Helper()
		names := keys(got)
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Fatalf("replies from %v, want %v (%s)", names, want, sprint(got))
		}
		for _, n := range want {
			if string(got[n]) != `{"ok":"pong"}` {
				t.Fatalf("%s replied %s", n, got[n])
			}
		}
	}
	var seen []string
	var seenMu sync.Mutex
	got, err := e.client.Ping(ctx, Options{OnReply: func(node string, res json.RawMessage) {
		seenMu.Lock()
		defer seenMu.Unlock()
		seen = append(seen, node+" "+string(res))
	}})
	if err != nil {
		t.Fatal(err)
	}
	pong(got, "w1@ctl", "w2@ctl")
	slices.Sort(seen)
	if !slices.Equal(seen, []string{`w1@ctl {"ok":"pong"}`, `w2@ctl {"ok":"pong"}`}) {
		t.Fatalf("OnReply saw %v", seen)
	}

	// A destination sets the limit: collection ends with the last reply
	// instead of waiting out the timeout.
	start := time.Now()
	got, err = e.client.Ping(ctx, Options{Destination: []string{"w1@ctl"}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pong(got, "w1@ctl")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("ping with a destination took %s: the limit did not end collection", d)
	}
	got, err = e.client.Ping(ctx, Options{Destination: []string{"w2@ctl", "nobody@ctl"}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pong(got, "w2@ctl")

	got, err = e.client.Ping(ctx, Options{Pattern: "w2@*"})
	if err != nil {
		t.Fatal(err)
	}
	pong(got, "w2@ctl")
	got, err = e.client.Ping(ctx, Options{Pattern: "^w1@", Matcher: "pcre"})
	if err != nil {
		t.Fatal(err)
	}
	pong(got, "w1@ctl")

	// stats and the pre-flight sum of pool.max-concurrency.
	stats, err := e.client.Stats(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Pool struct {
			MaxConcurrency int `json:"max-concurrency"`
		} `json:"pool"`
		PID int `json:"pid"`
	}
	mustJSON(t, stats["w2@ctl"], &s)
	if s.Pool.MaxConcurrency != 5 || s.PID == 0 {
		t.Fatalf("w2 stats %s", stats["w2@ctl"])
	}
	total, per, err := e.client.MaxConcurrency(ctx, Options{})
	if err != nil || total != 8 || per["w1@ctl"] != 3 || per["w2@ctl"] != 5 {
		t.Fatalf("MaxConcurrency = %d %v %v", total, per, err)
	}

	reg, err := e.client.Registered(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	names, failed := Decode[[]string](reg)
	if len(failed) != 0 || len(names) != 2 || !slices.Contains(names["w1@ctl"], "qagen.add") || !slices.Contains(names["w2@ctl"], "qagen.sleep") {
		t.Fatalf("registered %s", sprint(reg))
	}

	queues, err := e.client.ActiveQueues(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	qs, _ := Decode[[]Queue](queues)
	if len(qs["w1@ctl"]) != 1 || qs["w1@ctl"][0].Name != "q1" || qs["w2@ctl"][0].Name != "q2" || qs["w2@ctl"][0].Exchange.Type != "direct" {
		t.Fatalf("active_queues %s", sprint(queues))
	}

	// active: a running task shows on its worker only.
	id := e.send("qagen.sleep", "q1", "", `[30000]`)
	var act map[string][]RequestInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		active, err := e.client.Active(ctx, Options{})
		if err != nil {
			t.Fatal(err)
		}
		act, _ = Decode[[]RequestInfo](active)
		if len(act["w1@ctl"]) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s never active: %s", id, sprint(active))
		}
	}
	a := act["w1@ctl"][0]
	if a.ID != id || a.Name != "qagen.sleep" || a.Hostname != "w1@ctl" || a.TimeStart == nil || string(a.Args) != "[30000]" || len(act["w2@ctl"]) != 0 {
		t.Fatalf("active %+v", act)
	}
	// query_task through the generic call.
	qt, err := e.client.Call(ctx, "query_task", map[string]any{"ids": []string{id}}, Options{Destination: []string{"w1@ctl"}})
	if err != nil || !strings.Contains(string(qt["w1@ctl"]), `"active"`) {
		t.Fatalf("query_task %s %v", sprint(qt), err)
	}
	// Terminate it so the worker stops quickly.
	rv, err := e.client.Revoke(ctx, []string{id}, true, "SIGKILL", Options{Reply: true, Destination: []string{"w1@ctl"}})
	if err != nil || !strings.Contains(string(rv["w1@ctl"]), "terminate: "+id) {
		t.Fatalf("revoke --terminate: %s %v", sprint(rv), err)
	}
	if m := e.result(id); m.Status != celery.StateRevoked {
		t.Fatalf("terminated task is %s", m.Status)
	}
	_ = w1

	if e.client.Clock() == 0 {
		t.Fatal("the Lamport clock never moved")
	}
	if b := e.bindings(); len(b) != 0 {
		t.Fatalf("reply bindings left: %q", b)
	}
	if k := e.replyKeys(); len(k) != 0 {
		t.Fatalf("reply lists left: %q", k)
	}

	// A limit ends collection early. The other worker's reply may still be
	// on its way: a worker routes it with SMEMBERS and then LPUSH, so when
	// the binding and lists go in between, that LPUSH re-creates a list
	// nobody reads (kombu has the same race). Only the binding is checked.
	start = time.Now()
	got, err = e.client.Ping(ctx, Options{Limit: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || time.Since(start) > 3*time.Second {
		t.Fatalf("limit 1: %d replies after %s", len(got), time.Since(start))
	}
	if b := e.bindings(); len(b) != 0 {
		t.Fatalf("reply bindings left: %q", b)
	}
}

// TestBroadcastNoWorkers: nobody listening gives no replies after about
// the timeout, and nothing is left in Redis.
func TestBroadcastNoWorkers(t *testing.T) {
	e := newEnv(t)
	t.Parallel()
	start := time.Now()
	got, err := e.client.Ping(context.Background(), Options{Timeout: 300 * time.Millisecond})
	d := time.Since(start)
	if err != nil || len(got) != 0 {
		t.Fatalf("ping: %v %v", got, err)
	}
	if d < 250*time.Millisecond || d > 1500*time.Millisecond {
		t.Fatalf("ping with nobody online took %s, want about 300ms", d)
	}
	// Timeouts above a second are honoured to the millisecond, not rounded
	// up to whole seconds.
	start = time.Now()
	if _, err := e.client.Ping(context.Background(), Options{Timeout: 1200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 1150*time.Millisecond || d > 1800*time.Millisecond {
		t.Fatalf("ping with a 1.2 s timeout took %s", d)
	}
	if b := e.bindings(); len(b) != 0 {
		t.Fatalf("reply bindings left: %q", b)
	}
	if k := e.replyKeys(); len(k) != 0 {
		t.Fatalf("reply lists left: %q", k)
	}
}

// fakeWorker listens on the pidbox channel like a worker and hands every
// request to handle.
func (e *env) fakeWorker(handle func(req *celery.ControlRequest, headers map[string]any, raw []byte)) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.broker.Listen(ctx, broker.Listener{
			Patterns: []string{e.broker.Channel(celery.PidboxExchange, "")},
			Ready:    func() { once.Do(func() { close(ready) }) },
			Handle: func(_ string, payload []byte) {
				req, err := celery.DecodeControlRequest(payload)
				if err != nil {
					e.t.Errorf("undecodable request: %v", err)
					return
				}
				env, _ := celery.ParseEnvelope(payload)
				var h map[string]any
				_ = json.Unmarshal(env.Headers, &h)
				handle(req, h, payload)
			},
		})
	}()
	e.t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		e.t.Fatal("fake worker not subscribed")
	}
}

func (e *env) reply(req *celery.ControlRequest, node, result, ticket string) {
	e.t.Helper()
	env := celery.EncodeControlReply(node, json.RawMessage(result), ticket, 7, req.ReplyTo.RoutingKey)
	if n, err := e.broker.PublishDirect(context.Background(), req.ReplyTo.Exchange, req.ReplyTo.RoutingKey, env); err != nil || n != 1 {
		e.t.Errorf("reply routed to %d queues: %v", n, err)
	}
}

// TestRequestShapeAndTickets checks the request on the wire against what
// Celery sends, that replies to other tickets are dropped while replies
// without a ticket are kept, and that replies after the call are dropped
// because the binding is gone.
func TestRequestShapeAndTickets(t *testing.T) {
	e := newEnv(t)
	t.Parallel()
	var mu sync.Mutex
	var last *celery.ControlRequest
	var lastHeaders map[string]any
	var lastRaw []byte
	e.fakeWorker(func(req *celery.ControlRequest, h map[string]any, raw []byte) {
		mu.Lock()
		last, lastHeaders, lastRaw = req, h, raw
		mu.Unlock()
		if req.ReplyTo == nil {
			return
		}
		// The binding exists before the request is published.
		member := celery.BindingMember(req.ReplyTo.RoutingKey, "", celery.ReplyQueue(req.ReplyTo.RoutingKey))
		if ok, _ := redis.Bool(e.do("SISMEMBER", e.prefix+celery.BindingKey(celery.ReplyExchange), member), nil); !ok {
			t.Errorf("binding %q missing when the request arrived", member)
		}
		e.reply(req, "stale@x", `{"ok": "old"}`, uuid.NewString())
		e.do("LPUSH", e.prefix+celery.ReplyQueue(req.ReplyTo.RoutingKey), "not json")
		e.reply(req, "noticket@x", `{"ok": "kept"}`, "")
		e.reply(req, "good@x", `{"ok": "pong"}`, req.Ticket)
	})
	got, err := e.client.Ping(context.Background(), Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got["good@x"]) != `{"ok":"pong"}` || string(got["noticket@x"]) != `{"ok":"kept"}` {
		t.Fatalf("replies %s", sprint(got))
	}
	if e.client.Clock() < 8 {
		t.Fatalf("clock %d not adjusted past the replies' 7", e.client.Clock())
	}
	mu.Lock()
	req, h, raw := last, lastHeaders, lastRaw
	mu.Unlock()
	if req.Method != "ping" || string(req.Arguments) != "{}" || req.Destination != nil || req.Pattern != nil || req.Matcher != nil {
		t.Fatalf("request %+v", req)
	}
	if _, err := uuid.Parse(req.Ticket); err != nil || req.ReplyTo.Exchange != "reply.celery.pidbox" {
		t.Fatalf("ticket %q reply_to %+v", req.Ticket, req.ReplyTo)
	}
	if _, err := uuid.Parse(req.ReplyTo.RoutingKey); err != nil {
		t.Fatalf("oid %q", req.ReplyTo.RoutingKey)
	}
	exp, _ := h["expires"].(float64)
	if now := float64(time.Now().Unix()); exp < now-5 || exp > now+5 || h["clock"] == nil {
		t.Fatalf("headers %v", h)
	}
	// The envelope has the keys and property values Celery's has.
	var envl map[string]any
	_ = json.Unmarshal(raw, &envl)
	props := envl["properties"].(map[string]any)
	di := props["delivery_info"].(map[string]any)
	if envl["content-type"] != "application/json" || props["delivery_mode"] != float64(2) || di["exchange"] != "celery.pidbox" || di["routing_key"] != "" || props["body_encoding"] != "base64" {
		t.Fatalf("envelope %s", raw)
	}
	// destination/pattern as Python sends them: null when unset, keys present.
	body, _ := json.Marshal(req)
	for _, k := range []string{`"destination":null`, `"pattern":null`, `"matcher":null`} {
		if !strings.Contains(string(body), k) {
			t.Fatalf("body %s lacks %s", body, k)
		}
	}
	// Late replies find no binding and are dropped by the sender.
	if n, err := e.broker.PublishDirect(context.Background(), celery.ReplyExchange, req.ReplyTo.RoutingKey, []byte("{}")); err != nil || n != 0 {
		t.Fatalf("a late reply was routed to %d queues (%v)", n, err)
	}
	if b := e.bindings(); len(b) != 0 {
		t.Fatalf("reply bindings left: %q", b)
	}

	// Destination and pattern on the wire.
	if _, err := e.client.Broadcast(context.Background(), "stats", map[string]any{"x": 1},
		Options{Destination: []string{"a@h", "b@h"}, Timeout: 100 * time.Millisecond, Reply: true}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	req = last
	mu.Unlock()
	if req.Method != "stats" || !slices.Equal(req.Destination, []string{"a@h", "b@h"}) || string(req.Arguments) != `{"x":1}` {
		t.Fatalf("request %+v", req)
	}
	if _, err := e.client.Ping(context.Background(), Options{Pattern: "a@*", Timeout: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	req = last
	mu.Unlock()
	if req.Pattern == nil || *req.Pattern != "a@*" || req.Matcher == nil || *req.Matcher != "glob" || req.Destination != nil {
		t.Fatalf("request %+v", req)
	}

	// A cast carries no ticket and no reply_to, declares nothing and
	// returns at once.
	start := time.Now()
	got, err = e.client.Broadcast(context.Background(), "heartbeat", nil, Options{Timeout: 5 * time.Second})
	if err != nil || got != nil || time.Since(start) > time.Second {
		t.Fatalf("cast: %v %v after %s", got, err, time.Since(start))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		req = last
		mu.Unlock()
		if req.Method == "heartbeat" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cast never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if req.Ticket != "" || req.ReplyTo != nil {
		t.Fatalf("cast %+v", req)
	}
}

// TestBroadcastCancel: a cancelled context ends collection at once, and
// the reply queue is still removed.
func TestBroadcastCancel(t *testing.T) {
	e := newEnv(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.client.Ping(ctx, Options{Timeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancellation took %s", d)
	}
	if b := e.bindings(); len(b) != 0 {
		t.Fatalf("reply bindings left: %q", b)
	}
}

// TestRevokeThenSend: a task revoked before it is sent is not run; the
// worker stores REVOKED. The cast form and the reply form both work.
func TestRevokeThenSend(t *testing.T) {
	e := newEnv(t)
	t.Parallel()
	ctx := context.Background()
	e.startWorker("r1@ctl", "rq", 2)
	e.startWorker("r2@ctl", "rq", 2)

	castID, callID := uuid.NewString(), uuid.NewString()
	if got, err := e.client.Revoke(ctx, []string{castID}, false, "", Options{}); err != nil || got != nil {
		t.Fatalf("cast revoke: %v %v", got, err)
	}
	got, err := e.client.Revoke(ctx, []string{callID}, false, "", Options{Reply: true})
	if err != nil || len(got) != 2 {
		t.Fatalf("revoke: %s %v", sprint(got), err)
	}
	for node, res := range got {
		if !strings.Contains(string(res), callID) || !strings.Contains(string(res), "flagged as revoked") {
			t.Fatalf("%s: %s", node, res)
		}
	}
	// Both workers know both ids (the cast has arrived by now: pub/sub
	// keeps order per connection and the call came back after it).
	revoked, err := e.client.Call(ctx, "revoked", nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lists, _ := Decode[[]string](revoked)
	for _, n := range []string{"r1@ctl", "r2@ctl"} {
		if !slices.Contains(lists[n], castID) || !slices.Contains(lists[n], callID) {
			t.Fatalf("%s revoked %v", n, lists[n])
		}
	}
	for _, id := range []string{castID, callID} {
		e.send("qagen.add", "rq", id, `[1, 2]`)
		if m := e.result(id); m.Status != celery.StateRevoked {
			t.Fatalf("%s: %s %s", id, m.Status, m.Result)
		}
	}
	// A task not revoked still runs.
	ok := e.send("qagen.add", "rq", "", `[1, 2]`)
	if m := e.result(ok); m.Status != celery.StateSuccess || string(m.Result) != "3" {
		t.Fatalf("%s %s", m.Status, m.Result)
	}
}

// TestPythonAndGoWorkers: a real Celery worker and a Go worker on the same
// database and global_keyprefix both answer ping and stats, and the
// max-concurrency sum counts both.
func TestPythonAndGoWorkers(t *testing.T) {
	testenv.RequirePython(t)
	e := newEnv(t)
	t.Parallel()
	ctx := context.Background()
	py := fmt.Sprintf("py-%s@ctl", uuid.NewString()[:8])
	e.startPyWorker(py, "pyq", "-P", "threads", "-c", "3")
	e.startWorker("go@ctl", "goq", 4)
	e.waitNodes(py, "go@ctl")

	got, err := e.client.Ping(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[py]) != `{"ok": "pong"}` || string(got["go@ctl"]) != `{"ok":"pong"}` {
		t.Fatalf("ping %s", sprint(got))
	}
	stats, err := e.client.Stats(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	total, per := SumMaxConcurrency(stats)
	if len(stats) != 2 || total != 7 || per[py] != 3 || per["go@ctl"] != 4 {
		t.Fatalf("max-concurrency %d %v from %s", total, per, sprint(stats))
	}
	if total, _, err := e.client.MaxConcurrency(ctx, Options{Destination: []string{py}}); err != nil || total != 3 {
		t.Fatalf("python only: %d %v", total, err)
	}
	reg, err := e.client.Registered(ctx, Options{Destination: []string{py}})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := Decode[[]string](reg)
	if !slices.Contains(names[py], "qagen.add") {
		t.Fatalf("python registered %s", sprint(reg))
	}
	qs, err := e.client.ActiveQueues(ctx, Options{Destination: []string{py}})
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := Decode[[]Queue](qs); len(q[py]) != 1 || q[py][0].Name != "pyq" {
		t.Fatalf("python active_queues %s", sprint(qs))
	}
	// Revoke reaches the Python worker too: a revoked task is not run.
	id := uuid.NewString()
	rv, err := e.client.Revoke(ctx, []string{id}, false, "", Options{Reply: true, Destination: []string{py}})
	if err != nil || !strings.Contains(string(rv[py]), "flagged as revoked") {
		t.Fatalf("revoke on python: %s %v", sprint(rv), err)
	}
	e.send("qagen.add", "pyq", id, `[1, 2]`)
	if m := e.pyResult(id); m.Status != celery.StateRevoked {
		t.Fatalf("python ran a revoked task: %s %s", m.Status, m.Result)
	}
	if b := e.bindings(); len(b) != 0 {
		t.Fatalf("reply bindings left: %q", b)
	}
}
