package backend_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/rdb"
)

// redisPool is testenv.Redis on this package's database.
func redisPool(t testing.TB) (*redis.Pool, rdb.Options) {
	t.Helper()
	return testenv.Redis(t, testenv.DBBackend)
}

type env struct {
	t     testing.TB
	pool  *redis.Pool
	ropts rdb.Options
	b     *backend.Backend
}

func newEnv(t testing.TB, opts backend.Options) *env {
	t.Helper()
	pool, ropts := redisPool(t)
	return &env{t: t, pool: pool, ropts: ropts, b: backend.New(pool, opts)}
}

func ctx() context.Context { return context.Background() }

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

func (e *env) get(key string) string {
	e.t.Helper()
	v, err := redis.String(e.do("GET", key), nil)
	if err == redis.ErrNil {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) store(recs ...backend.Record) int {
	e.t.Helper()
	n, err := e.b.Store(ctx(), recs...)
	if err != nil {
		e.t.Fatalf("Store: %v", err)
	}
	return n
}

func newID() string { return uuid.NewString() }

// meta is a result meta as Celery 5.2.6 writes it.
func meta(id, status, result string) []byte {
	dateDone := "null"
	if status == "SUCCESS" || status == "FAILURE" || status == "REVOKED" {
		dateDone = `"2026-11-26T23:19:54.756580"`
	}
	tb := "null"
	if status == "FAILURE" || status == "RETRY" {
		tb = `"Traceback (most recent call last):\n  File \"tasks.py\", line 1, in boom\nValueError: boom\n"`
	}
	return fmt.Appendf(nil, `{"status": %q, "result": %s, "traceback": %s, "children": [], "date_done": %s, "task_id": %q}`,
		status, result, tb, dateDone, id)
}

func rec(id, status, result string) backend.Record {
	return backend.Record{TaskID: id, Meta: meta(id, status, result)}
}

// subscriber is a raw pub/sub connection, independent of the backend.
type subscriber struct {
	psc  redis.PubSubConn
	msgs chan redis.Message
}

func subscribe(t testing.TB, o rdb.Options, channels ...string) *subscriber {
	t.Helper()
	c, err := o.Dial(0)
	if err != nil {
		t.Fatal(err)
	}
	s := &subscriber{psc: redis.PubSubConn{Conn: c}, msgs: make(chan redis.Message, 100)}
	args := make([]any, len(channels))
	for i, ch := range channels {
		args[i] = ch
	}
	if err := s.psc.Subscribe(args...); err != nil {
		t.Fatal(err)
	}
	// Wait for the confirmations, so nothing published later is missed.
	for range channels {
		switch v := s.psc.Receive().(type) {
		case redis.Subscription:
		case error:
			t.Fatal(v)
		default:
			t.Fatalf("unexpected %T before confirmation", v)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			switch v := s.psc.Receive().(type) {
			case redis.Message:
				s.msgs <- v
			case error:
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return s
}

func (s *subscriber) next(t testing.TB, d time.Duration) redis.Message {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(d):
		t.Fatal("no message published")
		return redis.Message{}
	}
}

// numsub is how many clients are subscribed to a channel.
func (e *env) numsub(channel string) int {
	e.t.Helper()
	r, err := redis.Values(e.do("PUBSUB", "NUMSUB", channel), nil)
	if err != nil || len(r) != 2 {
		e.t.Fatalf("PUBSUB NUMSUB: %v %v", r, err)
	}
	n, _ := redis.Int(r[1], nil)
	return n
}

func eventually(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// monitorSeen starts MONITOR and returns a function reporting whether a
// command whose text contains all of the given substrings has been seen.
func monitorSeen(t testing.TB, o rdb.Options) func(substrs ...string) bool {
	t.Helper()
	c, err := o.Dial(0)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := redis.String(c.Do("MONITOR")); err != nil || r != "OK" {
		c.Close()
		t.Fatalf("MONITOR: %v %v", r, err)
	}
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			l, err := redis.String(c.Receive())
			if err != nil {
				return
			}
			mu.Lock()
			lines = append(lines, l)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return func(substrs ...string) bool {
		mu.Lock()
		defer mu.Unlock()
	next:
		for _, l := range lines {
			for _, s := range substrs {
				if !strings.Contains(l, s) {
					continue next
				}
			}
			return true
		}
		return false
	}
}
