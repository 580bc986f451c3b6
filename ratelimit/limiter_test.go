package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qagen/qagen/internal/clock"
	"github.com/qagen/qagen/internal/testenv"
)

// acquireAsync runs Acquire in a goroutine and reports its outcome.
type acquireResult struct {
	ticket Ticket
	err    error
}

func acquireAsync(l *Limiter, k Key, tokens int) <-chan acquireResult {
	ch := make(chan acquireResult, 1)
	go func() {
		t, err := l.Acquire(context.Background(), k, tokens)
		ch <- acquireResult{t, err}
	}()
	return ch
}

// waitPending waits until the limiter sleeps on the fake clock (n timers).
func waitPending(t *testing.T, c *clock.Fake, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Pending() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the limiter never slept (%d timers pending, want %d)", c.Pending(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func received(ch <-chan acquireResult) (acquireResult, bool) {
	select {
	case r := <-ch:
		return r, true
	case <-time.After(20 * time.Millisecond):
		return acquireResult{}, false
	}
}

// TestLimiterWaitsInPlace: a short wait is slept on the clock, exactly as
// long as the budget says, and not a moment less.
func TestLimiterWaitsInPlace(t *testing.T) {
	c := clock.NewFake(t0)
	l := New(Config{Store: newStore(t), Local: Table{flash: {RPM: 120, BurstSeconds: 0.5}}, Clock: c})
	if tk, err := l.Acquire(context.Background(), flash, 10); err != nil || tk.Waited != 0 || tk.Limit.RPM != 120 {
		t.Fatalf("first call: %+v, %v", tk, err)
	}
	ch := acquireAsync(l, flash, 10)
	waitPending(t, c, 1)
	c.Advance(499 * msec)
	if r, ok := received(ch); ok {
		t.Fatalf("second call granted 1 ms early: %+v", r)
	}
	c.Advance(msec)
	r := <-ch
	if r.err != nil || r.ticket.Waited != 500*msec {
		t.Fatalf("second call: %+v, %v", r.ticket, r.err)
	}
}

// TestLimiterLongWaitReturns: a wait beyond MaxInPlace is not slept; it
// comes back as a WaitError, and asking spends nothing.
func TestLimiterLongWaitReturns(t *testing.T) {
	c := clock.NewFake(t0)
	l := New(Config{Store: newStore(t), Local: Table{flash: {RPM: 6}}, MaxInPlace: 5 * time.Second, Clock: c})
	ctx := context.Background()
	if _, err := l.Acquire(ctx, flash, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := l.Acquire(ctx, flash, 0)
		w, ok := IsWait(err)
		if !ok || w.Wait != 10*time.Second || w.Cause != nil || w.Key != flash {
			t.Fatalf("call %d: %v, want a 10 s WaitError (nothing spent by asking)", i, err)
		}
	}
	if c.Pending() != 0 {
		t.Errorf("%d timers left behind", c.Pending())
	}
	c.Advance(10 * time.Second)
	if _, err := l.Acquire(ctx, flash, 0); err != nil {
		t.Errorf("after the wait: %v", err)
	}
}

// TestLimiterContextCancel: a caller sleeping in place leaves when its
// context ends.
func TestLimiterContextCancel(t *testing.T) {
	c := clock.NewFake(t0)
	l := New(Config{Store: newStore(t), Local: Table{flash: {RPM: 60}}, Clock: c})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := l.Acquire(ctx, flash, 0); err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() { _, err := l.Acquire(ctx, flash, 0); ch <- err }()
	waitPending(t, c, 1)
	cancel()
	if err := <-ch; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if c.Pending() != 0 {
		t.Error("the timer was not stopped")
	}
}

// TestLimiterFleetLimitsWin: a limit set in the store (qagen ratelimit set)
// beats the local one and reaches running limiters after Refresh, without
// a restart; a provider-wide "*" entry covers every model.
func TestLimiterFleetLimitsWin(t *testing.T) {
	c := clock.NewFake(t0)
	s := newStore(t)
	ctx := context.Background()
	l := New(Config{Store: s, Local: Table{flash: {RPM: 60}}, Refresh: 2 * time.Second, Clock: c})
	if got := l.Limit(ctx, flash); got != (Limit{RPM: 60}) {
		t.Fatalf("local limit: %v", got)
	}
	if err := s.SetLimit(ctx, flash, Limit{RPM: 30, TPM: 1000}); err != nil {
		t.Fatal(err)
	}
	if got := l.Limit(ctx, flash); got != (Limit{RPM: 60}) {
		t.Errorf("read again before Refresh: %v", got)
	}
	c.Advance(2 * time.Second)
	if got := l.Limit(ctx, flash); got != (Limit{RPM: 30, TPM: 1000}) {
		t.Errorf("fleet limit after Refresh: %v", got)
	}
	other := Key{"gemini", "gemini-2.5-pro"}
	if got := l.Limit(ctx, other); got != Defaults[other] {
		t.Errorf("built-in default: %v", got)
	}
	if err := s.SetLimit(ctx, Key{"gemini", "*"}, Limit{RPM: 7}); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Second)
	if got := l.Limit(ctx, other); got != (Limit{RPM: 7}) {
		t.Errorf("provider-wide fleet limit: %v", got)
	}
	if got := l.Limit(ctx, flash); got != (Limit{RPM: 30, TPM: 1000}) {
		t.Errorf("the model's own entry beats the provider's: %v", got)
	}
	if err := s.DeleteLimit(ctx, flash); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Second)
	if got := l.Limit(ctx, flash); got != (Limit{RPM: 7}) {
		t.Errorf("after unset: %v", got)
	}
}

// TestLimiterCooldownIsShared: a 429 seen by one worker pauses another
// worker's calls to the same model, and only that model.
func TestLimiterCooldownIsShared(t *testing.T) {
	c := clock.NewFake(t0)
	s := newStore(t)
	limits := Table{flash: {RPM: 6000}, {"openai", "gpt-4o-mini"}: {RPM: 6000}}
	a := New(Config{Store: s, Local: limits, Clock: c})
	b := New(Config{Store: s, Local: limits, Clock: c})
	ctx := context.Background()
	a.Cooldown(ctx, flash, 30*time.Second)
	_, err := b.Acquire(ctx, flash, 0)
	if w, ok := IsWait(err); !ok || w.Wait != 30*time.Second {
		t.Fatalf("other worker during the pause: %v", err)
	}
	if _, err := b.Acquire(ctx, Key{"openai", "gpt-4o-mini"}, 0); err != nil {
		t.Errorf("another model is paused too: %v", err)
	}
	c.Advance(27 * time.Second)
	ch := acquireAsync(b, flash, 0) // 3 s left: slept in place
	waitPending(t, c, 1)
	c.Advance(3 * time.Second)
	if r := <-ch; r.err != nil || r.ticket.Waited != 3*time.Second {
		t.Errorf("end of the pause: %+v, %v", r.ticket, r.err)
	}
}

// TestLimiterDoneCorrectsTokens: a call that used more tokens than
// estimated is charged the difference; one that used fewer is refunded.
func TestLimiterDoneCorrectsTokens(t *testing.T) {
	c := clock.NewFake(t0)
	s := newStore(t)
	ctx := context.Background()
	l := New(Config{Store: s, Local: Table{flash: {TPM: 6000}}, Clock: c})
	tk, err := l.Acquire(ctx, flash, 100) // 1 s of budget
	if err != nil {
		t.Fatal(err)
	}
	l.Done(ctx, tk, 300)
	if st, _ := s.State(ctx, flash, t0); st.TokensAhead != 3*time.Second {
		t.Errorf("after using 300 of an estimated 100: %+v", st)
	}
	l.Done(ctx, Ticket{Key: flash, Limit: tk.Limit, Tokens: 300}, 100)
	if st, _ := s.State(ctx, flash, t0); st.TokensAhead != time.Second {
		t.Errorf("after a refund of 200: %+v", st)
	}
}

// flakyStore is the real store with the first n Take calls failing, as if
// Redis were briefly unreachable.
type flakyStore struct {
	Store
	failures atomic.Int32
}

var errOutage = errors.New("connection refused")

func (f *flakyStore) Take(ctx context.Context, k Key, l Limit, tokens int, now time.Time, reserve time.Duration) (time.Duration, bool, error) {
	if f.failures.Add(-1) >= 0 {
		return 0, false, errOutage
	}
	return f.Store.Take(ctx, k, l, tokens, now, reserve)
}

// TestLimiterFailsSafe: without the store the limiter waits (backing off)
// and never grants a call; a longer outage becomes a WaitError carrying
// the cause; once Redis answers, calls go through.
func TestLimiterFailsSafe(t *testing.T) {
	c := clock.NewFake(t0)
	fs := &flakyStore{Store: newStore(t)}
	fs.failures.Store(2)
	l := New(Config{Store: fs, Local: Table{flash: {RPM: 6000}}, MaxInPlace: time.Second, Clock: c})
	ch := acquireAsync(l, flash, 0)
	waitPending(t, c, 1)
	c.Advance(50 * msec) // first back-off
	waitPending(t, c, 1)
	if _, ok := received(ch); ok {
		t.Fatal("granted while the store was down")
	}
	c.Advance(100 * msec) // second, doubled
	r := <-ch
	if r.err != nil || r.ticket.Waited != 150*msec {
		t.Fatalf("after the outage: %+v, %v", r.ticket, r.err)
	}

	// An outage longer than MaxInPlace: a WaitError wrapping the cause.
	fs.failures.Store(100)
	ch = acquireAsync(l, flash, 0)
	for _, d := range []time.Duration{50, 100, 200, 400} {
		waitPending(t, c, 1)
		c.Advance(d * msec)
	}
	r = <-ch
	w, ok := IsWait(r.err)
	if !ok || !errors.Is(r.err, errOutage) || r.ticket.Waited != 750*msec {
		t.Fatalf("long outage: %v (waited %s), want a WaitError wrapping the outage", r.err, r.ticket.Waited)
	}
	if w.Wait <= 0 {
		t.Errorf("WaitError without a wait: %+v", w)
	}
}

// TestLimiterUnreachableRedis: a store on a closed pool never lets a call
// through, and limits fall back to the local table.
func TestLimiterUnreachableRedis(t *testing.T) {
	pool, _ := testenv.Redis(t, testenv.DBRateLimit)
	s := NewRedisStore(pool, testenv.Prefix(t))
	pool.Close()
	l := New(Config{Store: s, Local: Table{flash: {RPM: 60}}, MaxInPlace: 10 * msec, Clock: clock.NewFake(t0)})
	if got := l.Limit(context.Background(), flash); got != (Limit{RPM: 60}) {
		t.Errorf("limit without Redis: %v", got)
	}
	_, err := l.Acquire(context.Background(), flash, 0)
	if w, ok := IsWait(err); !ok || w.Cause == nil {
		t.Fatalf("Acquire without Redis: %v, want a WaitError with its cause", err)
	}
}

// TestLimiterDisabledAndUnlimited: --no-llm-limit and unlimited keys never
// touch the store (a nil store would panic).
func TestLimiterDisabledAndUnlimited(t *testing.T) {
	ctx := context.Background()
	off := New(Config{Disabled: true})
	if _, err := off.Acquire(ctx, flash, 100); err != nil {
		t.Error(err)
	}
	off.Done(ctx, Ticket{Key: flash, Limit: Limit{TPM: 5}, Tokens: 1}, 50)
	off.Cooldown(ctx, flash, time.Minute)
	var none *Limiter
	if _, err := none.Acquire(ctx, flash, 1); err != nil {
		t.Error(err)
	}

	s := newStore(t)
	if err := s.SetLimit(ctx, Key{"acme", "*"}, Limit{}); err != nil {
		t.Fatal(err)
	}
	l := New(Config{Store: s, Clock: clock.NewFake(t0)})
	for range 1000 {
		if tk, err := l.Acquire(ctx, Key{"acme", "big"}, 1_000_000); err != nil || tk.Waited != 0 {
			t.Fatalf("unlimited key: %+v, %v", tk, err)
		}
	}
}

// TestLimiterQueuesWithinMaxInPlace: callers beyond the budget reserve
// turns up to MaxInPlace ahead and sleep until then; the rest get a
// WaitError at once, so only as many slots wait as the budget can serve.
func TestLimiterQueuesWithinMaxInPlace(t *testing.T) {
	c := clock.NewFake(t0)
	l := New(Config{Store: newStore(t), Local: Table{flash: {RPM: 60}}, MaxInPlace: 3 * time.Second, Clock: c})
	var chans []<-chan acquireResult
	for range 6 {
		chans = append(chans, acquireAsync(l, flash, 0))
	}
	granted, refused := 0, 0
	var waits []time.Duration
	// One goes at once and two are refused; three sleep on the clock.
	for granted+refused < 3 {
		for i, ch := range chans {
			if ch == nil {
				continue
			}
			if r, ok := received(ch); ok {
				chans[i] = nil
				if _, isWait := IsWait(r.err); isWait {
					refused++
				} else if r.err == nil && r.ticket.Waited == 0 {
					granted++
				} else {
					t.Fatalf("unexpected %+v %v", r.ticket, r.err)
				}
			}
		}
	}
	if granted != 1 || refused != 2 {
		t.Fatalf("%d granted at once, %d refused; want 1 and 2", granted, refused)
	}
	waitPending(t, c, 3)
	for range 3 {
		c.Advance(time.Second)
		for i, ch := range chans {
			if ch == nil {
				continue
			}
			if r, ok := received(ch); ok {
				chans[i] = nil
				if r.err != nil {
					t.Fatal(r.err)
				}
				waits = append(waits, r.ticket.Waited)
			}
		}
	}
	if len(waits) != 3 || waits[0] != time.Second || waits[1] != 2*time.Second || waits[2] != 3*time.Second {
		t.Fatalf("reserved turns after %v, want 1 s, 2 s, 3 s", waits)
	}
}

// TestLimiterPauseVoidsReservation: a 429 shared while a caller sleeps on
// its reserved turn makes it wait for the pause too.
func TestLimiterPauseVoidsReservation(t *testing.T) {
	c := clock.NewFake(t0)
	s := newStore(t)
	l := New(Config{Store: s, Local: Table{flash: {RPM: 60}}, MaxInPlace: 5 * time.Second, Clock: c})
	ctx := context.Background()
	if _, err := l.Acquire(ctx, flash, 0); err != nil {
		t.Fatal(err)
	}
	ch := acquireAsync(l, flash, 0) // reserved for +1 s
	waitPending(t, c, 1)
	l.Cooldown(ctx, flash, 2*time.Second) // until +2 s
	c.Advance(time.Second)
	waitPending(t, c, 1) // now sleeping through the pause
	if _, ok := received(ch); ok {
		t.Fatal("went during the pause")
	}
	c.Advance(time.Second)
	r := <-ch
	if r.err != nil || r.ticket.Waited != 2*time.Second {
		t.Fatalf("after the pause: %+v %v", r.ticket, r.err)
	}
}
