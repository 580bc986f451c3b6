// Package clock lets background duties take time from an injectable source,
// so tests advance a fake clock instead of sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is the time source of timers and tickers.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
	// NewTicker delivers ticks every d.
	NewTicker(d time.Duration) Ticker
}

// Timer is a stoppable one-shot timer.
type Timer interface {
	Stop() bool
}

// Ticker delivers periodic ticks.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// NewTicker wraps time.NewTicker.
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Fake is a manually advanced clock for tests.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

type fakeWaiter struct {
	clock  *Fake
	at     time.Time
	period time.Duration // 0 for one-shot timers
	fn     func()
	ch     chan time.Time
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc schedules fn at now+d of the fake clock.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{clock: f, at: f.now.Add(d), fn: fn}
	f.waiters = append(f.waiters, w)
	return w
}

// NewTicker ticks every d of fake time.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{clock: f, at: f.now.Add(d), period: d, ch: make(chan time.Time, 1)}
	f.waiters = append(f.waiters, w)
	return fakeTicker{w}
}

// Advance moves the clock forward, firing due timers and ticks in order.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
		if len(f.waiters) == 0 || f.waiters[0].at.After(end) {
			break
		}
		w := f.waiters[0]
		f.now = w.at
		if w.period > 0 {
			w.at = w.at.Add(w.period)
			select {
			case w.ch <- f.now:
			default:
			}
			continue
		}
		f.waiters = f.waiters[1:]
		fn := w.fn
		f.mu.Unlock()
		fn()
		f.mu.Lock()
	}
	f.now = end
	f.mu.Unlock()
}

// Pending reports how many timers and tickers are waiting.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

func (w *fakeWaiter) remove() bool {
	f := w.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			return true
		}
	}
	return false
}

func (w *fakeWaiter) Stop() bool { return w.remove() }

type fakeTicker struct{ w *fakeWaiter }

func (t fakeTicker) C() <-chan time.Time { return t.w.ch }
func (t fakeTicker) Stop()               { t.w.remove() }
