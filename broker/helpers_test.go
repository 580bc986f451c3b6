package broker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/internal/clock"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/rdb"
)

const sep = "\x06\x16"

// redisPool is testenv.Redis on this package's database.
func redisPool(t testing.TB) (*redis.Pool, rdb.Options) {
	t.Helper()
	return testenv.Redis(t, testenv.DBBroker)
}

// env is one test's broker on its own key prefix in the broker database.
type env struct {
	t      *testing.T
	pool   *redis.Pool
	ropts  rdb.Options
	prefix string
	clock  *clock.Fake // nil with the real clock
	b      *broker.Broker
}

// newEnv returns a broker with a unique global_keyprefix. fake selects a
// fake clock starting at the current time (so scores stay comparable with
// what Python writes).
func newEnv(t *testing.T, fake bool, opts broker.Options) *env {
	t.Helper()
	pool, ropts := redisPool(t)
	e := &env{t: t, pool: pool, ropts: ropts, prefix: testenv.Prefix(t)}
	opts.KeyPrefix = e.prefix
	if fake {
		e.clock = clock.NewFake(time.Now().Truncate(time.Microsecond))
		opts.Clock = e.clock
	}
	e.b = broker.New(pool, opts)
	return e
}

func ctx() context.Context { return context.Background() }

// k is a key with the test's prefix.
func (e *env) k(name string) string { return e.prefix + name }

func (e *env) do(cmd string, args ...any) any {
	e.t.Helper()
	c := e.pool.Get()
	defer c.Close()
	r, err := c.Do(cmd, args...)
	if err != nil {
		e.t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return r
}

func (e *env) strings(cmd string, args ...any) []string {
	e.t.Helper()
	s, err := redis.Strings(e.do(cmd, args...), nil)
	if err != nil {
		e.t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return s
}

func (e *env) int(cmd string, args ...any) int {
	e.t.Helper()
	n, err := redis.Int(e.do(cmd, args...), nil)
	if err != nil {
		e.t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return n
}

// list returns a list (with the prefix added) in consumption order: the
// element BRPOP/RPOP would take first comes first.
func (e *env) list(name string) []string {
	e.t.Helper()
	l := e.strings("LRANGE", e.k(name), 0, -1)
	for i, j := 0, len(l)-1; i < j; i, j = i+1, j-1 {
		l[i], l[j] = l[j], l[i]
	}
	return l
}

// unacked returns the unacked hash value of tag, or "" when there is none.
func (e *env) unacked(tag string) string {
	e.t.Helper()
	v, err := redis.String(e.do("HGET", e.k("unacked"), tag), nil)
	if err == redis.ErrNil {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// score returns the unacked_index score of tag and whether it is there.
func (e *env) score(tag string) (float64, bool) {
	e.t.Helper()
	v, err := redis.Float64(e.do("ZSCORE", e.k("unacked_index"), tag), nil)
	if err == redis.ErrNil {
		return 0, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return v, true
}

// age moves the unacked_index score of tags back by d.
func (e *env) age(d time.Duration, tags ...string) {
	e.t.Helper()
	for _, tag := range tags {
		s, ok := e.score(tag)
		if !ok {
			e.t.Fatalf("age: %s not in unacked_index", tag)
		}
		e.do("ZADD", e.k("unacked_index"), "XX", strconv.FormatFloat(s-d.Seconds(), 'f', 6, 64), tag)
	}
}

func (e *env) fetch(queues []string, max int) []broker.Delivery {
	e.t.Helper()
	ds, err := e.b.Fetch(ctx(), queues, max)
	if err != nil {
		e.t.Fatalf("Fetch(%q, %d): %v", queues, max, err)
	}
	return ds
}

func (e *env) publish(msgs ...broker.Message) {
	e.t.Helper()
	if err := e.b.Publish(ctx(), msgs...); err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
}

func (e *env) queueLen(q string) int {
	e.t.Helper()
	n, err := e.b.QueueLength(ctx(), q)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) unackedCount() int {
	e.t.Helper()
	n, err := e.b.UnackedCount(ctx())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) deadLetters() []broker.DeadRecord {
	e.t.Helper()
	recs, err := e.b.DeadLetters(ctx(), 100)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// envelope is a kombu-style envelope as kombu 5.2.4 writes it (Python json
// separators, ASCII only).
func envelope(tag, exchange, routingKey string, priority int) []byte {
	return fmt.Appendf(nil, `{"body": "W1tdLCB7fSwge31d", "content-encoding": "utf-8", "content-type": "application/json", `+
		`"headers": {"lang": "py", "task": "tests.noop", "id": %q, "retries": 0}, `+
		`"properties": {"correlation_id": %q, "delivery_mode": 2, "delivery_info": {"exchange": %q, "routing_key": %q}, `+
		`"priority": %d, "body_encoding": "base64", "delivery_tag": %q}}`,
		tag+"-id", tag+"-id", exchange, routingKey, priority, tag)
}

// msg is an anonymous-exchange message for queue q.
func msg(tag, q string, priority int) broker.Message {
	return broker.Message{Queue: q, Priority: priority, Body: envelope(tag, "", q, priority)}
}

func tags(ds []broker.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Tag
	}
	return out
}

func newTag() string { return uuid.NewString() }

// fixture reads a captured fixture file.
func fixture(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decoded is a generic JSON value for structural comparisons.
func decoded(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	x, _ := json.Marshal(decoded(t, a))
	y, _ := json.Marshal(decoded(t, b))
	return string(x) == string(y)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// monitor captures the MONITOR lines that contain a substring (the test's
// prefix), so a test can check exact command arguments.
type monitor struct {
	conn  redis.Conn
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startMonitor(t *testing.T, o rdb.Options, substr string) *monitor {
	t.Helper()
	c, err := o.Dial(0)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := redis.String(c.Do("MONITOR")); err != nil || r != "OK" {
		c.Close()
		t.Fatalf("MONITOR: %v %v", r, err)
	}
	m := &monitor{conn: c, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			line, err := redis.String(c.Receive())
			if err != nil {
				return
			}
			if strings.Contains(line, substr) {
				m.mu.Lock()
				m.lines = append(m.lines, line)
				m.mu.Unlock()
			}
		}
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *monitor) stop() {
	m.conn.Close()
	<-m.done
}

// commands returns the captured commands (the part after "] ") that start
// with name, e.g. `"BRPOP"`.
func (m *monitor) commands(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, l := range m.lines {
		if i := strings.Index(l, "] "); i >= 0 {
			cmd := l[i+2:]
			if strings.HasPrefix(strings.ToUpper(cmd), `"`+name+`"`) {
				out = append(out, cmd)
			}
		}
	}
	return out
}

func (m *monitor) waitFor(t *testing.T, name string, n int) []string {
	t.Helper()
	var got []string
	eventually(t, "MONITOR "+name, 5*time.Second, func() bool {
		got = m.commands(name)
		return len(got) >= n
	})
	return got
}

// namedPool is a pool whose connections carry a CLIENT SETNAME, so a test
// can see in CLIENT LIST when this broker is blocked in BRPOP.
func namedPool(t *testing.T, o rdb.Options, name string) *redis.Pool {
	p := &redis.Pool{MaxIdle: 4, Dial: func() (redis.Conn, error) {
		c, err := o.Dial(10 * time.Second)
		if err != nil {
			return nil, err
		}
		if _, err := c.Do("CLIENT", "SETNAME", name); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	t.Cleanup(func() { p.Close() })
	return p
}

// blockedIn reports whether a client named name is running cmd.
func (e *env) blockedIn(name, cmd string) bool {
	e.t.Helper()
	list, err := redis.String(e.do("CLIENT", "LIST"), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, " name="+name+" ") && strings.Contains(l, " cmd="+cmd+" ") {
			return true
		}
	}
	return false
}
