package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/celery"
)

func TestStoreSetexDefaultTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	id := newID()
	r := rec(id, "SUCCESS", "5")
	if n := e.store(r); n != 1 {
		t.Fatalf("Store = %d, want 1", n)
	}
	key := "celery-task-meta-" + id
	if e.b.Key(id) != key {
		t.Fatalf("Key = %q", e.b.Key(id))
	}
	if got := e.get(key); got != string(r.Meta) {
		t.Fatalf("stored %s, want %s", got, r.Meta)
	}
	ttl, _ := redis.Int(e.do("TTL", key), nil)
	if ttl < 86390 || ttl > 86400 {
		t.Fatalf("TTL = %d, want 86400 (result_expires default)", ttl)
	}
	if n, err := e.b.Store(ctx()); err != nil || n != 0 {
		t.Fatalf("empty Store = %d, %v", n, err)
	}
}

func TestStoreExpires(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expires  time.Duration
		min, max int
	}{
		{90 * time.Second, 85, 90},
		{500 * time.Millisecond, 1, 1}, // at least one second
		{-1, -1, -1},                   // result_expires=None: no TTL
		{-time.Hour, -1, -1},
	} {
		e := newEnv(t, backend.Options{Expires: c.expires})
		id := newID()
		e.store(rec(id, "SUCCESS", "1"))
		ttl, _ := redis.Int(e.do("TTL", e.b.Key(id)), nil)
		if ttl < c.min || ttl > c.max {
			t.Errorf("Expires %v: TTL = %d, want %d..%d", c.expires, ttl, c.min, c.max)
		}
		if e.get(e.b.Key(id)) == "" {
			t.Errorf("Expires %v: nothing stored", c.expires)
		}
	}
}

func TestStorePublishesStoredBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	id := newID()
	key := e.b.Key(id)
	sub := subscribe(t, e.ropts, key)
	// Non-ASCII and escapes must survive byte for byte.
	r := backend.Record{TaskID: id, Meta: meta(id, "SUCCESS", `{"text": "\u00dc\u00e9 caf\u00e9 \"q\"", "raw": "ÜÖ"}`)}
	e.store(r)
	m := sub.next(t, 5*time.Second)
	if m.Channel != key {
		t.Fatalf("published on %q, want %q (the key itself)", m.Channel, key)
	}
	stored := e.get(key)
	if string(m.Data) != stored || stored != string(r.Meta) {
		t.Fatalf("published %q\n stored %q\n   meta %q", m.Data, stored, r.Meta)
	}
	// StoreMeta encodes and publishes the same way.
	id2 := newID()
	sub2 := subscribe(t, e.ropts, e.b.Key(id2))
	done := time.Date(2026, 11, 26, 23, 19, 54, 756580000, time.UTC)
	if err := e.b.StoreMeta(ctx(), &celery.ResultMeta{Status: celery.StateSuccess, Result: json.RawMessage(`[1, 2]`), DateDone: &done, TaskID: id2}); err != nil {
		t.Fatal(err)
	}
	m2 := sub2.next(t, 5*time.Second)
	if string(m2.Data) != e.get(e.b.Key(id2)) {
		t.Fatalf("StoreMeta published %q, stored %q", m2.Data, e.get(e.b.Key(id2)))
	}
	got, err := e.b.Get(ctx(), id2)
	if err != nil || got.Status != celery.StateSuccess || string(got.Result) != "[1,2]" && string(got.Result) != "[1, 2]" || got.TaskID != id2 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

func TestStoreNeverOverwritesSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	id := newID()
	key := e.b.Key(id)
	sub := subscribe(t, e.ropts, key)

	// STARTED, RETRY and FAILURE overwrite one another; each is published.
	for _, st := range []string{"STARTED", "RETRY", "FAILURE", "STARTED", "SUCCESS"} {
		r := rec(id, st, `{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`)
		if n := e.store(r); n != 1 {
			t.Fatalf("Store %s = %d, want 1", st, n)
		}
		if got := e.get(key); got != string(r.Meta) {
			t.Fatalf("after %s: stored %s", st, got)
		}
		if m := sub.next(t, 5*time.Second); string(m.Data) != string(r.Meta) {
			t.Fatalf("after %s: published %s", st, m.Data)
		}
	}
	success := e.get(key)
	ttlBefore, _ := redis.Int(e.do("PTTL", key), nil)
	for _, st := range []string{"FAILURE", "RETRY", "STARTED", "SUCCESS", "REVOKED"} {
		if n := e.store(rec(id, st, "42")); n != 0 {
			t.Fatalf("Store %s over SUCCESS = %d, want 0", st, n)
		}
	}
	if got := e.get(key); got != success {
		t.Fatalf("SUCCESS was overwritten: %s", got)
	}
	if ttl, _ := redis.Int(e.do("PTTL", key), nil); ttl > ttlBefore {
		t.Fatalf("skipped stores refreshed the TTL (%d > %d)", ttl, ttlBefore)
	}
	// Nothing was published for the skipped stores: the next message on the
	// channel is our marker.
	e.do("PUBLISH", key, "marker")
	if m := sub.next(t, 5*time.Second); string(m.Data) != "marker" {
		t.Fatalf("a skipped store published %s", m.Data)
	}

	// A corrupt value is not a SUCCESS: it is overwritten.
	id2 := newID()
	e.do("SET", e.b.Key(id2), `{"status": "SUCC`)
	if n := e.store(rec(id2, "FAILURE", "null")); n != 1 {
		t.Fatalf("Store over a corrupt value = %d", n)
	}
	// A stored FAILURE is not protected: a later SUCCESS (a retried
	// delivery) replaces it.
	id3 := newID()
	e.store(rec(id3, "FAILURE", `{"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}`))
	if n := e.store(rec(id3, "SUCCESS", "1")); n != 1 {
		t.Fatalf("SUCCESS over FAILURE = %d", n)
	}
}

func TestStoreBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	const n = 500
	var recs []backend.Record
	var ids []string
	for i := range n {
		id := newID()
		ids = append(ids, id)
		status := "SUCCESS"
		if i%3 == 1 {
			status = "STARTED"
		}
		recs = append(recs, rec(id, status, `{"i": `+strings.Repeat("1", i%5+1)+`}`))
	}
	// Pre-store a SUCCESS for one of them: the batch skips just that one.
	keep := rec(ids[7], "SUCCESS", `"kept"`)
	e.store(keep)
	if got := e.store(recs...); got != n-1 {
		t.Fatalf("batch Store = %d, want %d", got, n-1)
	}
	// A duplicate id within one batch: the first SUCCESS wins.
	dup := newID()
	if got := e.store(rec(dup, "SUCCESS", "1"), rec(dup, "FAILURE", "null")); got != 1 {
		t.Fatalf("duplicate batch = %d, want 1", got)
	}
	metas, err := e.b.GetMany(ctx(), append(ids, dup))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range metas[:n] {
		want := recs[i]
		if i == 7 {
			want = keep
		}
		if m == nil || m.TaskID != ids[i] || e.get(e.b.Key(ids[i])) != string(want.Meta) {
			t.Fatalf("record %d: %+v", i, m)
		}
		ttl, _ := redis.Int(e.do("TTL", e.b.Key(ids[i])), nil)
		if ttl <= 0 {
			t.Fatalf("record %d has TTL %d", i, ttl)
		}
	}
	if metas[n].Status != celery.StateSuccess || string(metas[n].Result) != "1" {
		t.Fatalf("duplicate: %+v", metas[n])
	}
}

func TestGetManyAndGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	a, b, missing := newID(), newID(), newID()
	e.store(rec(a, "SUCCESS", `{"x": [1, 2.5, null, "s"]}`), rec(b, "FAILURE", `{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`))
	metas, err := e.b.GetMany(ctx(), []string{a, missing, b})
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 3 || metas[0] == nil || metas[1] != nil || metas[2] == nil {
		t.Fatalf("GetMany = %+v", metas)
	}
	if metas[0].Status != celery.StateSuccess || metas[0].TaskID != a || metas[0].DateDone == nil {
		t.Fatalf("a = %+v", metas[0])
	}
	var v map[string]any
	if err := json.Unmarshal(metas[0].Result, &v); err != nil || len(v["x"].([]any)) != 4 {
		t.Fatalf("a result %s", metas[0].Result)
	}
	exc, err := metas[2].Exception()
	if err != nil || exc.Type != "ValueError" || exc.Module != "builtins" || !strings.Contains(exc.Traceback, "ValueError: boom") {
		t.Fatalf("b exception %+v, %v", exc, err)
	}
	if _, err := e.b.Get(ctx(), missing); !errors.Is(err, backend.ErrNoResult) {
		t.Fatalf("Get(missing) = %v, want ErrNoResult", err)
	}
	if m, err := e.b.Get(ctx(), a); err != nil || m.TaskID != a {
		t.Fatalf("Get(a) = %+v, %v", m, err)
	}
	if metas, err := e.b.GetMany(ctx(), nil); err != nil || metas != nil {
		t.Fatalf("GetMany(nil) = %v, %v", metas, err)
	}
}

func TestGetCorruptValueNamesTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	good, bad, nostatus := newID(), newID(), newID()
	e.store(rec(good, "SUCCESS", "1"))
	e.do("SET", e.b.Key(bad), "\x80not json")
	e.do("SET", e.b.Key(nostatus), `{"result": 1, "task_id": "x"}`)
	for _, id := range []string{bad, nostatus} {
		_, err := e.b.Get(ctx(), id)
		if err == nil || !strings.Contains(err.Error(), id) {
			t.Fatalf("Get(corrupt %s) = %v, want an error naming the task", id, err)
		}
		if errors.Is(err, backend.ErrNoResult) {
			t.Fatalf("corrupt value reported as missing")
		}
	}
	metas, err := e.b.GetMany(ctx(), []string{good, bad})
	if err == nil || !strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), good) {
		t.Fatalf("GetMany error = %v", err)
	}
	if len(metas) != 2 || metas[0] == nil || metas[0].TaskID != good {
		t.Fatalf("GetMany returned %+v with the error; want the good one", metas)
	}
}

func TestKeyPrefix(t *testing.T) {
	t.Parallel()
	for prefix, want := range map[string]string{
		"":       "celery-task-meta-ID",
		"pfx":    "pfx_celery-task-meta-ID",
		"pfx:":   "pfx:celery-task-meta-ID",
		"pfx_":   "pfx_celery-task-meta-ID",
		"pfx-":   "pfx-celery-task-meta-ID",
		"pfx.":   "pfx.celery-task-meta-ID",
		"a:b/c":  "a:b/c_celery-task-meta-ID",
		"x.y:z_": "x.y:z_celery-task-meta-ID",
	} {
		pool, _ := redisPool(t)
		if got := backend.New(pool, backend.Options{KeyPrefix: prefix}).Key("ID"); got != want {
			t.Errorf("KeyPrefix %q: Key = %q, want %q", prefix, got, want)
		}
	}
	// Stores, reads and waits all use the prefixed key.
	pfx := "qagen-test-" + newID()[:8]
	e := newEnv(t, backend.Options{KeyPrefix: pfx})
	id := newID()
	e.store(rec(id, "SUCCESS", "7"))
	if e.get(pfx+"_celery-task-meta-"+id) == "" || e.get("celery-task-meta-"+id) != "" {
		t.Fatal("stored under the wrong key")
	}
	if m, err := e.b.Get(ctx(), id); err != nil || string(m.Result) != "7" {
		t.Fatalf("Get = %+v, %v", m, err)
	}
	id2 := newID()
	c, cancel := context.WithTimeout(ctx(), 10*time.Second)
	defer cancel()
	res := make(chan *celery.ResultMeta, 1)
	go func() {
		m, err := e.b.WaitFor(c, id2)
		if err != nil {
			t.Error(err)
		}
		res <- m
	}()
	eventually(t, "subscription", 5*time.Second, func() bool { return e.numsub(pfx+"_celery-task-meta-"+id2) == 1 })
	e.store(rec(id2, "SUCCESS", "8"))
	if m := <-res; m == nil || string(m.Result) != "8" {
		t.Fatalf("WaitFor = %+v", m)
	}
}

func TestSubscribeWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	before, startedBefore, after, retried, other := newID(), newID(), newID(), newID(), newID()
	e.store(rec(before, "SUCCESS", `"early"`), rec(startedBefore, "STARTED", `{"pid": 1, "hostname": "w@h"}`))

	s, err := e.b.Subscribe(ctx(), before, startedBefore, after)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Add(retried); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var updates []string
	seen := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range updates {
			if u == s {
				return true
			}
		}
		return false
	}
	type result struct {
		done map[string]*celery.ResultMeta
		err  error
	}
	res := make(chan result, 1)
	c, cancel := context.WithTimeout(ctx(), 20*time.Second)
	defer cancel()
	go func() {
		done, err := s.Wait(c, func(m *celery.ResultMeta) {
			mu.Lock()
			updates = append(updates, m.TaskID+" "+string(m.Status))
			mu.Unlock()
		})
		res <- result{done, err}
	}()
	// The GET pass reports what was there before.
	eventually(t, "the GET pass", 5*time.Second, func() bool {
		return seen(before+" SUCCESS") && seen(startedBefore+" STARTED")
	})
	// Now only PUBLISH can deliver.
	e.store(rec(retried, "RETRY", `{"exc_type": "ValueError", "exc_message": ["again"], "exc_module": "builtins"}`))
	e.store(rec(other, "SUCCESS", "0")) // not subscribed
	e.do("PUBLISH", e.b.Key(after), "garbage that is not a meta")
	e.do("PUBLISH", e.b.Key(after), meta(other, "SUCCESS", "0")) // wrong task on the channel
	e.store(rec(startedBefore, "SUCCESS", `"late"`))
	eventually(t, "the RETRY update", 5*time.Second, func() bool { return seen(retried + " RETRY") })
	select {
	case r := <-res:
		t.Fatalf("Wait returned before every result was ready: %v %v", r.done, r.err)
	default:
	}
	e.store(rec(after, "FAILURE", `{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`))
	e.store(rec(retried, "SUCCESS", `"finally"`))

	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := map[string]string{before: `"early"`, startedBefore: `"late"`, retried: `"finally"`}
	for id, result := range want {
		if m := r.done[id]; m == nil || m.Status != celery.StateSuccess || string(m.Result) != result {
			t.Errorf("%s: %+v", id, m)
		}
	}
	if m := r.done[after]; m == nil || m.Status != celery.StateFailure {
		t.Errorf("after: %+v", m)
	}
	if len(r.done) != 4 {
		t.Errorf("done has %d entries: %v", len(r.done), r.done)
	}
	for _, u := range []string{retried + " RETRY", retried + " SUCCESS", after + " FAILURE", startedBefore + " SUCCESS"} {
		if !seen(u) {
			t.Errorf("onUpdate never saw %s; saw %v", u, updates)
		}
	}
	if seen(other + " SUCCESS") {
		t.Errorf("onUpdate saw a task nobody waits for")
	}
}

func TestWaitAllStoredBefore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	ids := []string{newID(), newID(), newID()}
	for _, id := range ids {
		e.store(rec(id, "SUCCESS", "1"))
	}
	s, err := e.b.Subscribe(ctx(), ids...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	c, cancel := context.WithTimeout(ctx(), 10*time.Second)
	defer cancel()
	done, err := s.Wait(c, nil)
	if err != nil || len(done) != 3 {
		t.Fatalf("Wait = %v, %v", done, err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("Wait took %v for stored results", time.Since(start))
	}
}

func TestWaitCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	ready, never := newID(), newID()
	e.store(rec(ready, "SUCCESS", "1"))
	for _, how := range []string{"cancel", "deadline"} {
		s, err := e.b.Subscribe(ctx(), ready, never)
		if err != nil {
			t.Fatal(err)
		}
		var c context.Context
		var cancel context.CancelFunc
		if how == "cancel" {
			c, cancel = context.WithCancel(ctx())
			time.AfterFunc(100*time.Millisecond, cancel)
		} else {
			c, cancel = context.WithTimeout(ctx(), 100*time.Millisecond)
		}
		start := time.Now()
		done, err := s.Wait(c, nil)
		el := time.Since(start)
		cancel()
		want := context.Canceled
		if how == "deadline" {
			want = context.DeadlineExceeded
		}
		if !errors.Is(err, want) {
			t.Fatalf("%s: Wait error = %v, want %v", how, err, want)
		}
		if el > 2*time.Second {
			t.Fatalf("%s: Wait took %v to notice", how, el)
		}
		if done[ready] == nil || len(done) != 1 {
			t.Fatalf("%s: results gathered so far = %v", how, done)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	// Already cancelled before waiting.
	s, err := e.b.Subscribe(ctx(), never)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, cancel := context.WithCancel(ctx())
	cancel()
	if _, err := s.Wait(c, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v", err)
	}
	// WaitFor too.
	c, cancel = context.WithTimeout(ctx(), 100*time.Millisecond)
	defer cancel()
	if m, err := e.b.WaitFor(c, never); !errors.Is(err, context.DeadlineExceeded) || m != nil {
		t.Fatalf("WaitFor = %+v, %v", m, err)
	}
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	stored := newID()
	e.store(rec(stored, "SUCCESS", `"now"`))
	c0, cancel0 := context.WithTimeout(ctx(), 10*time.Second)
	defer cancel0()
	m, err := e.b.WaitFor(c0, stored)
	if err != nil || string(m.Result) != `"now"` {
		t.Fatalf("WaitFor stored = %+v, %v", m, err)
	}
	later := newID()
	go func() {
		eventually(t, "subscription", 5*time.Second, func() bool { return e.numsub(e.b.Key(later)) == 1 })
		e.store(rec(later, "STARTED", "null"))
		e.store(rec(later, "REVOKED", `{"exc_type": "TaskRevokedError", "exc_message": ["revoked"], "exc_module": "celery.exceptions"}`))
	}()
	c, cancel := context.WithTimeout(ctx(), 10*time.Second)
	defer cancel()
	m, err = e.b.WaitFor(c, later)
	if err != nil || m.Status != celery.StateRevoked || m.TaskID != later {
		t.Fatalf("WaitFor later = %+v, %v", m, err)
	}
}

// TestWaitManyConcurrent stores results from several goroutines while one
// subscription waits for all of them.
func TestWaitManyConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID()
	}
	// Some are ready before anyone subscribes.
	for _, id := range ids[:50] {
		e.store(rec(id, "SUCCESS", "1"))
	}
	s, err := e.b.Subscribe(ctx(), ids...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []backend.Record
			for i := 50 + w; i < n; i += 4 {
				batch = append(batch, rec(ids[i], "STARTED", "null"), rec(ids[i], "SUCCESS", "2"))
				if len(batch) >= 16 {
					if _, err := e.b.Store(ctx(), batch...); err != nil {
						t.Error(err)
					}
					batch = batch[:0]
				}
			}
			if _, err := e.b.Store(ctx(), batch...); err != nil {
				t.Error(err)
			}
		}()
	}
	c, cancel := context.WithTimeout(ctx(), 20*time.Second)
	defer cancel()
	done, err := s.Wait(c, nil)
	wg.Wait()
	if err != nil || len(done) != n {
		t.Fatalf("Wait = %d results, %v", len(done), err)
	}
}
