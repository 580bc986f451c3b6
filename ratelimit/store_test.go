package ratelimit

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qagen/qagen/internal/testenv"
)

// t0 is the tests' simulated start; stored times are milliseconds since the
// epoch, so any fixed instant works.
var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

var flash = Key{Provider: "gemini", Model: "gemini-2.0-flash"}

// newStore returns a store on the package's Redis database, with keys under
// a prefix of the test's own.
func newStore(t *testing.T) *RedisStore {
	t.Helper()
	pool, _ := testenv.Redis(t, testenv.DBRateLimit)
	return NewRedisStore(pool, testenv.Prefix(t))
}

// take calls Take at t0+at and fails the test on an error.
func take(t *testing.T, s Store, k Key, l Limit, tokens int, at time.Duration) time.Duration {
	t.Helper()
	w, err := s.Take(context.Background(), k, l, tokens, t0.Add(at))
	if err != nil {
		t.Fatalf("Take at +%s: %v", at, err)
	}
	return w
}

// expectTakes checks a sequence of Take calls: (time, tokens) -> wait.
func expectTakes(t *testing.T, s Store, k Key, l Limit, steps []takeStep) {
	t.Helper()
	for i, st := range steps {
		if got := take(t, s, k, l, st.tokens, st.at); got != st.wait {
			t.Errorf("step %d (%d tokens at +%s): wait %s, want %s", i, st.tokens, st.at, got, st.wait)
		}
	}
}

type takeStep struct {
	at     time.Duration
	tokens int
	wait   time.Duration
}

const msec = time.Millisecond

func TestTakeRequestPacing(t *testing.T) {
	s := newStore(t)
	// 120 requests/min is one every 500 msec; a burst of half a second holds
	// one request: the first goes at once, the next 500 msec later.
	half := Limit{RPM: 120, BurstSeconds: 0.5}
	expectTakes(t, s, flash, half, []takeStep{
		{0, 0, 0},
		{0, 0, 500 * msec},
		{100 * msec, 0, 400 * msec}, // the wait counts down
		{500 * msec, 0, 0},
		{500 * msec, 0, 500 * msec},
		{999 * msec, 0, 1 * msec},
		{1000 * msec, 0, 0},
		// Idle time refills the bucket, up to its capacity only.
		{10 * time.Second, 0, 0},
		{10 * time.Second, 0, 500 * msec},
	})
}

func TestTakeBurstSeconds(t *testing.T) {
	s := newStore(t)
	// The default burst is one second's worth: 2 requests at 120/min.
	def := Limit{RPM: 120}
	expectTakes(t, s, Key{"gemini", "default-burst"}, def, []takeStep{
		{0, 0, 0}, {0, 0, 0}, {0, 0, 500 * msec},
		{500 * msec, 0, 0}, {500 * msec, 0, 500 * msec},
	})
	// burst_seconds 5 at 60/min: five at once, then one a second.
	five := Limit{RPM: 60, BurstSeconds: 5}
	k := Key{"gemini", "burst-5"}
	for i := range 5 {
		if w := take(t, s, k, five, 0, 0); w != 0 {
			t.Fatalf("burst request %d waits %s", i, w)
		}
	}
	expectTakes(t, s, k, five, []takeStep{{0, 0, time.Second}, {time.Second, 0, 0}, {time.Second, 0, time.Second}})
	// A capacity always holds one request, even when the burst is shorter
	// than the interval (6/min: one every 10 s).
	slow := Limit{RPM: 6, BurstSeconds: 1}
	expectTakes(t, s, Key{"gemini", "slow"}, slow, []takeStep{{0, 0, 0}, {0, 0, 10 * time.Second}, {10 * time.Second, 0, 0}})
}

func TestTakeTokenPacing(t *testing.T) {
	s := newStore(t)
	// 6000 tokens/min = 100 tokens/s, one token per 10 msec; the bucket holds
	// one second: 100 tokens.
	lim := Limit{TPM: 6000}
	t.Run("small", func(t *testing.T) {
		k := Key{"gemini", "small"}
		for i := range 10 {
			if w := take(t, s, k, lim, 10, 0); w != 0 {
				t.Fatalf("request %d of 10 tokens waits %s; 10 fit in the bucket", i, w)
			}
		}
		expectTakes(t, s, k, lim, []takeStep{
			{0, 10, 100 * msec},
			{0, 1, 10 * msec},
			{100 * msec, 10, 0},
			{100 * msec, 20, 200 * msec},
		})
	})
	t.Run("large", func(t *testing.T) {
		k := Key{"gemini", "large"}
		expectTakes(t, s, k, lim, []takeStep{
			{0, 60, 0},
			// 60 more would need 1200 msec of a 1000 msec bucket: 200 msec.
			{0, 60, 200 * msec},
			{200 * msec, 60, 0},
			{200 * msec, 60, 600 * msec},
		})
	})
	t.Run("bigger than the bucket", func(t *testing.T) {
		k := Key{"gemini", "huge"}
		expectTakes(t, s, k, lim, []takeStep{
			// 500 tokens (5 s of budget) never fit a 100-token bucket: they
			// go when the bucket is empty, here at once.
			{0, 500, 0},
			// Then the bucket is 4 s over: a small request waits for
			// room, another huge one until it is empty again.
			{0, 10, 4100 * msec},
			{0, 500, 5 * time.Second},
			{3 * time.Second, 500, 2 * time.Second},
			{5 * time.Second, 500, 0},
			{5 * time.Second, 10, 4100 * msec},
		})
	})
}

func TestTakeBothDimensions(t *testing.T) {
	s := newStore(t)
	// 600 requests/min (one per 100 msec) and 6000 tokens/min: at 50 tokens
	// a request, tokens are the slower (one request per 500 msec).
	lim := Limit{RPM: 600, TPM: 6000}
	expectTakes(t, s, Key{"gemini", "tokens-bind"}, lim, []takeStep{
		{0, 50, 0}, {0, 50, 0}, {0, 50, 500 * msec},
		{500 * msec, 50, 0}, {500 * msec, 50, 500 * msec},
	})
	// At 1 token a request, requests are the slower: 10 at once (a second
	// of requests), then one per 100 msec.
	k := Key{"gemini", "requests-bind"}
	for i := range 10 {
		if w := take(t, s, k, lim, 1, 0); w != 0 {
			t.Fatalf("request %d waits %s", i, w)
		}
	}
	expectTakes(t, s, k, lim, []takeStep{{0, 1, 100 * msec}, {100 * msec, 1, 0}})
	// A refused request spends neither budget: the request bucket still
	// grants when only tokens refused.
	k = Key{"gemini", "no-partial-spend"}
	expectTakes(t, s, k, Limit{RPM: 60, TPM: 6000}, []takeStep{
		{0, 100, 0},           // both buckets full now
		{0, 1, time.Second},   // refused by both
		{time.Second, 100, 0}, // the refusal spent nothing
		{time.Second, 1, time.Second},
	})
}

func TestAdjust(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	lim := Limit{TPM: 6000} // 10 msec a token, 100-token bucket
	k := Key{"gemini", "adjust"}
	expectTakes(t, s, k, lim, []takeStep{{0, 100, 0}, {0, 50, 500 * msec}})
	// The call used 20 tokens, not 100: refund 80.
	if err := s.Adjust(ctx, k, lim, -80, t0); err != nil {
		t.Fatal(err)
	}
	if w := take(t, s, k, lim, 50, 0); w != 0 {
		t.Errorf("after the refund: wait %s, want 0", w)
	}
	// Now 70 tokens are spent; charge 130 more (a call used more than
	// estimated): 200 tokens ahead, 1 s over the bucket.
	if err := s.Adjust(ctx, k, lim, 130, t0); err != nil {
		t.Fatal(err)
	}
	if w := take(t, s, k, lim, 10, 0); w != 1100*msec {
		t.Errorf("after the charge: wait %s, want 1.1s", w)
	}
	// A refund never lends budget: the bucket is at most empty.
	if err := s.Adjust(ctx, k, lim, -100000, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	expectTakes(t, s, k, lim, []takeStep{{time.Minute, 100, 0}, {time.Minute, 10, 100 * msec}})
	// Without a token limit there is nothing to adjust.
	if err := s.Adjust(ctx, Key{"gemini", "rpm-only"}, Limit{RPM: 5}, 100, t0); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State(ctx, Key{"gemini", "rpm-only"}, t0); st != (State{}) {
		t.Errorf("adjust without a token limit wrote state: %+v", st)
	}
}

func TestCooldown(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	k := Key{"gemini", "cool"}
	lim := Limit{RPM: 6000}
	if err := s.Cooldown(ctx, k, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	expectTakes(t, s, k, lim, []takeStep{{0, 0, 2 * time.Second}, {1500 * msec, 0, 500 * msec}})
	// An earlier end never shortens the pause; a later one extends it.
	if err := s.Cooldown(ctx, k, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	expectTakes(t, s, k, lim, []takeStep{{1500 * msec, 0, 500 * msec}})
	if err := s.Cooldown(ctx, k, t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	expectTakes(t, s, k, lim, []takeStep{{1500 * msec, 0, 1500 * msec}})
	st, err := s.State(ctx, k, t0.Add(time.Second))
	if err != nil || st.CooldownLeft != 2*time.Second || st.RequestsAhead != 0 {
		t.Errorf("state during the pause: %+v, %v", st, err)
	}
	// The pause spent nothing: afterwards the bucket is full.
	for i := range 100 {
		if w := take(t, s, k, lim, 0, 3*time.Second); w != 0 {
			t.Fatalf("request %d after the pause waits %s", i, w)
		}
	}
	// Other keys are not paused.
	if w := take(t, s, Key{"gemini", "other"}, lim, 0, 0); w != 0 {
		t.Errorf("another model waits %s", w)
	}
	// A pause applies to an unlimited key too.
	if err := s.Cooldown(ctx, Key{"acme", "x"}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if w := take(t, s, Key{"acme", "x"}, Limit{}, 0, 0); w != time.Second {
		t.Errorf("unlimited key during a pause: wait %s, want 1s", w)
	}
}

func TestFleetLimits(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if tab, err := s.Limits(ctx); err != nil || len(tab) != 0 {
		t.Fatalf("fresh store: %v, %v", tab, err)
	}
	a := Limit{RPM: 120, TPM: 9000, BurstSeconds: 2}
	if err := s.SetLimit(ctx, flash, a); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLimit(ctx, Key{"openai", "*"}, Limit{TPM: 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLimit(ctx, flash, Limit{RPM: -1}); err == nil {
		t.Error("negative limit accepted")
	}
	tab, err := s.Limits(ctx)
	if err != nil || len(tab) != 2 || tab[flash] != a || tab[Key{"openai", "*"}] != (Limit{TPM: 5}) {
		t.Fatalf("limits: %v, %v", tab, err)
	}
	// Fields that are not limits are skipped, not fatal.
	conn := s.pool.Get()
	conn.Do("HSET", s.limitsKey(), "garbage", "{}", "gemini/bad-json", "nope")
	conn.Close()
	if tab, err := s.Limits(ctx); err != nil || len(tab) != 2 {
		t.Errorf("with garbage fields: %v, %v", tab, err)
	}
	if err := s.DeleteLimit(ctx, flash); err != nil {
		t.Fatal(err)
	}
	if tab, _ := s.Limits(ctx); len(tab) != 1 {
		t.Errorf("after delete: %v", tab)
	}
}

func TestState(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if st, err := s.State(ctx, flash, t0); err != nil || st != (State{}) {
		t.Fatalf("no state: %+v, %v", st, err)
	}
	lim := Limit{RPM: 60, TPM: 6000}
	take(t, s, flash, lim, 50, 0)
	st, err := s.State(ctx, flash, t0)
	if err != nil || st.RequestsAhead != time.Second || st.TokensAhead != 500*msec || st.CooldownLeft != 0 {
		t.Errorf("state: %+v, %v", st, err)
	}
	if st, _ := s.State(ctx, flash, t0.Add(time.Minute)); st != (State{}) {
		t.Errorf("a minute later: %+v", st)
	}
}

// TestTakeConcurrent: many goroutines (the slots of many workers) take
// from one key at once over a simulated minute; Redis runs the script
// atomically, so the grants never exceed the budget.
func TestTakeConcurrent(t *testing.T) {
	s := newStore(t)
	lim := Limit{RPM: 600, BurstSeconds: 2} // 10/s, bursts of 20
	const goroutines = 64
	step := 50 * msec
	var granted atomic.Int64
	for at := time.Duration(0); at < time.Minute; at += step {
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				w, err := s.Take(context.Background(), flash, lim, 0, t0.Add(at))
				if err != nil {
					t.Error(err)
				} else if w == 0 {
					granted.Add(1)
				}
			})
		}
		wg.Wait()
	}
	// 600 in the minute plus the burst at the start.
	if n := granted.Load(); n > 600+20 || n < 600 {
		t.Errorf("%d grants in a simulated minute at 600/min with a burst of 20", n)
	}
}

func TestStoreUnreachable(t *testing.T) {
	pool, _ := testenv.Redis(t, testenv.DBRateLimit)
	s := NewRedisStore(pool, testenv.Prefix(t))
	pool.Close()
	ctx := context.Background()
	if _, err := s.Take(ctx, flash, Limit{RPM: 1}, 0, t0); err == nil {
		t.Error("Take on a closed pool: no error")
	}
	if err := s.Cooldown(ctx, flash, t0); err == nil {
		t.Error("Cooldown on a closed pool: no error")
	}
	if err := s.Adjust(ctx, flash, Limit{TPM: 10}, 5, t0); err == nil {
		t.Error("Adjust on a closed pool: no error")
	}
	if _, err := s.Limits(ctx); err == nil {
		t.Error("Limits on a closed pool: no error")
	}
	if err := s.SetLimit(ctx, flash, Limit{RPM: 1}); err == nil || strings.Contains(err.Error(), "negative") {
		t.Errorf("SetLimit on a closed pool: %v", err)
	}
	if err := s.DeleteLimit(ctx, flash); err == nil {
		t.Error("DeleteLimit on a closed pool: no error")
	}
	if _, err := s.State(ctx, flash, t0); err == nil {
		t.Error("State on a closed pool: no error")
	}
}
