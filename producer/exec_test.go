package producer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/ratelimit"
	"github.com/qagen/qagen/tasks"
	"github.com/qagen/qagen/worker"
)

func offlineProvider(context.Context, string) (llm.Provider, error) { return llm.Offline{}, nil }

// script is a provider whose answers a test decides per chunk id: some
// transient failures first, a permanent failure, or a call that waits for
// its context. Otherwise it answers the pairs asked for, one call for all
// chunks of a batch.
type script struct {
	fails   map[string]int  // transient failures before an answer
	perm    map[string]bool // permanent failure
	block   map[string]bool // wait until the context is done
	latency time.Duration

	mu    sync.Mutex
	count map[string]int
	calls []string // first chunk id of each call, "!" appended when it failed
	multi [][]string
}

func newScript() *script {
	return &script{fails: map[string]int{}, perm: map[string]bool{}, block: map[string]bool{}, count: map[string]int{}}
}

func (s *script) Name() string         { return "scripted" }
func (s *script) DefaultModel() string { return "script-1" }

func (s *script) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	id := req.Source[0].ID
	s.mu.Lock()
	n := s.count[id]
	s.count[id]++
	fail := n < s.fails[id] || s.perm[id]
	call := id
	if fail {
		call += "!"
	}
	s.calls = append(s.calls, call)
	if len(req.Source) > 1 {
		var ids []string
		for _, src := range req.Source {
			ids = append(ids, src.ID)
		}
		s.multi = append(s.multi, ids)
	}
	s.mu.Unlock()
	if s.block[id] {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if s.latency > 0 {
		time.Sleep(s.latency)
	}
	switch {
	case s.perm[id]:
		return nil, &llm.Error{Provider: "scripted", Kind: llm.KindPermanent, Status: 401, Err: errors.New("bad key (scripted)")}
	case fail:
		return nil, &llm.Error{Provider: "scripted", Kind: llm.KindTransient, Status: 500, Err: fmt.Errorf("injected failure %d", n+1)}
	}
	var pairs []map[string]any
	for i, src := range req.Source {
		for k := 0; k < max(src.Pairs, 1); k++ {
			p := map[string]any{"question": fmt.Sprintf("Q%d about %s?", k, src.ID), "answer": "A.", "question_type": "fact"}
			if len(req.Source) > 1 {
				p["chunk_index"] = i
			}
			pairs = append(pairs, p)
		}
	}
	text, _ := json.Marshal(map[string]any{"qa_pairs": pairs})
	return &llm.Response{Text: string(text), Usage: llm.Usage{InputTokens: 10, OutputTokens: 20}}, nil
}

func (s *script) callLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *script) qa(maxRetries int, delay time.Duration) *tasks.QA {
	return tasks.NewQA(tasks.QAConfig{
		Provider:   func(context.Context, string) (llm.Provider, error) { return s, nil },
		MaxRetries: maxRetries, BaseDelay: delay, Jitter: func() float64 { return 0 }, Logger: zerolog.Nop(),
	})
}

// unitOf is a unit of the given chunk ids, with a02-shaped chunk dicts.
func unitOf(ids ...string) *producer.Unit {
	u := &producer.Unit{ChunkIDs: ids, Config: json.RawMessage(`{"lang": "en", "qa_per_chunk": 2}`)}
	for i, id := range ids {
		raw, _ := json.Marshal(map[string]any{"id": id, "text": "The river floods in spring. Farmers plant rice after it.", "tokens": 80,
			"type": "paragraph", "sentences": []string{}, "doc_id": "doc_" + id, "doc_idx": i, "chunk_idx": i, "dataset_type": "custom_upload"})
		u.Chunks = append(u.Chunks, raw)
		u.Tokens += 80
	}
	return u
}

// recorder collects done units in order, and retry reports.
type recorder struct {
	mu      sync.Mutex
	done    []string
	retries map[string]int
}

func (r *recorder) onDone(u *producer.Unit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = append(r.done, u.ChunkIDs[0])
}

func (r *recorder) onRetry(u *producer.Unit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.retries == nil {
		r.retries = map[string]int{}
	}
	r.retries[u.ChunkIDs[0]]++
}

func TestLocalExecutorRetries(t *testing.T) {
	s := newScript()
	s.fails["a"] = 1 // one retry, then an answer
	s.fails["d"] = 9 // never answers: fails after its retries
	s.perm["c"] = true
	rec := &recorder{}
	exec := &producer.LocalExecutor{QA: s.qa(2, 100*time.Millisecond), Concurrency: 1, Provider: "scripted", Progress: rec.onRetry, Log: zerolog.Nop()}
	units := []*producer.Unit{unitOf("a"), unitOf("b"), unitOf("c"), unitOf("d")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := exec.Run(ctx, units, rec.onDone); err != nil {
		t.Fatal(err)
	}
	a, b, c, d := units[0], units[1], units[2], units[3]
	if a.State != producer.StateSucceeded || a.Attempts != 1 || len(a.Pairs) != 2 || a.Pairs[0].SourceChunkID != "a" || a.Provider != "scripted" || a.Model != "script-1" {
		t.Errorf("a: %+v", a)
	}
	if b.State != producer.StateSucceeded || b.Attempts != 0 {
		t.Errorf("b: %+v", b)
	}
	if c.State != producer.StateFailed || !strings.Contains(c.Error, "bad key") || c.Attempts != 0 {
		t.Errorf("c (permanent): %+v", c)
	}
	if d.State != producer.StateFailed || !strings.Contains(d.Error, "injected failure 3") || d.Attempts != 2 || d.Pairs != nil {
		t.Errorf("d (retries used up): %+v", d)
	}
	for _, u := range units {
		if u.TaskID == "" {
			t.Errorf("unit %s has no task id", u.ChunkIDs[0])
		}
	}
	// With one slot, b and c ran while a waited for its retry: a unit
	// waiting for its countdown holds no slot.
	calls := s.callLog()
	if len(calls) != 7 || calls[0] != "a!" || calls[1] != "b" || calls[2] != "c!" || calls[3] != "d!" {
		t.Errorf("calls %v", calls)
	}
	if rec.done[0] != "b" || rec.done[1] != "c" || len(rec.done) != 4 {
		t.Errorf("done order %v", rec.done)
	}
	if rec.retries["a"] != 1 || rec.retries["d"] != 2 || rec.retries["b"] != 0 {
		t.Errorf("retries reported %v", rec.retries)
	}
}

func TestLocalExecutorCancel(t *testing.T) {
	s := newScript()
	s.block["slow1"], s.block["slow2"] = true, true
	exec := &producer.LocalExecutor{QA: s.qa(3, 10*time.Millisecond), Concurrency: 4, Provider: "scripted", Log: zerolog.Nop()}
	run := &producer.Run{ID: testRunID}
	run.Units = []*producer.Unit{unitOf("ok1"), unitOf("slow1"), unitOf("ok2"), unitOf("slow2")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // Ctrl-C once both slow calls hang
		for {
			s.mu.Lock()
			n := s.count["slow1"] + s.count["slow2"] + s.count["ok1"] + s.count["ok2"]
			s.mu.Unlock()
			if n == 4 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	var out bytes.Buffer
	start := time.Now()
	err := producer.Execute(ctx, run, run.Units, exec, producer.NewProgress(&out, false, 4))
	if !errors.Is(err, context.Canceled) || run.Stopped != "interrupted" {
		t.Fatalf("Execute: %v, stopped %q", err, run.Stopped)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to stop", d)
	}
	for _, u := range run.Units {
		want := producer.StateSucceeded
		if strings.HasPrefix(u.ChunkIDs[0], "slow") {
			want = producer.StateMissing
		}
		if u.State != want {
			t.Errorf("%s: %s (%s), want %s", u.ChunkIDs[0], u.State, u.Error, want)
		}
	}
	if s, f, m := run.Counts(); s != 2 || f != 0 || m != 2 {
		t.Errorf("counts %d %d %d", s, f, m)
	}
	if fl := run.Failures(); len(fl) != 2 || fl[0].ChunkID != "slow1" || fl[0].State != producer.StateMissing || fl[0].Error != "no result before the run stopped" {
		t.Errorf("failures %+v", fl)
	}
	if !strings.Contains(out.String(), "進捗: 完了=2/4") {
		t.Errorf("progress %q", out.String())
	}
}

// TestLocalExecutorNothing: a resume of a complete run sends nothing and
// must not wait for results that never come.
func TestLocalExecutorNothing(t *testing.T) {
	exec := &producer.LocalExecutor{QA: newScript().qa(3, time.Millisecond), Log: zerolog.Nop()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := producer.Execute(ctx, &producer.Run{}, nil, exec, producer.NewProgress(&bytes.Buffer{}, false, 0)); err != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("no units: %v after %s", err, time.Since(start))
	}
}

// ---------------------------------------------------------------------------
// CeleryExecutor against real Redis

type celeryEnv struct {
	pool   *redis.Pool
	broker *broker.Broker
	back   *backend.Backend
	client *producer.Client
	queue  string
}

func newCeleryEnv(t *testing.T) *celeryEnv {
	t.Helper()
	pool, _ := testenv.Redis(t, testenv.DBProducer)
	prefix := testenv.Prefix(t)
	e := &celeryEnv{pool: pool, queue: "gen"}
	e.broker = broker.New(pool, broker.Options{KeyPrefix: prefix})
	e.back = backend.New(pool, backend.Options{KeyPrefix: prefix})
	e.client = producer.New(e.broker, e.back)
	return e
}

// startWorker runs an in-process Go worker serving the Q&A tasks.
func (e *celeryEnv) startWorker(t *testing.T, qa *tasks.QA) {
	t.Helper()
	reg := worker.NewRegistry()
	qa.Register(reg)
	w, err := worker.New(worker.Config{Queues: []string{e.queue}, Concurrency: 4, Hostname: "gen-test@host", AcksLate: true,
		RestoreInterval: -1, Logger: zerolog.Nop()}, reg, e.broker, e.back)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
	})
}

func (e *celeryEnv) executor() *producer.CeleryExecutor {
	return &producer.CeleryExecutor{Client: e.client, Queue: e.queue, Provider: "scripted", Log: zerolog.Nop()}
}

func TestCeleryExecutorSubscription(t *testing.T) {
	e := newCeleryEnv(t)
	s := newScript()
	s.latency = 100 * time.Millisecond // results come after the first sweep
	e.startWorker(t, s.qa(3, time.Second))
	exec := e.executor()
	exec.SweepInterval = time.Hour // collection by subscription only
	run := &producer.Run{ID: testRunID}
	run.Units = []*producer.Unit{unitOf("c1"), unitOf("c2"), unitOf("c3", "c4"), unitOf("c5")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := producer.Execute(ctx, run, run.Units, exec, producer.NewProgress(&bytes.Buffer{}, false, 4)); err != nil {
		t.Fatal(err)
	}
	if s, f, m := run.Counts(); s != 5 || f != 0 || m != 0 {
		t.Fatalf("counts %d %d %d", s, f, m)
	}
	for _, u := range run.Units {
		if u.Provider != "scripted" || u.Model != "script-1" || u.Usage == nil || u.Usage.Calls != 1 || len(u.Pairs) != 2*len(u.ChunkIDs) {
			t.Errorf("unit %v: %+v", u.ChunkIDs, u)
		}
		for i, p := range u.Pairs {
			if want := u.ChunkIDs[i/2]; p.SourceChunkID != want || p.DocID != "doc_"+want || p.Provider != "scripted" {
				t.Errorf("pair %d of %v attributed to %s", i, u.ChunkIDs, p.SourceChunkID)
			}
		}
	}
	// The batch unit was one task and one LLM request.
	if len(s.multi) != 1 || strings.Join(s.multi[0], ",") != "c3,c4" || len(s.callLog()) != 4 {
		t.Errorf("calls %v, multi-chunk calls %v", s.callLog(), s.multi)
	}
}

// TestCeleryExecutorRetries: a retry is counted once although the sweep
// reads the stored RETRY state again and again while it waits.
func TestCeleryExecutorRetries(t *testing.T) {
	e := newCeleryEnv(t)
	s := newScript()
	s.fails["r"] = 1
	e.startWorker(t, s.qa(3, 500*time.Millisecond))
	rec := &recorder{}
	exec := e.executor()
	exec.SweepInterval = 50 * time.Millisecond
	exec.Progress = rec.onRetry
	units := []*producer.Unit{unitOf("r"), unitOf("ok")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := exec.Run(ctx, units, rec.onDone); err != nil {
		t.Fatal(err)
	}
	if units[0].State != producer.StateSucceeded || units[0].Attempts != 1 || rec.retries["r"] != 1 {
		t.Errorf("retried unit: state %s, attempts %d, reported %d", units[0].State, units[0].Attempts, rec.retries["r"])
	}
	if units[1].Attempts != 0 || rec.retries["ok"] != 0 || len(rec.done) != 2 || rec.done[0] != "ok" {
		t.Errorf("other unit: attempts %d, done %v", units[1].Attempts, rec.done)
	}
}

func successMeta(t *testing.T, id, chunkID string) *celery.ResultMeta {
	t.Helper()
	res, err := json.Marshal(tasks.QAResult{Success: true, ChunkID: chunkID, Provider: "gemini", QAPairs: []tasks.QAPair{
		{Question: "Q?", Answer: "A.", QuestionType: "fact", SourceChunkID: chunkID, DocID: "d", DatasetType: "custom_upload", ChunkIdx: json.RawMessage(`"3-4"`), Provider: "gemini"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &celery.ResultMeta{Status: celery.StateSuccess, Result: res, TaskID: id}
}

// TestCeleryExecutorStoredBefore: results stored before the subscription
// (no worker here) are read by the first MGET sweep, whatever their state.
func TestCeleryExecutorStoredBefore(t *testing.T) {
	e := newCeleryEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	units := []*producer.Unit{unitOf("s"), unitOf("f"), unitOf("x")}
	for _, u := range units {
		u.TaskID = uuid.NewString()
	}
	failed := "gemini: transient (HTTP 500): quota"
	res, _ := json.Marshal(tasks.QAResult{Success: false, ChunkID: "f", Provider: "gemini", Error: &failed})
	exc, _ := celery.NewException("ValueError", celery.ModuleBuiltins, "boom").MarshalJSON()
	for _, m := range []*celery.ResultMeta{
		successMeta(t, units[0].TaskID, "s"),
		{Status: celery.StateSuccess, Result: res, TaskID: units[1].TaskID},
		{Status: celery.StateFailure, Result: exc, TaskID: units[2].TaskID},
	} {
		if err := e.back.StoreMeta(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	exec := e.executor()
	exec.SweepInterval = time.Hour
	rec := &recorder{}
	if err := exec.Run(ctx, units, rec.onDone); err != nil {
		t.Fatal(err)
	}
	if u := units[0]; u.State != producer.StateSucceeded || len(u.Pairs) != 1 || string(u.Pairs[0].ChunkIdx) != `"3-4"` {
		t.Errorf("stored SUCCESS: %+v", u)
	}
	if u := units[1]; u.State != producer.StateFailed || u.Error != failed {
		t.Errorf("stored success=false: %+v", u)
	}
	if u := units[2]; u.State != producer.StateFailed || u.Error != "FAILURE: ValueError: boom" {
		t.Errorf("stored FAILURE: %+v", u)
	}
	if len(rec.done) != 3 {
		t.Errorf("done %v", rec.done)
	}
}

// TestCeleryExecutorSweep: a result stored without a publish (or published
// while the subscription was down) is found by the periodic sweep.
func TestCeleryExecutorSweep(t *testing.T) {
	e := newCeleryEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := unitOf("quiet")
	u.TaskID = uuid.NewString()
	exec := e.executor()
	exec.SweepInterval = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- exec.Run(ctx, []*producer.Unit{u}, func(*producer.Unit) {}) }()
	time.Sleep(300 * time.Millisecond) // subscribed, sent, first sweep done
	conn := e.pool.Get()
	_, err := conn.Do("SET", e.back.Key(u.TaskID), successMeta(t, u.TaskID, "quiet").AppendJSON(nil))
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || u.State != producer.StateSucceeded {
			t.Fatalf("Run: %v, state %s", err, u.State)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sweep did not find the stored result")
	}
}

func TestCeleryExecutorStall(t *testing.T) {
	e := newCeleryEnv(t) // no worker: nothing ever finishes
	exec := e.executor()
	exec.SweepInterval, exec.StallTimeout = 50*time.Millisecond, 300*time.Millisecond
	run := &producer.Run{ID: testRunID, Units: []*producer.Unit{unitOf("a"), unitOf("b")}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := producer.Execute(ctx, run, run.Units, exec, producer.NewProgress(&bytes.Buffer{}, false, 2))
	if !errors.Is(err, producer.ErrStalled) || !strings.HasPrefix(run.Stopped, "stalled") {
		t.Fatalf("Execute: %v, stopped %q", err, run.Stopped)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("stalled after %s", d)
	}
	if _, _, m := run.Counts(); m != 2 || run.Units[0].TaskID == "" {
		t.Errorf("%d missing; units %+v", m, run.Units[0])
	}
	// The tasks were sent to the queue as the Python producer sends them.
	n, err := e.broker.QueueLength(ctx, e.queue)
	if err != nil || n != 2 {
		t.Errorf("queue holds %d messages (%v)", n, err)
	}
}

// TestLocalExecutorPaced: in-process runs are paced by a limiter on a
// MemoryStore; a unit the budget cannot serve soon is snoozed (it holds no
// slot and its retries are not spent) and completes later.
func TestLocalExecutorPaced(t *testing.T) {
	s := newScript()
	store := ratelimit.NewMemoryStore()
	store.Window = 0 // plain GCRA: 600/min, no burst: one call per 100 ms
	lim := ratelimit.New(ratelimit.Config{Store: store, Local: ratelimit.Table{{Provider: "scripted", Model: "*"}: {RPM: 600, BurstSeconds: 0.1}},
		MaxInPlace: 150 * time.Millisecond, Logger: zerolog.Nop()})
	qa := tasks.NewQA(tasks.QAConfig{
		Provider:   func(context.Context, string) (llm.Provider, error) { return s, nil },
		MaxRetries: 0, Jitter: func() float64 { return 0 }, Logger: zerolog.Nop(), Limiter: lim,
	})
	rec := &recorder{}
	exec := &producer.LocalExecutor{QA: qa, Concurrency: 8, Provider: "scripted", Progress: rec.onRetry, Log: zerolog.Nop()}
	var units []*producer.Unit
	for i := range 8 {
		units = append(units, unitOf(fmt.Sprintf("u%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := exec.Run(ctx, units, rec.onDone); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		if u.State != producer.StateSucceeded || u.Attempts != 0 {
			t.Errorf("%s: %s after %d attempts (%s)", u.ChunkIDs[0], u.State, u.Attempts, u.Error)
		}
	}
	if len(rec.retries) != 0 {
		t.Errorf("snoozes reported as retries: %v", rec.retries)
	}
	// Eight calls at one per 100 ms, of which at most two (now and a
	// reserved turn) fit in the 150 ms in place: the rest were snoozed,
	// yet every unit got exactly one call.
	if calls := s.callLog(); len(calls) != 8 {
		t.Errorf("%d calls for 8 units: %v", len(calls), calls)
	}
}
