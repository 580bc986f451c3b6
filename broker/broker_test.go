package broker_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
)

func TestPublishPriorityListsAndBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	want := map[string][]string{} // list -> tags in consumption order
	var msgs []broker.Message
	for _, p := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -3, 42} {
		m := msg(newTag(), "Q", p)
		msgs = append(msgs, m)
		list := map[int]string{0: "Q", 1: "Q", 2: "Q", 3: "Q" + sep + "3", 4: "Q" + sep + "3", 5: "Q" + sep + "3",
			6: "Q" + sep + "6", 7: "Q" + sep + "6", 8: "Q" + sep + "6", 9: "Q" + sep + "9", -3: "Q", 42: "Q" + sep + "9"}[p]
		want[list] = append(want[list], string(m.Body))
	}
	e.publish(msgs...)
	for _, list := range []string{"Q", "Q" + sep + "3", "Q" + sep + "6", "Q" + sep + "9"} {
		got := e.list(list)
		if strings.Join(got, "\n") != strings.Join(want[list], "\n") {
			t.Errorf("list %q:\n got %q\nwant %q", list, got, want[list])
		}
	}
	if n := e.queueLen("Q"); n != len(msgs) {
		t.Errorf("QueueLength = %d, want %d", n, len(msgs))
	}
	// The binding kombu declares for every queue.
	members := e.strings("SMEMBERS", e.k("_kombu.binding.Q"))
	if len(members) != 1 || members[0] != "Q\x06\x16\x06\x16Q" {
		t.Errorf("_kombu.binding.Q = %q, want [\"Q\\x06\\x16\\x06\\x16Q\"]", members)
	}
	// Same member as the captured one (with the fixture's queue name).
	fx := fixture(t, "celery-5.2.6/keys/_kombu.binding.qa_generation.member0.bin")
	if err := e.b.Declare(ctx(), "qa_generation"); err != nil {
		t.Fatal(err)
	}
	members = e.strings("SMEMBERS", e.k("_kombu.binding.qa_generation"))
	if len(members) != 1 || members[0] != string(bytes.TrimRight(fx, "\n")) {
		t.Errorf("_kombu.binding.qa_generation = %q, want fixture %q", members, fx)
	}
	// Nothing was written without the prefix.
	for _, k := range []string{"Q", "_kombu.binding.Q"} {
		if n := e.int("EXISTS", k); n != 0 {
			t.Errorf("unprefixed key %q exists", k)
		}
	}
	// An empty publish is a no-op.
	if err := e.b.Publish(ctx()); err != nil {
		t.Fatal(err)
	}
}

func TestFetchOrderFIFOAndMax(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	e.publish(msg("p9", "Q", 9), msg("p0-a", "Q", 0), msg("p5", "Q", 5), msg("p0-b", "Q", 1), msg("p7", "Q", 7), msg("p0-c", "Q", 0))

	ds := e.fetch([]string{"Q"}, 2)
	if got := strings.Join(tags(ds), ","); got != "p0-a,p0-b" {
		t.Fatalf("first Fetch(max 2) = %s, want p0-a,p0-b", got)
	}
	if n := e.queueLen("Q"); n != 4 {
		t.Fatalf("QueueLength after fetching 2 = %d, want 4", n)
	}
	ds = append(ds, e.fetch([]string{"Q"}, 100)...)
	if got := strings.Join(tags(ds), ","); got != "p0-a,p0-b,p0-c,p5,p7,p9" {
		t.Fatalf("fetch order = %s, want priority 0 first, FIFO within a list, 9 last", got)
	}
	wantList := map[string]string{"p0-a": "Q", "p0-b": "Q", "p0-c": "Q", "p5": "Q" + sep + "3", "p7": "Q" + sep + "6", "p9": "Q" + sep + "9"}
	for _, d := range ds {
		if d.Queue != "Q" || d.List != wantList[d.Tag] || d.DeadLettered {
			t.Errorf("delivery %s: queue %q list %q dead %v", d.Tag, d.Queue, d.List, d.DeadLettered)
		}
		if !bytes.Equal(d.Raw, envelope(d.Tag, "", "Q", map[string]int{"p0-a": 0, "p0-b": 1, "p0-c": 0, "p5": 5, "p7": 7, "p9": 9}[d.Tag])) {
			t.Errorf("delivery %s: raw %s", d.Tag, d.Raw)
		}
	}
	if n := e.unackedCount(); n != 6 {
		t.Fatalf("UnackedCount = %d, want 6", n)
	}
	if n := e.int("ZCARD", e.k("unacked_index")); n != 6 {
		t.Fatalf("ZCARD unacked_index = %d, want 6", n)
	}
	if ds := e.fetch([]string{"Q"}, 10); len(ds) != 0 {
		t.Fatalf("Fetch on empty queue = %v", tags(ds))
	}
	if ds := e.fetch([]string{"Q"}, 0); ds != nil {
		t.Fatalf("Fetch max 0 = %v", ds)
	}
	if ds := e.fetch(nil, 10); ds != nil {
		t.Fatalf("Fetch with no queues = %v", ds)
	}
}

func TestFetchMultiQueueOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	// Step-major: qa and qb at step 0 before either at step 3, and so on;
	// within a step the given queue order.
	e.publish(msg("qa9", "qa", 9), msg("qb3", "qb", 3), msg("qa3", "qa", 4), msg("qb0", "qb", 0), msg("qa0", "qa", 2), msg("qb6", "qb", 6))
	ds := e.fetch([]string{"qa", "qb"}, 10)
	if got := strings.Join(tags(ds), ","); got != "qa0,qb0,qa3,qb3,qb6,qa9" {
		t.Fatalf("order = %s, want qa0,qb0,qa3,qb3,qb6,qa9", got)
	}
	for _, d := range ds {
		if d.Queue != d.Tag[:2] {
			t.Errorf("%s came from queue %q", d.Tag, d.Queue)
		}
		var entry []any
		if err := json.Unmarshal([]byte(e.unacked(d.Tag)), &entry); err != nil || len(entry) != 3 || entry[2] != d.Queue {
			t.Errorf("unacked %s = %v (%v)", d.Tag, entry, err)
		}
	}
}

// TestFetchRegistersLikeKombu feeds the captured envelopes into the queue and
// checks that the unacked entry is byte-identical to what kombu wrote.
func TestFetchRegistersLikeKombu(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"celery-5.2.6", "celery-5.5.3"} {
		for _, blocking := range []bool{false, true} {
			name := version + "/fetch"
			if blocking {
				name = version + "/fetchblocking"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, true, broker.Options{})
				want := bytes.TrimRight(fixture(t, version+"/keys/unacked_inflight.hash_value.0.json"), "\n")
				var entry []json.RawMessage
				if err := json.Unmarshal(want, &entry); err != nil || len(entry) != 3 {
					t.Fatalf("fixture: %v", err)
				}
				raw := []byte(entry[0]) // the envelope exactly as it was in the list
				tag := string(bytes.TrimSpace(fixture(t, version+"/keys/unacked_inflight.index_member.0.txt")))
				e.do("LPUSH", e.k("qa_generation"), raw)
				var d broker.Delivery
				if blocking {
					p, err := e.b.FetchBlocking(ctx(), []string{"qa_generation"}, time.Second)
					if err != nil || p == nil {
						t.Fatalf("FetchBlocking = %v, %v", p, err)
					}
					d = *p
				} else {
					ds := e.fetch([]string{"qa_generation"}, 5)
					if len(ds) != 1 {
						t.Fatalf("Fetch returned %d deliveries", len(ds))
					}
					d = ds[0]
				}
				if d.Tag != tag || d.Queue != "qa_generation" || d.List != "qa_generation" || d.DeadLettered || !bytes.Equal(d.Raw, raw) {
					t.Fatalf("delivery %+v, want tag %s", d, tag)
				}
				if got := e.unacked(tag); got != string(want) {
					t.Fatalf("HGET unacked %s\n got %s\nwant %s", tag, got, want)
				}
				score, ok := e.score(tag)
				wantScore := float64(e.clock.Now().UnixMicro()) / 1e6
				if !ok || math.Abs(score-wantScore) > 1e-5 {
					t.Fatalf("ZSCORE unacked_index = %v (%v), want %f", score, ok, wantScore)
				}
				if time.Since(time.Unix(0, int64(score*1e9))).Abs() > time.Minute {
					t.Fatalf("score %f is not a float epoch near now", score)
				}
			})
		}
	}
}

func TestFetchScoreIsRealEpoch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	e.publish(msg("a", "Q", 0))
	before := float64(time.Now().UnixMicro()) / 1e6
	ds := e.fetch([]string{"Q"}, 1)
	after := float64(time.Now().UnixMicro()) / 1e6
	if len(ds) != 1 {
		t.Fatal("no delivery")
	}
	score, ok := e.score("a")
	if !ok || score < before-0.001 || score > after+0.001 {
		t.Fatalf("score %f not within [%f, %f]", score, before, after)
	}
	// Sub-second precision, as kombu's time() float.
	raw, _ := redis.String(e.do("ZSCORE", e.k("unacked_index"), "a"), nil)
	if !strings.Contains(raw, ".") {
		t.Fatalf("ZSCORE %q has no fractional part", raw)
	}
}

func TestFetchBlockingTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	for _, timeout := range []time.Duration{time.Second, 0} { // 0 is rounded up to 1 s
		start := time.Now()
		d, err := e.b.FetchBlocking(ctx(), []string{"empty-a", "empty-b"}, timeout)
		el := time.Since(start)
		if err != nil || d != nil {
			t.Fatalf("FetchBlocking on empty queues = %+v, %v", d, err)
		}
		if el < 900*time.Millisecond || el > 4*time.Second {
			t.Fatalf("FetchBlocking(timeout %v) returned after %v, want about 1 s", timeout, el)
		}
	}
	if _, err := e.b.FetchBlocking(ctx(), nil, time.Second); err == nil {
		t.Fatal("FetchBlocking with no queues: want an error")
	}
}

func TestFetchBlockingWakesOnPush(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	name := "qagen-test-" + newTag()[:8]
	b := broker.New(namedPool(t, e.ropts, name), broker.Options{KeyPrefix: e.prefix})
	type result struct {
		d   *broker.Delivery
		err error
	}
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		d, err := b.FetchBlocking(ctx(), []string{"qa", "qb"}, 10*time.Second)
		ch <- result{d, err}
	}()
	eventually(t, "the consumer to block in BRPOP", 5*time.Second, func() bool { return e.blockedIn(name, "brpop") })
	select {
	case r := <-ch:
		t.Fatalf("FetchBlocking returned before anything was pushed: %+v %v", r.d, r.err)
	default:
	}
	e.publish(msg("late", "qb", 6))
	select {
	case r := <-ch:
		if r.err != nil || r.d == nil {
			t.Fatalf("FetchBlocking = %+v, %v", r.d, r.err)
		}
		if r.d.Tag != "late" || r.d.Queue != "qb" || r.d.List != "qb"+sep+"6" {
			t.Fatalf("delivery %+v", r.d)
		}
		if time.Since(start) > 8*time.Second {
			t.Fatalf("woke only after %v", time.Since(start))
		}
	case <-time.After(8 * time.Second):
		t.Fatal("FetchBlocking did not wake up on the push")
	}
	if got := e.unacked("late"); !strings.HasPrefix(got, "[") || !strings.HasSuffix(got, `, "", "qb"]`) {
		t.Fatalf("unacked = %q", got)
	}
}

func TestFetchBlockingKeyOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	mon := startMonitor(t, e.ropts, e.prefix)

	// One queue: byte-identical to the captured kombu BRPOP, but prefixed.
	if d, err := e.b.FetchBlocking(ctx(), []string{"qa_generation"}, time.Second); err != nil || d != nil {
		t.Fatalf("FetchBlocking = %v, %v", d, err)
	}
	fx := strings.TrimSpace(string(fixture(t, "celery-5.2.6/broker/v2_priority9.worker_brpop.txt")))
	want := strings.ReplaceAll(fx, `"qa_generation`, `"`+e.prefix+`qa_generation`)
	if got := mon.waitFor(t, "BRPOP", 1)[0]; got != want {
		t.Fatalf("BRPOP\n got %s\nwant %s", got, want)
	}

	// Two queues: all queues at step 0, then all at step 3, ...
	if d, err := e.b.FetchBlocking(ctx(), []string{"qa", "qb"}, time.Second); err != nil || d != nil {
		t.Fatalf("FetchBlocking = %v, %v", d, err)
	}
	p := e.prefix
	want = `"BRPOP" "` + p + `qa" "` + p + `qb" "` + p + `qa\x06\x163" "` + p + `qb\x06\x163" "` + p + `qa\x06\x166" "` + p + `qb\x06\x166" "` + p + `qa\x06\x169" "` + p + `qb\x06\x169" "1"`
	if got := mon.waitFor(t, "BRPOP", 2)[1]; got != want {
		t.Fatalf("BRPOP\n got %s\nwant %s", got, want)
	}

	// And the behaviour that follows from it.
	e.publish(msg("qa3", "qa", 3), msg("qb0", "qb", 0), msg("qa0", "qa", 0))
	for _, want := range []string{"qa0", "qb0", "qa3"} {
		d, err := e.b.FetchBlocking(ctx(), []string{"qa", "qb"}, time.Second)
		if err != nil || d == nil || d.Tag != want || d.Queue != want[:2] {
			t.Fatalf("FetchBlocking = %+v, %v; want %s", d, err, want)
		}
	}
}

func TestUnreadableEnvelopesAreDeadLettered(t *testing.T) {
	t.Parallel()
	bad := []struct {
		raw, why string
	}{
		{`this is not json {`, "envelope is not JSON"},
		{`["a", "list"]`, "envelope has no properties.delivery_tag"},
		{`{"body": "", "properties": {"delivery_info": {"exchange": "", "routing_key": "Q"}}}`, "envelope has no properties.delivery_tag"},
		{`{"body": "", "properties": {"delivery_tag": 5, "delivery_info": {"exchange": "", "routing_key": "Q"}}}`, "envelope has no properties.delivery_tag"},
		{`{"body": "", "properties": {"delivery_tag": "", "delivery_info": {"exchange": "", "routing_key": "Q"}}}`, "envelope has no properties.delivery_tag"},
		{`{"body": "", "properties": "x"}`, "envelope has no properties.delivery_tag"},
		// A tag that is not where kombu reads it (properties.delivery_tag)
		// would make a Python worker raise KeyError.
		{`{"body": "", "headers": {"delivery_tag": "in-headers"}, "properties": {"delivery_info": {"exchange": "", "routing_key": "Q"}}}`, "envelope has no properties.delivery_tag"},
	}
	for _, blocking := range []bool{false, true} {
		e := newEnv(t, false, broker.Options{})
		var msgs []broker.Message
		for i, b := range bad {
			msgs = append(msgs, broker.Message{Queue: "Q", Body: []byte(b.raw)})
			if i == 2 {
				msgs = append(msgs, msg("good", "Q", 0))
			}
		}
		e.publish(msgs...)
		var ds []broker.Delivery
		if blocking {
			for range msgs {
				d, err := e.b.FetchBlocking(ctx(), []string{"Q"}, time.Second)
				if err != nil || d == nil {
					t.Fatalf("FetchBlocking = %v, %v", d, err)
				}
				ds = append(ds, *d)
			}
		} else {
			ds = e.fetch([]string{"Q"}, 100)
		}
		if len(ds) != len(msgs) {
			t.Fatalf("got %d deliveries, want %d", len(ds), len(msgs))
		}
		var dead []broker.Delivery
		for _, d := range ds {
			if string(d.Raw) == string(envelope("good", "", "Q", 0)) {
				if d.DeadLettered || d.Tag != "good" {
					t.Fatalf("good message: %+v", d)
				}
				continue
			}
			if !d.DeadLettered || d.Tag != "" || d.Queue != "Q" {
				t.Errorf("bad message %q: delivery %+v, want DeadLettered", d.Raw, d)
			}
			dead = append(dead, d)
		}
		if n := e.unackedCount(); n != 1 {
			t.Errorf("UnackedCount = %d, want 1 (only the good message)", n)
		}
		if n := e.int("ZCARD", e.k("unacked_index")); n != 1 {
			t.Errorf("ZCARD unacked_index = %d, want 1", n)
		}
		if n := e.queueLen("Q"); n != 0 {
			t.Errorf("QueueLength = %d", n)
		}
		if len(dead) != len(bad) {
			t.Errorf("%d deliveries flagged DeadLettered, want %d", len(dead), len(bad))
		}
		recs := e.deadLetters()
		if len(recs) != len(bad) {
			t.Fatalf("%d dead letters, want %d: %+v", len(recs), len(bad), recs)
		}
		// Newest first: the reverse of the order they were popped in.
		for i, b := range bad {
			r := recs[len(recs)-1-i]
			if r.Message != b.raw || r.Reason != "unreadable envelope" || r.Error != b.why || r.Queue != "Q" {
				t.Errorf("dead record %d = %+v, want message %q error %q", i, r, b.raw, b.why)
			}
			if time.Since(time.Unix(int64(r.DeadAt), 0)).Abs() > time.Minute {
				t.Errorf("dead_at %f is not now", r.DeadAt)
			}
		}
		// The raw dead-letter entries are JSON objects with these fields.
		raw := e.strings("LRANGE", e.k("qagen.dead"), 0, 0)
		var obj map[string]any
		if err := json.Unmarshal([]byte(raw[0]), &obj); err != nil {
			t.Fatalf("dead record %q: %v", raw[0], err)
		}
		for _, f := range []string{"reason", "error", "queue", "dead_at", "message"} {
			if _, ok := obj[f]; !ok {
				t.Errorf("dead record lacks %q: %s", f, raw[0])
			}
		}
		if n := e.int("EXISTS", "qagen.dead"); n != 0 {
			t.Errorf("an unprefixed qagen.dead exists")
		}
	}
}

func TestSettleAndAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	e.publish(msg("a", "Q", 0), msg("b", "Q", 0), msg("c", "Q", 0), msg("d", "Q", 0))
	ds := e.fetch([]string{"Q"}, 4)
	if len(ds) != 4 {
		t.Fatal("fetch")
	}
	if err := e.b.Ack(ctx(), "a"); err != nil {
		t.Fatal(err)
	}
	if e.unacked("a") != "" {
		t.Fatal("a still in unacked after Ack")
	}
	if _, ok := e.score("a"); ok {
		t.Fatal("a still in unacked_index after Ack")
	}
	rec := &broker.DeadRecord{Reason: "unknown task", Error: "NotRegistered", Queue: "Q", TaskID: "c-id", Task: "tests.noop",
		Worker: "w@h", DeadAt: 1795736045.5, Message: string(ds[2].Raw)}
	err := e.b.Settle(ctx(), []broker.Settlement{{Tag: "b"}, {Tag: "c", Dead: rec}, {Tag: "never-delivered"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"b", "c"} {
		if e.unacked(tag) != "" {
			t.Errorf("%s still in unacked", tag)
		}
		if _, ok := e.score(tag); ok {
			t.Errorf("%s still in unacked_index", tag)
		}
	}
	if e.unacked("d") == "" {
		t.Fatal("d was acked too")
	}
	if n := e.unackedCount(); n != 1 {
		t.Fatalf("UnackedCount = %d", n)
	}
	recs := e.deadLetters()
	if len(recs) != 1 || recs[0] != *rec {
		t.Fatalf("dead letters %+v, want %+v", recs, *rec)
	}
	if err := e.b.DeadLetter(ctx(), broker.DeadRecord{Reason: "second", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if recs := e.deadLetters(); len(recs) != 2 || recs[0].Reason != "second" || recs[1].Reason != "unknown task" {
		t.Fatalf("dead letters %+v", recs)
	}
	// DeadLetters(n) is capped at n.
	if recs, err := e.b.DeadLetters(ctx(), 1); err != nil || len(recs) != 1 {
		t.Fatalf("DeadLetters(1) = %d, %v", len(recs), err)
	}
	// Acking nothing, or again, is harmless.
	if err := e.b.Ack(ctx()); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Ack(ctx(), "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Settle(ctx(), nil); err != nil {
		t.Fatal(err)
	}
	// A record that is not JSON is still listed.
	e.do("LPUSH", e.k("qagen.dead"), "garbage")
	if recs := e.deadLetters(); recs[0].Message != "garbage" || recs[0].Reason == "" {
		t.Fatalf("garbage record: %+v", recs[0])
	}
}

func TestExtend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, broker.Options{VisibilityTimeout: 20 * time.Second})
	e.publish(msg("a", "Q", 0), msg("b", "Q", 0))
	e.fetch([]string{"Q"}, 2)
	t0, _ := e.score("a")
	if err := e.b.Ack(ctx(), "b"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(15 * time.Second)
	if err := e.b.Extend(ctx(), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if s, ok := e.score("a"); !ok || math.Abs(s-(t0+15)) > 1e-5 {
		t.Fatalf("score of a after Extend = %f, want %f", s, t0+15)
	}
	if _, ok := e.score("b"); ok {
		t.Fatal("Extend re-added the acked tag b (ZADD without XX)")
	}
	if e.unacked("b") != "" {
		t.Fatal("b is back in unacked")
	}
	// 25 s after delivery, 10 s after the extension: not restored.
	e.clock.Advance(10 * time.Second)
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 0 {
		t.Fatalf("RestoreVisible = %d, %v; want 0 (extended)", n, err)
	}
	if e.unacked("a") == "" {
		t.Fatal("extended delivery was restored")
	}
	// Once the extension is older than the timeout, it is.
	e.clock.Advance(11 * time.Second)
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 1 {
		t.Fatalf("RestoreVisible = %d, %v; want 1", n, err)
	}
	if err := e.b.Extend(ctx(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestKeyPrefixEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, broker.Options{VisibilityTimeout: time.Second})
	e.publish(msg("a", "Q", 0), msg("b", "Q", 9), msg("c", "Q", 4), msg("d", "Q", 6))
	e.do("LPUSH", e.k("Q"), "not json")
	e.fetch([]string{"Q"}, 100)
	if _, err := e.b.Restore(ctx(), "b"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Settle(ctx(), []broker.Settlement{{Tag: "c", Dead: &broker.DeadRecord{Reason: "x"}}}); err != nil {
		t.Fatal(err)
	}
	mon := startMonitor(t, e.ropts, e.prefix)
	e.clock.Advance(2 * time.Second)
	if n, err := e.b.RestoreVisible(ctx()); err != nil || n != 2 { // a and d
		t.Fatalf("RestoreVisible = %d, %v", n, err)
	}
	e.fetch([]string{"Q"}, 100)
	// The mutex is taken under the prefix, with kombu's 300 s expiry.
	sets := mon.waitFor(t, "SET", 1)
	if !strings.HasPrefix(sets[0], `"SET" "`+e.prefix+`unacked_mutex" "`) || !strings.Contains(sets[0], `"PX" "300000"`) || !strings.Contains(sets[0], `"NX"`) {
		t.Fatalf("mutex SET = %s", sets[0])
	}
	var keys []string
	cursor := 0
	for {
		r, err := redis.Values(e.do("SCAN", cursor, "MATCH", e.prefix+"*", "COUNT", 1000), nil)
		if err != nil {
			t.Fatal(err)
		}
		cursor, _ = redis.Int(r[0], nil)
		ks, _ := redis.Strings(r[1], nil)
		keys = append(keys, ks...)
		if cursor == 0 {
			break
		}
	}
	got := map[string]bool{}
	for _, k := range keys {
		got[strings.TrimPrefix(k, e.prefix)] = true
	}
	for _, k := range []string{"_kombu.binding.Q", "unacked", "unacked_index", "qagen.dead"} {
		if !got[k] {
			t.Errorf("prefixed key %q missing; have %q", k, keys)
		}
	}
	if got["unacked_mutex"] {
		t.Error("unacked_mutex was not released")
	}
	for _, k := range []string{"unacked", "unacked_index", "unacked_mutex", "qagen.dead", "_kombu.binding.Q"} {
		if n := e.int("EXISTS", k); n != 0 {
			t.Errorf("unprefixed %q exists", k)
		}
	}
}

func TestConcurrentFetchDeliversOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{})
	const n = 400
	var msgs []broker.Message
	for i := range n {
		msgs = append(msgs, msg(newTag(), "Q", i%10))
	}
	e.publish(msgs...)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var ds []broker.Delivery
				var err error
				if w%2 == 0 {
					ds, err = e.b.Fetch(ctx(), []string{"Q"}, 7)
				} else {
					var d *broker.Delivery
					d, err = e.b.FetchBlocking(ctx(), []string{"Q"}, time.Second)
					if d != nil {
						ds = append(ds, *d)
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.Tag]++
				}
				mu.Unlock()
				if err := e.b.Ack(ctx(), tags(ds)...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct deliveries, want %d", len(seen), n)
	}
	for tag, c := range seen {
		if c != 1 {
			t.Fatalf("%s delivered %d times", tag, c)
		}
	}
	if c := e.unackedCount(); c != 0 {
		t.Fatalf("UnackedCount = %d after acking all", c)
	}
}

func TestCustomPrioritySteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, broker.Options{Priority: celery.PriorityScheme{Steps: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, Sep: ":"}})
	e.publish(msg("p9", "Q", 9), msg("p1", "Q", 1), msg("p0", "Q", 0))
	if l := e.list("Q:9"); len(l) != 1 {
		t.Fatalf("Q:9 = %q", l)
	}
	if l := e.list("Q:1"); len(l) != 1 {
		t.Fatalf("Q:1 = %q", l)
	}
	if got := strings.Join(tags(e.fetch([]string{"Q"}, 10)), ","); got != "p0,p1,p9" {
		t.Fatalf("order %s", got)
	}
}
