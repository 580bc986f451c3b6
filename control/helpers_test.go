package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/rs/zerolog"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/tasks"
	"github.com/qagen/qagen/worker"
)

// env is one test's corner of Redis database testenv.DBControl: a key
// prefix of its own (kombu's global_keyprefix), so parallel tests and their
// pidbox channels never meet.
type env struct {
	t       *testing.T
	pool    *redis.Pool
	prefix  string
	broker  *broker.Broker
	backend *backend.Backend
	client  *Client
}

// newEnv must run before t.Parallel(): the binary's first testenv.Redis
// call flushes the database.
func newEnv(t *testing.T) *env {
	t.Helper()
	pool, _ := testenv.Redis(t, testenv.DBControl)
	e := &env{t: t, pool: pool, prefix: testenv.Prefix(t)}
	e.broker = broker.New(pool, broker.Options{DB: testenv.DBControl, KeyPrefix: e.prefix})
	e.backend = backend.New(pool, backend.Options{KeyPrefix: e.prefix})
	e.client = New(e.broker)
	return e
}

func (e *env) do(cmd string, args ...any) any {
	e.t.Helper()
	c := e.pool.Get()
	defer c.Close()
	v, err := c.Do(cmd, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", cmd, err)
	}
	return v
}

// bindings lists the members of the reply exchange's binding set.
func (e *env) bindings() []string {
	e.t.Helper()
	m, err := redis.Strings(e.do("SMEMBERS", e.prefix+celery.BindingKey(celery.ReplyExchange)), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// replyKeys lists the reply lists left in Redis under the test's prefix.
func (e *env) replyKeys() []string {
	e.t.Helper()
	keys, err := redis.Strings(e.do("KEYS", e.prefix+"*"+celery.ReplyExchange+"*"), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return keys
}

type goWorker struct {
	w      *worker.Worker
	name   string
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
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

// startWorker runs an in-process Go worker named name on queue and waits
// until it answers ping.
func (e *env) startWorker(name, queue string, concurrency int) *goWorker {
	e.t.Helper()
	reg := worker.NewRegistry()
	tasks.RegisterDiagnostics(reg)
	g := &goWorker{name: name, done: make(chan error, 1), logs: &syncBuffer{}}
	w, err := worker.New(worker.Config{
		Queues: []string{queue}, Concurrency: concurrency, Hostname: name, AcksLate: true,
		RestoreInterval: -1, HeartbeatInterval: -1,
		Logger: zerolog.New(g.logs).Level(zerolog.DebugLevel),
	}, reg, e.broker, e.backend)
	if err != nil {
		e.t.Fatal(err)
	}
	g.w = w
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() { g.done <- w.Run(ctx) }()
	e.t.Cleanup(func() {
		g.stop(e.t)
		if e.t.Failed() {
			e.t.Logf("log of %s:\n%s", name, g.logs.String())
		}
	})
	e.waitNodes(name)
	return g
}

func (g *goWorker) stop(t *testing.T) {
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("%s: Run: %v", g.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop", g.name)
	}
}

// waitNodes polls ping until every node answers.
func (e *env) waitNodes(nodes ...string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := e.client.Ping(context.Background(), Options{Destination: nodes, Timeout: 300 * time.Millisecond})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(got) == len(nodes) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("nodes %v did not answer ping (got %v)", nodes, keys(got))
		}
	}
}

func (e *env) send(name, queue, id string, args string) string {
	e.t.Helper()
	ids, err := producer.New(e.broker, e.backend).Send(context.Background(),
		producer.Task{Name: name, Args: json.RawMessage(args), Options: producer.Options{ID: id, Queue: queue}})
	if err != nil {
		e.t.Fatal(err)
	}
	return ids[0]
}

// result waits up to 20 s for a ready result stored by a Go worker.
func (e *env) result(id string) *celery.ResultMeta {
	e.t.Helper()
	return e.resultIn(e.backend, id)
}

// pyResult waits for a result stored by a Python worker: Celery 5.2 does
// not apply global_keyprefix to the result backend.
func (e *env) pyResult(id string) *celery.ResultMeta {
	e.t.Helper()
	return e.resultIn(backend.New(e.pool, backend.Options{}), id)
}

func (e *env) resultIn(b *backend.Backend, id string) *celery.ResultMeta {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := b.Get(context.Background(), id)
		if err != nil && !errors.Is(err, backend.ErrNoResult) {
			e.t.Fatal(err)
		}
		if m != nil && m.Status.Ready() {
			return m
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no result for %s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// startPyWorker starts a real Celery worker (testdata/python/pytasks.py,
// /usr/bin/python3 -m celery worker) on the test's database and key prefix
// and waits until it is ready.
func (e *env) startPyWorker(name, queue string, pool ...string) *testenv.Proc {
	e.t.Helper()
	testenv.RequirePython(e.t)
	dir, err := filepath.Abs("../testdata/python")
	if err != nil {
		e.t.Fatal(err)
	}
	argv := append([]string{testenv.Python, "-m", "celery", "-A", "pytasks", "worker", "-Q", queue, "-n", name, "-l", "info",
		"--without-mingle", "--without-gossip", "--without-heartbeat"}, pool...)
	environ := append(os.Environ(),
		"QAGEN_IT_BROKER="+testenv.URL(testenv.DBControl),
		"QAGEN_IT_BACKEND="+testenv.URL(testenv.DBControl),
		"QAGEN_IT_QUEUE="+queue,
		"QAGEN_IT_PREFIX="+e.prefix,
		"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	p := testenv.StartProc(e.t, "py-worker", dir, environ, argv...)
	p.WaitLog(e.t, " ready.", 60*time.Second)
	return p
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
}

func sprint(m map[string]json.RawMessage) string {
	var b strings.Builder
	for _, k := range keys(m) {
		fmt.Fprintf(&b, "%s=%s ", k, m[k])
	}
	return b.String()
}
