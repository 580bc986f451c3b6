package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/rs/zerolog"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/clock"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/tasks"
	"github.com/qagen/qagen/worker"
)

// harness runs an in-process worker against real Redis (database
// testenv.DBWorker, keys under a per-test prefix) with a fake clock, so ETA
// and time-limit tests advance time instead of sleeping.
type harness struct {
	t       *testing.T
	pool    *redis.Pool
	broker  *broker.Broker
	backend *backend.Backend
	client  *producer.Client
	clock   *clock.Fake
	reg     *worker.Registry
	cfg     worker.Config
	queue   string
	w       *worker.Worker
	cancel  context.CancelFunc
	done    chan error
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t *testing.T, configure func(*worker.Config)) *harness {
	t.Helper()
	pool, _ := testenv.Redis(t, testenv.DBWorker)
	prefix := testenv.Prefix(t)
	h := &harness{t: t, pool: pool, clock: clock.NewFake(time.Now()), reg: worker.NewRegistry(), queue: "q", logs: &syncBuffer{}}
	h.broker = broker.New(pool, broker.Options{KeyPrefix: prefix})
	h.backend = backend.New(pool, backend.Options{KeyPrefix: prefix})
	h.client = producer.New(h.broker, h.backend)
	tasks.RegisterDiagnostics(h.reg)
	h.cfg = worker.Config{
		Queues: []string{h.queue}, Concurrency: 4, Hostname: "test@host", AcksLate: true,
		RestoreInterval: -1, Clock: h.clock,
		Logger: zerolog.New(h.logs).Level(zerolog.DebugLevel),
	}
	if configure != nil {
		configure(&h.cfg)
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("worker log:\n%s", h.logs.String())
		}
	})
	return h
}

func (h *harness) start() {
	h.t.Helper()
	w, err := worker.New(h.cfg, h.reg, h.broker, h.backend)
	if err != nil {
		h.t.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- w.Run(ctx) }()
}

// stop shuts the worker down warmly and waits for Run to return.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("worker did not stop")
	}
}

func (h *harness) send(name string, args any, opts producer.Options) string {
	h.t.Helper()
	if opts.Queue == "" {
		opts.Queue = h.queue
	}
	a, err := json.Marshal(args)
	if err != nil {
		h.t.Fatal(err)
	}
	if args == nil {
		a = []byte("[]")
	}
	ids, err := h.client.Send(context.Background(), producer.Task{Name: name, Args: a, Options: opts})
	if err != nil {
		h.t.Fatal(err)
	}
	return ids[0]
}

// eventually polls cond until it holds or 10 s pass.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) meta(id string) *celery.ResultMeta {
	m, err := h.backend.Get(context.Background(), id)
	if errors.Is(err, backend.ErrNoResult) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// result waits for a ready result.
func (h *harness) result(id string) *celery.ResultMeta {
	h.t.Helper()
	var m *celery.ResultMeta
	h.eventually("result of "+id, func() bool {
		m = h.meta(id)
		return m != nil && m.Status.Ready()
	})
	return m
}

func (h *harness) exception(m *celery.ResultMeta) *celery.Exception {
	h.t.Helper()
	exc, err := m.Exception()
	if err != nil {
		h.t.Fatalf("%s result is not an exception: %s", m.Status, m.Result)
	}
	return exc
}

func (h *harness) unacked() int {
	n, err := h.broker.UnackedCount(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) queueLen() int {
	n, err := h.broker.QueueLength(context.Background(), h.queue)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) conn() redis.Conn {
	c := h.pool.Get()
	h.t.Cleanup(func() { c.Close() })
	return c
}

// gate is a task body that blocks until released, to hold tasks running.
type gate struct {
	started chan string
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{started: make(chan string, 100), release: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

type gateArgs struct {
	Name string `celery:"name,optional"`
}

// register adds test.block (waits for the gate, ignoring cancellation when
// stubborn) to the registry.
func (g *gate) register(reg *worker.Registry, stubborn bool) {
	worker.Register(reg, "test.block", func(ctx context.Context, a gateArgs) (string, error) {
		g.started <- worker.RequestFrom(ctx).ID
		if stubborn {
			<-g.release
			return "released", nil
		}
		select {
		case <-g.release:
			return "released", nil
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	})
}

func (g *gate) waitStarted(t *testing.T) string {
	t.Helper()
	select {
	case id := <-g.started:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("task did not start")
		return ""
	}
}
