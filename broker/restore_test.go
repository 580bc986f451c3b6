package broker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/broker"
)

// redelivered decodes a restored envelope and reports its flags and tag.
func redelivered(t *testing.T, raw string) (headers, info bool, tag string, env map[string]any) {
	t.Helper()
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		t.Fatalf("restored envelope is not JSON: %v: %s", err, raw)
	}
	props, _ := env["properties"].(map[string]any)
	h, _ := env["headers"].(map[string]any)
	di, _ := props["delivery_info"].(map[string]any)
	headers, _ = h["redelivered"].(bool)
	info, _ = di["redelivered"].(bool)
	tag, _ = props["delivery_tag"].(string)
	return headers, info, tag, env
}

// TestRestorePriority9LikeKombu54 replays the captured kombu 5.5.4 restore:
// the message goes back to its priority list, at the front, flagged
// redelivered, with the same delivery tag.
func TestRestorePriority9LikeKombu54(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	want := bytes.TrimRight(fixture(t, "celery-5.5.3/broker/restore_priority9.json"), "\n")
	// The envelope before the restore is the fixture without the flags.
	var env map[string]any
	if err := json.Unmarshal(want, &env); err != nil {
		t.Fatal(err)
	}
	delete(env["headers"].(map[string]any), "redelivered")
	delete(env["properties"].(map[string]any)["delivery_info"].(map[string]any), "redelivered")
	orig, _ := json.Marshal(env)
	list := "qa_generation" + sep + "9"
	e.do("LPUSH", e.k(list), orig)

	ds := e.fetch([]string{"qa_generation"}, 1)
	if len(ds) != 1 || ds[0].Tag != "5b7cde5e-7767-4516-9feb-275065a46883" || ds[0].List != list {
		t.Fatalf("fetch %+v", ds)
	}
	// Another message arrives meanwhile; the restored one must be ahead of it.
	other := envelope("other", "", "qa_generation", 9)
	e.do("LPUSH", e.k(list), other)

	n, err := e.b.Restore(ctx(), ds[0].Tag)
	if err != nil || n != 1 {
		t.Fatalf("Restore = %d, %v", n, err)
	}
	got := e.list(list)
	if len(got) != 2 || got[1] != string(other) {
		t.Fatalf("list after restore (consumption order) = %q", got)
	}
	if !jsonEqual(t, []byte(got[0]), want) {
		t.Fatalf("restored envelope\n got %s\nwant %s", got[0], want)
	}
	if e.queueLen("qa_generation") != 2 || len(e.list("qa_generation")) != 0 {
		t.Fatal("restore went to the wrong list (kombu 5.2.4 used the base list; we follow kombu >= 5.4)")
	}
	if e.unackedCount() != 0 || e.int("ZCARD", e.k("unacked_index")) != 0 {
		t.Fatal("restored tag is still in unacked")
	}
	// The next fetch gets the restored message, same tag, flagged.
	ds = e.fetch([]string{"qa_generation"}, 1)
	h, i, tag, _ := redelivered(t, string(ds[0].Raw))
	if !h || !i || tag != "5b7cde5e-7767-4516-9feb-275065a46883" {
		t.Fatalf("refetched %s", ds[0].Raw)
	}
	if !strings.Contains(e.unacked(tag), `"redelivered": true`) && !strings.Contains(e.unacked(tag), `"redelivered":true`) {
		t.Fatalf("unacked value lost the flags: %s", e.unacked(tag))
	}
}

func TestRestoreFrontRequeueBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	e.publish(msg("a", "Q", 0), msg("b", "Q", 0), msg("c", "Q", 0), msg("d", "Q", 0))
	ds := e.fetch([]string{"Q"}, 2) // a, b; c and d wait
	if strings.Join(tags(ds), ",") != "a,b" {
		t.Fatalf("fetched %v", tags(ds))
	}
	if n, err := e.b.Restore(ctx(), "a"); err != nil || n != 1 {
		t.Fatalf("Restore = %d, %v", n, err)
	}
	if n, err := e.b.Requeue(ctx(), "b"); err != nil || n != 1 {
		t.Fatalf("Requeue = %d, %v", n, err)
	}
	// a at the front (RPUSH), b at the back (LPUSH).
	var order []string
	for _, raw := range e.list("Q") {
		h, i, tag, _ := redelivered(t, raw)
		order = append(order, tag)
		if want := tag == "a" || tag == "b"; h != want || i != want {
			t.Errorf("%s: redelivered flags headers=%v delivery_info=%v", tag, h, i)
		}
	}
	if strings.Join(order, ",") != "a,c,d,b" {
		t.Fatalf("queue order = %v, want a,c,d,b", order)
	}
	// The next BRPOP gets the restored message.
	d, err := e.b.FetchBlocking(ctx(), []string{"Q"}, time.Second)
	if err != nil || d == nil || d.Tag != "a" {
		t.Fatalf("FetchBlocking after restore = %+v, %v", d, err)
	}
	if e.unacked("b") != "" {
		t.Fatal("requeued tag still unacked")
	}
	// Restoring a tag that was acked, or never delivered, does nothing.
	if err := e.b.Ack(ctx(), "a"); err != nil {
		t.Fatal(err)
	}
	before := e.queueLen("Q")
	if n, err := e.b.Restore(ctx(), "a", "never-delivered"); err != nil || n != 0 {
		t.Fatalf("Restore of acked tags = %d, %v", n, err)
	}
	if n, err := e.b.Requeue(ctx(), "a"); err != nil || n != 0 {
		t.Fatalf("Requeue of an acked tag = %d, %v", n, err)
	}
	if e.queueLen("Q") != before {
		t.Fatal("restoring an acked tag pushed something")
	}
	if n, err := e.b.Restore(ctx()); err != nil || n != 0 {
		t.Fatalf("Restore() = %d, %v", n, err)
	}
	if len(e.deadLetters()) != 0 {
		t.Fatal("unexpected dead letters")
	}
}

func TestRestoreKeepsOtherFieldsAndPriority(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	for _, p := range []int{0, 4, 7, 9} {
		e.publish(msg("p"+string(rune('0'+p)), "Q", p))
	}
	ds := e.fetch([]string{"Q"}, 10)
	if n, err := e.b.Restore(ctx(), tags(ds)...); err != nil || n != 4 {
		t.Fatalf("Restore = %d, %v", n, err)
	}
	for _, c := range []struct {
		list, tag string
		prio      int
	}{{"Q", "p0", 0}, {"Q" + sep + "3", "p4", 4}, {"Q" + sep + "6", "p7", 7}, {"Q" + sep + "9", "p9", 9}} {
		l := e.list(c.list)
		if len(l) != 1 {
			t.Fatalf("list %q = %q", c.list, l)
		}
		_, _, tag, env := redelivered(t, l[0])
		if tag != c.tag {
			t.Fatalf("list %q holds %s, want %s", c.list, tag, c.tag)
		}
		// Everything but the two flags is unchanged.
		delete(env["headers"].(map[string]any), "redelivered")
		delete(env["properties"].(map[string]any)["delivery_info"].(map[string]any), "redelivered")
		back, _ := json.Marshal(env)
		if !jsonEqual(t, back, envelope(c.tag, "", "Q", c.prio)) {
			t.Errorf("restored %s changed:\n got %s\nwant %s", c.tag, back, envelope(c.tag, "", "Q", c.prio))
		}
	}
}

func TestRestoreThroughNamedExchange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	// Direct binding: celery -> routing key "rk" -> queue "target".
	e.do("SADD", e.k("_kombu.binding.direct_ex"), "rk"+sep+sep+"target", "other"+sep+sep+"elsewhere")
	// Topic binding with kombu's regex pattern.
	e.do("SADD", e.k("_kombu.binding.topic_ex"), `a.#`+sep+`^a\.(.*)?$`+sep+"topic_target", `b.*`+sep+`^b\.[^.]+$`+sep+"nope")
	e.do("LPUSH", e.k("src"),
		envelope("direct", "direct_ex", "rk", 0),
		envelope("topic", "topic_ex", "a.x.y", 3),
		envelope("unbound", "direct_ex", "no-such-key", 0),
		envelope("noexchange", "ghost_ex", "rk", 0))
	ds := e.fetch([]string{"src"}, 10)
	if len(ds) != 4 {
		t.Fatalf("fetched %d", len(ds))
	}
	for _, d := range ds {
		var entry []json.RawMessage
		if err := json.Unmarshal([]byte(e.unacked(d.Tag)), &entry); err != nil || len(entry) != 3 {
			t.Fatalf("unacked %s: %v", d.Tag, err)
		}
		var ex, rk string
		json.Unmarshal(entry[1], &ex)
		json.Unmarshal(entry[2], &rk)
		if d.Tag == "direct" && (ex != "direct_ex" || rk != "rk") {
			t.Fatalf("unacked exchange/routing key = %q/%q", ex, rk)
		}
	}
	n, err := e.b.Restore(ctx(), "direct", "topic", "unbound", "noexchange")
	if err != nil || n != 2 {
		t.Fatalf("Restore = %d, %v; want 2", n, err)
	}
	if l := e.list("target"); len(l) != 1 || !strings.Contains(l[0], `"delivery_tag": "direct"`) && !strings.Contains(l[0], `"delivery_tag":"direct"`) {
		t.Fatalf("target = %q", l)
	}
	if l := e.list("topic_target" + sep + "3"); len(l) != 1 {
		t.Fatalf("topic_target priority list = %q", l)
	}
	if e.queueLen("src") != 0 || e.queueLen("elsewhere") != 0 || e.queueLen("nope") != 0 {
		t.Fatal("restore went to a queue that is not bound")
	}
	// The unroutable ones are dead-lettered (kombu would drop them), and
	// gone from unacked.
	if c := e.unackedCount(); c != 0 {
		t.Fatalf("UnackedCount = %d", c)
	}
	if c := e.int("ZCARD", e.k("unacked_index")); c != 0 {
		t.Fatalf("unacked_index holds %d", c)
	}
	recs := e.deadLetters()
	if len(recs) != 2 {
		t.Fatalf("dead letters %+v", recs)
	}
	got := map[string]bool{}
	for _, r := range recs {
		if r.Reason != "cannot restore" || !strings.Contains(r.Error, "no queue bound") {
			t.Errorf("dead record %+v", r)
		}
		var entry []json.RawMessage
		if err := json.Unmarshal([]byte(r.Message), &entry); err != nil || len(entry) != 3 {
			t.Errorf("dead record message is not the unacked value: %s", r.Message)
			continue
		}
		var env struct {
			Properties struct {
				DeliveryTag string `json:"delivery_tag"`
			} `json:"properties"`
		}
		json.Unmarshal(entry[0], &env)
		got[env.Properties.DeliveryTag] = true
	}
	if !got["unbound"] || !got["noexchange"] {
		t.Fatalf("dead-lettered %v, want unbound and noexchange", got)
	}
}

func TestRestoreCorruptUnackedValue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	e.do("HSET", e.k("unacked"), "corrupt", "not json", "short", `[{"properties": {}}, ""]`)
	e.do("ZADD", e.k("unacked_index"), 1, "corrupt", 1, "short")
	n, err := e.b.Restore(ctx(), "corrupt", "short")
	if err != nil || n != 0 {
		t.Fatalf("Restore = %d, %v", n, err)
	}
	if e.unackedCount() != 0 || e.int("ZCARD", e.k("unacked_index")) != 0 {
		t.Fatal("corrupt entries left in unacked")
	}
	recs := e.deadLetters()
	if len(recs) != 2 {
		t.Fatalf("dead letters %+v", recs)
	}
	for _, r := range recs {
		if r.Reason != "cannot restore" || r.Message == "" || r.Error == "" {
			t.Errorf("dead record %+v", r)
		}
	}
}

func TestRestoreVisible(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, broker.Options{VisibilityTimeout: 20 * time.Second})
	e.publish(msg("old1", "Q", 0), msg("old2", "Q", 9))
	e.fetch([]string{"Q"}, 10)
	e.clock.Advance(15 * time.Second)
	e.publish(msg("young", "Q", 0))
	e.fetch([]string{"Q"}, 10)
	// An index entry without a hash value (a consumer died between writes).
	e.do("ZADD", e.k("unacked_index"), 1000, "orphan")

	e.clock.Advance(10 * time.Second) // old ones 25 s old, young 10 s
	mon := startMonitor(t, e.ropts, e.prefix)
	n, err := e.b.RestoreVisible(ctx())
	if err != nil || n != 2 {
		t.Fatalf("RestoreVisible = %d, %v; want 2", n, err)
	}
	if e.unacked("young") == "" {
		t.Fatal("a delivery younger than the visibility timeout was restored")
	}
	if _, ok := e.score("orphan"); ok {
		t.Fatal("orphan index entry was not dropped")
	}
	for _, tag := range []string{"old1", "old2"} {
		if e.unacked(tag) != "" {
			t.Errorf("%s still unacked", tag)
		}
	}
	if l := e.list("Q"); len(l) != 1 || !strings.Contains(l[0], "old1") {
		t.Fatalf("Q = %q", l)
	}
	if l := e.list("Q" + sep + "9"); len(l) != 1 || !strings.Contains(l[0], "old2") {
		t.Fatalf("Q:9 = %q", l)
	}
	h, i, _, _ := redelivered(t, e.list("Q")[0])
	if !h || !i {
		t.Fatal("visibility restore did not flag redelivered")
	}
	// Mutex taken (with kombu's expiry), index scanned below now - timeout,
	// mutex released.
	if e.int("EXISTS", e.k("unacked_mutex")) != 0 {
		t.Fatal("unacked_mutex not released")
	}
	sets := mon.waitFor(t, "SET", 1)
	if !strings.HasPrefix(sets[0], `"SET" "`+e.prefix+`unacked_mutex" "`) || !strings.Contains(sets[0], `"PX" "300000"`) || !strings.Contains(sets[0], `"NX"`) {
		t.Fatalf("mutex SET = %s", sets[0])
	}
	scan := mon.waitFor(t, "ZREVRANGEBYSCORE", 1)
	ceil := float64(e.clock.Now().UnixMicro())/1e6 - 20
	if !strings.HasPrefix(scan[0], `"ZREVRANGEBYSCORE" "`+e.prefix+`unacked_index" "`) || !strings.Contains(scan[0], `" "0"`) {
		t.Fatalf("scan = %s", scan[0])
	}
	if gotCeil, err := monitorArg(scan[0], 2); err != nil || gotCeil < ceil-0.001 || gotCeil > ceil+0.001 {
		t.Fatalf("scan ceiling %v (%v), want %f", gotCeil, err, ceil)
	}

	// Nothing old enough: nothing to do.
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 0 {
		t.Fatalf("second RestoreVisible = %d, %v", n, err)
	}
}

func TestRestoreVisibleSkipsWhileMutexHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, broker.Options{VisibilityTimeout: time.Second})
	e.publish(msg("a", "Q", 0))
	e.fetch([]string{"Q"}, 1)
	e.clock.Advance(5 * time.Second)
	e.do("SET", e.k("unacked_mutex"), "someone-else", "PX", 60000)
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 0 {
		t.Fatalf("RestoreVisible under a foreign mutex = %d, %v", n, err)
	}
	if e.unacked("a") == "" || e.queueLen("Q") != 0 {
		t.Fatal("restored although another consumer holds the mutex")
	}
	if v, _ := e.do("GET", e.k("unacked_mutex")).([]byte); string(v) != "someone-else" {
		t.Fatalf("foreign mutex was touched: %q", v)
	}
	e.do("DEL", e.k("unacked_mutex"))
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 1 {
		t.Fatalf("RestoreVisible after release = %d, %v", n, err)
	}
}

func TestRestoreVisibleLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, broker.Options{VisibilityTimeout: time.Second, RestoreLimit: 2})
	for _, tag := range []string{"m1", "m2", "m3"} {
		e.publish(msg(tag, "Q", 0))
		e.fetch([]string{"Q"}, 1)
		e.clock.Advance(time.Second)
	}
	e.clock.Advance(5 * time.Second)
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 2 {
		t.Fatalf("RestoreVisible with limit 2 = %d, %v", n, err)
	}
	// ZREVRANGEBYSCORE: the newest old-enough entries go first, as in kombu.
	if e.unacked("m1") == "" || e.unacked("m2") != "" || e.unacked("m3") != "" {
		t.Fatal("limit did not restore the two newest entries")
	}
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 1 {
		t.Fatalf("second pass = %d, %v", n, err)
	}
}

func TestRestoreVisibleAgedScore(t *testing.T) {
	t.Parallel()
	// Real clock; age the index entry by hand instead.
	e := newEnv(t, false, broker.Options{VisibilityTimeout: time.Second})
	e.publish(msg("a", "Q", 0), msg("b", "Q", 0))
	e.fetch([]string{"Q"}, 2)
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 0 {
		t.Fatalf("RestoreVisible of fresh deliveries = %d, %v", n, err)
	}
	e.age(10*time.Second, "b")
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 1 {
		t.Fatalf("RestoreVisible = %d, %v", n, err)
	}
	if e.unacked("a") == "" || e.unacked("b") != "" {
		t.Fatal("wrong entry restored")
	}
}

// monitorArg returns the i-th (0-based) quoted argument of a MONITOR line
// as a float.
func monitorArg(line string, i int) (float64, error) {
	parts := strings.Split(line, `" "`)
	if i >= len(parts) {
		return 0, fmt.Errorf("MONITOR line %s has no argument %d", line, i)
	}
	return strconv.ParseFloat(strings.Trim(parts[i], `"`), 64)
}
