package backend_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/celery"
)

func intp(i int) *int { return &i }

func (e *env) join(gid string, idx *int, p backend.ChordPart) []backend.ChordPart {
	e.t.Helper()
	parts, err := e.b.JoinChord(ctx(), gid, idx, p)
	if err != nil {
		e.t.Fatalf("JoinChord: %v", err)
	}
	return parts
}

// TestJoinChordLikeCelery replays the captured 5.2.6 chord with two header
// tasks: the .j member bytes, its score and the expiry match, and the last
// join returns the parts in group_index order and deletes the keys.
func TestJoinChordLikeCelery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	gid := newID()
	key := "celery-taskset-meta-" + gid
	if e.b.GroupKey(gid) != key {
		t.Fatalf("GroupKey = %q", e.b.GroupKey(gid))
	}
	e.do("SETEX", key+".s", 86400, "2")
	first := backend.ChordPart{TaskID: "35f2ae99-8672-5eb6-97fc-01748c7399e7", State: celery.StateSuccess, Result: json.RawMessage("2")}
	if parts := e.join(gid, intp(1), backend.ChordPart{TaskID: "dc964b75-b45b-5013-baac-83211fbe9c78", State: celery.StateSuccess, Result: json.RawMessage(`2`)}); parts != nil {
		t.Fatalf("first join completed the chord: %+v", parts)
	}
	// As in snapshots/chord_in_progress.json (member bytes and score).
	got, _ := redis.Strings(e.do("ZRANGE", key+".j", 0, -1, "WITHSCORES"), nil)
	if len(got) != 2 || got[0] != `[1, "dc964b75-b45b-5013-baac-83211fbe9c78", "SUCCESS", 2]` || got[1] != "1" {
		t.Fatalf(".j = %q", got)
	}
	for _, suffix := range []string{".j", ".s"} {
		if ttl, _ := redis.Int(e.do("TTL", key+suffix), nil); ttl < 86390 || ttl > 86400 {
			t.Errorf("TTL %s = %d", suffix, ttl)
		}
	}
	parts := e.join(gid, intp(0), first)
	if len(parts) != 2 || parts[0].TaskID != first.TaskID || parts[1].TaskID != "dc964b75-b45b-5013-baac-83211fbe9c78" {
		t.Fatalf("parts = %+v", parts)
	}
	for _, p := range parts {
		if p.State != celery.StateSuccess || string(p.Result) != "2" {
			t.Errorf("part %+v", p)
		}
	}
	if n, _ := redis.Int(e.do("EXISTS", key+".j", key+".s", key+".t"), nil); n != 0 {
		t.Fatalf("%d chord keys left after completion", n)
	}
}

func TestJoinChordOrderFailuresAndExtra(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	gid := newID()
	key := e.b.GroupKey(gid)
	e.do("SET", key+".s", "3")
	e.do("INCR", key+".t") // one task added with add_to_chord
	exc := json.RawMessage(`{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`)
	joins := []struct {
		idx  *int
		part backend.ChordPart
	}{
		{nil, backend.ChordPart{TaskID: "added", State: celery.StateSuccess, Result: json.RawMessage(`"x"`)}}, // no group_index: +inf
		{intp(2), backend.ChordPart{TaskID: "two", State: celery.StateFailure, Result: exc}},
		{intp(0), backend.ChordPart{TaskID: "zero", State: celery.StateSuccess, Result: json.RawMessage(`{"a": [1, "\u00e9"]}`)}},
		{intp(1), backend.ChordPart{TaskID: "one", State: celery.StateSuccess}}, // nil result is null
	}
	var parts []backend.ChordPart
	for i, j := range joins {
		parts = e.join(gid, j.idx, j.part)
		if i < len(joins)-1 && parts != nil {
			t.Fatalf("join %d completed a chord of 3+1", i)
		}
	}
	var order []string
	for _, p := range parts {
		order = append(order, p.TaskID)
	}
	if strings.Join(order, ",") != "zero,one,two,added" {
		t.Fatalf("order %v, want group_index order with the unindexed last", order)
	}
	if parts[1].Result == nil || string(parts[1].Result) != "null" {
		t.Errorf("nil result stored as %q", parts[1].Result)
	}
	if parts[2].State != celery.StateFailure || !jsonEq(parts[2].Result, exc) {
		t.Errorf("failure part %+v", parts[2])
	}
	if !jsonEq(parts[0].Result, json.RawMessage(`{"a": [1, "é"]}`)) {
		t.Errorf("result %s", parts[0].Result)
	}
}

func jsonEq(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

func TestJoinChordWithoutSize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	gid := newID()
	_, err := e.b.JoinChord(ctx(), gid, intp(0), backend.ChordPart{TaskID: "a", State: celery.StateSuccess})
	if err == nil || !strings.Contains(err.Error(), gid) {
		t.Fatalf("JoinChord without .s = %v, want an error naming the group", err)
	}
}

func TestJoinChordConcurrentFiresOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend.Options{})
	gid := newID()
	const n = 40
	e.do("SET", e.b.GroupKey(gid)+".s", n)
	var mu sync.Mutex
	var completions [][]backend.ChordPart
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts, err := e.b.JoinChord(ctx(), gid, intp(i), backend.ChordPart{TaskID: fmt.Sprint("t", i), State: celery.StateSuccess, Result: json.RawMessage(fmt.Sprint(i))})
			if err != nil {
				t.Error(err)
				return
			}
			if parts != nil {
				mu.Lock()
				completions = append(completions, parts)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(completions) != 1 {
		t.Fatalf("chord completed %d times, want once", len(completions))
	}
	for i, p := range completions[0] {
		if p.TaskID != fmt.Sprint("t", i) || string(p.Result) != fmt.Sprint(i) {
			t.Fatalf("part %d = %+v", i, p)
		}
	}
}
