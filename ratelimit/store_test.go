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
// a prefix of the test's own. It paces plain GCRA (Window 0) and a refusal
// says when the call could go (MaxLine 0), so that the expected waits are
// round numbers; TestWindowFit and TestWaitingLine check the defaults.
func newStore(t *testing.T) *RedisStore {
	t.Helper()
	pool, _ := testenv.Redis(t, testenv.DBRateLimit)
	s := NewRedisStore(pool, testenv.Prefix(t))
	s.Window, s.MaxLine = 0, 0
	return s
}

// eachStore runs f on a RedisStore (the test's keys on the package's
// Redis database) and on a MemoryStore, both with the given window and
// waiting line (0, 0: plain GCRA, a refusal says when the call could go):
// the two must agree to the millisecond.
func eachStore(t *testing.T, window, line time.Duration, f func(t *testing.T, s Store)) {
	t.Run("redis", func(t *testing.T) {
		s := newStore(t)
		s.Window, s.MaxLine = window, line
		f(t, s)
	})
	t.Run("memory", func(t *testing.T) {
		s := NewMemoryStore()
		s.Window, s.MaxLine = window, line
		f(t, s)
	})
}

// take calls Take at t0+at and fails the test on an error.
func take(t *testing.T, s Store, k Key, l Limit, tokens int, at time.Duration) time.Duration {
	t.Helper()
	w, granted, err := s.Take(context.Background(), k, l, tokens, t0.Add(at), 0)
	if err != nil {
		t.Fatalf("Take at +%s: %v", at, err)
	}
	if granted != (w == 0) {
		t.Fatalf("Take at +%s without a reserve: wait %s, granted %v", at, w, granted)
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
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
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
	})
}

func TestTakeBurstSeconds(t *testing.T) {
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
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
	})
}

func TestTakeTokenPacing(t *testing.T) {
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
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
	})
}

func TestTakeBothDimensions(t *testing.T) {
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
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
	})
}

func TestAdjust(t *testing.T) {
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
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
	})
}

func TestCooldown(t *testing.T) {
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
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
	})
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
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
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
	})
}

// TestTakeConcurrent: many goroutines (the slots of many workers) take
// from one key at once over a simulated minute; Redis runs the script
// atomically, so the grants never exceed the budget.
func TestTakeConcurrent(t *testing.T) {
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
		lim := Limit{RPM: 600, BurstSeconds: 2} // 10/s, bursts of 20
		const goroutines = 64
		step := 50 * msec
		var granted atomic.Int64
		for at := time.Duration(0); at < time.Minute; at += step {
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					_, ok, err := s.Take(context.Background(), flash, lim, 0, t0.Add(at), 0)
					if err != nil {
						t.Error(err)
					} else if ok {
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
	})
}

func TestStoreUnreachable(t *testing.T) {
	pool, _ := testenv.Redis(t, testenv.DBRateLimit)
	s := NewRedisStore(pool, testenv.Prefix(t))
	pool.Close()
	ctx := context.Background()
	if _, _, err := s.Take(ctx, flash, Limit{RPM: 1}, 0, t0, 0); err == nil {
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

// TestReserve: a call that can go within the reserve is granted for
// later, and the next caller queues behind it; one that cannot spends
// nothing.
func TestReserve(t *testing.T) {
	eachStore(t, 0, 0, func(t *testing.T, s Store) {
		ctx := context.Background()
		lim := Limit{RPM: 60} // one a second, a burst of one
		reserve := func(at, r time.Duration) (time.Duration, bool) {
			t.Helper()
			w, ok, err := s.Take(ctx, flash, lim, 0, t0.Add(at), r)
			if err != nil {
				t.Fatal(err)
			}
			return w, ok
		}
		for i, want := range []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second} {
			if w, ok := reserve(0, 3*time.Second); !ok || w != want {
				t.Fatalf("caller %d: wait %s granted %v, want a turn in %s", i, w, ok, want)
			}
		}
		// The queue is 3 s deep: a caller with a 3.5 s reserve is refused (4 s).
		if w, ok := reserve(0, 3500*msec); ok || w != 4*time.Second {
			t.Fatalf("beyond the reserve: wait %s granted %v", w, ok)
		}
		// ... and spent nothing: at +1 s the next turn is still +4 s.
		if w, ok := reserve(time.Second, 3*time.Second); !ok || w != 3*time.Second {
			t.Fatalf("after a refusal: wait %s granted %v", w, ok)
		}
		// A pause is never reserved through.
		if err := s.Cooldown(ctx, flash, t0.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if w, ok := reserve(time.Second, time.Minute); ok || w != 9*time.Second {
			t.Fatalf("during a pause: wait %s granted %v", w, ok)
		}
	})
}

// TestWindowFit: greedy callers on the default store never put more than
// the limit into any sliding minute (the provider's count: calls at times
// in (now-60 s, now]), and still get at least 97% of it.
func TestWindowFit(t *testing.T) {
	if r := NewRedisStore(nil, ""); r.Window != DefaultWindow || r.MaxLine != DefaultMaxLine {
		t.Fatalf("RedisStore defaults: window %s, line %s", r.Window, r.MaxLine)
	}
	if m := NewMemoryStore(); m.Window != DefaultWindow || m.MaxLine != DefaultMaxLine {
		t.Fatalf("MemoryStore defaults: window %s, line %s", m.Window, m.MaxLine)
	}
	for _, tc := range []struct {
		name   string
		lim    Limit
		tokens int
	}{
		{"120rpm", Limit{RPM: 120}, 0},
		{"120rpm-burst5", Limit{RPM: 120, BurstSeconds: 5}, 0},
		{"6rpm", Limit{RPM: 6}, 0},
		{"2000rpm", Limit{RPM: 2000}, 0},
		{"tpm", Limit{TPM: 72720}, 606},
		{"both", Limit{RPM: 120, TPM: 60000}, 606},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, DefaultWindow, DefaultMaxLine, func(t *testing.T, s Store) {
				type grant struct {
					at     time.Time
					tokens int
				}
				var grants []grant
				now := t0
				end := t0.Add(5 * time.Minute)
				for now.Before(end) {
					w, ok, err := s.Take(context.Background(), flash, tc.lim, tc.tokens, now, 0)
					if err != nil {
						t.Fatal(err)
					}
					if ok {
						grants = append(grants, grant{now, tc.tokens})
						continue
					}
					now = now.Add(w)
				}
				// Worst sliding minute.
				worstReq, worstTok := 0, 0
				j, tok := 0, 0
				for i, g := range grants {
					tok += g.tokens
					for !grants[j].at.After(g.at.Add(-time.Minute)) {
						tok -= grants[j].tokens
						j++
					}
					worstReq, worstTok = max(worstReq, i-j+1), max(worstTok, tok)
				}
				if tc.lim.RPM > 0 && worstReq > tc.lim.RPM {
					t.Errorf("%d requests in one sliding minute, limit %d", worstReq, tc.lim.RPM)
				}
				if tc.lim.TPM > 0 && worstTok > tc.lim.TPM {
					t.Errorf("%d tokens in one sliding minute, limit %d", worstTok, tc.lim.TPM)
				}
				// Achieved rate over the last four minutes (after the first burst).
				var n, ntok int
				for _, g := range grants {
					if g.at.Sub(t0) >= time.Minute {
						n++
						ntok += g.tokens
					}
				}
				perMin := float64(n) / 4
				limit := float64(tc.lim.RPM)
				if tc.lim.RPM == 0 || (tc.lim.TPM > 0 && float64(tc.lim.TPM)/float64(tc.tokens) < limit) {
					limit = float64(tc.lim.TPM) / float64(tc.tokens)
				}
				// The burst's share of the window is the price of never
				// exceeding it: 60 s / (60.25 s + burst).
				burst := max(tc.lim.BurstSeconds, 1)
				if tc.lim.RPM > 0 {
					burst = max(burst, 60/float64(tc.lim.RPM))
				}
				want := limit * 60 / (DefaultWindow.Seconds() + burst)
				if perMin+0.25 < 0.99*want { // a quarter: one call more or less in four minutes
					t.Errorf("%.1f calls/min, %.1f%% of the %.1f the limit allows (expected %.1f)", perMin, 100*perMin/limit, limit, want)
				}
				t.Logf("worst minute %d requests / %d tokens; %.1f calls/min = %.1f%% of %.1f", worstReq, worstTok, perMin, 100*perMin/limit, limit)
			})
		})
	}
}

// TestWaitingLine: refused callers get turns one call's worth apart, in
// the order they asked, up to MaxLine ahead; beyond it, a random time
// within it.
func TestWaitingLine(t *testing.T) {
	eachStore(t, 0, 10*time.Second, func(t *testing.T, s Store) {
		ctx := context.Background()
		lim := Limit{RPM: 60} // one a second
		try := func(at time.Duration) (time.Duration, bool) {
			t.Helper()
			w, ok, err := s.Take(ctx, flash, lim, 0, t0.Add(at), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return w, ok
		}
		// Three granted (now, +1 s, +2 s), then turns at +3 s, +4 s, ...
		for i := range 3 {
			if _, ok := try(0); !ok {
				t.Fatalf("call %d refused", i)
			}
		}
		for i := range 8 {
			if w, ok := try(0); ok || w != time.Duration(3+i)*time.Second {
				t.Fatalf("refused caller %d: turn in %s (granted %v), want %ds", i, w, ok, 3+i)
			}
		}
		// The line is 11 s long now, beyond MaxLine: random turns within it.
		for range 20 {
			if w, ok := try(0); ok || w < 3*time.Second || w > 10*time.Second {
				t.Fatalf("beyond the line: turn in %s (granted %v)", w, ok)
			}
		}
		// Callers coming back at their turn find the budget: the first at +3 s.
		if w, ok := try(3 * time.Second); !ok || w != 0 {
			t.Fatalf("at its turn: wait %s granted %v", w, ok)
		}
		// Grants never jump the GCRA: the line only orders refusals.
		if w, ok := try(3 * time.Second); !ok || w != time.Second {
			t.Fatalf("next: wait %s granted %v", w, ok)
		}
	})
}

// TestSyncClock: two workers whose clocks disagree by 10 s share one
// budget and one pause once each has measured its skew to Redis.
func TestSyncClock(t *testing.T) {
	pool, _ := testenv.Redis(t, testenv.DBRateLimit)
	prefix := testenv.Prefix(t)
	ctx := context.Background()
	behind := NewRedisStore(pool, prefix) // a host whose clock is 10 s slow
	behind.Window, behind.MaxLine = 0, 0
	behind.localNow = func() time.Time { return time.Now().Add(-10 * time.Second) }
	right := NewRedisStore(pool, prefix)
	right.Window, right.MaxLine = 0, 0
	skew, err := behind.SyncClock(ctx)
	if err != nil || skew < 9950*msec || skew > 10050*msec {
		t.Fatalf("skew of the slow host: %s %v, want 10 s", skew, err)
	}
	if skew, err := right.SyncClock(ctx); err != nil || skew < -50*msec || skew > 50*msec {
		t.Fatalf("skew of a host on time: %s %v", skew, err)
	}
	lim := Limit{RPM: 60, BurstSeconds: 0.5} // one a second
	if _, ok, err := behind.Take(ctx, flash, lim, 0, behind.localNow(), 0); err != nil || !ok {
		t.Fatalf("first call: %v %v", ok, err)
	}
	w, ok, err := right.Take(ctx, flash, lim, 0, time.Now(), 0)
	if err != nil || ok || w < 900*msec || w > time.Second {
		t.Fatalf("the other host right after: wait %s granted %v %v; want about 1 s", w, ok, err)
	}
	mini := Key{"openai", "gpt-4o-mini"}
	if err := behind.Cooldown(ctx, mini, behind.localNow().Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if w, ok, err := right.Take(ctx, mini, Limit{RPM: 6000}, 0, time.Now(), 0); err != nil || ok || w < 1900*msec || w > 2*time.Second {
		t.Fatalf("the slow host's pause, seen by the other: wait %s granted %v %v; want about 2 s", w, ok, err)
	}
	if st, err := right.State(ctx, mini, time.Now()); err != nil || st.CooldownLeft < 1900*msec {
		t.Errorf("state: %+v %v", st, err)
	}
}
