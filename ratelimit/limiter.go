package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/internal/clock"
)

// WaitError says a call may not start before Wait has passed; the caller
// should give its slot back (a Celery task re-schedules itself) rather
// than sleep that long.
type WaitError struct {
	Key  Key
	Wait time.Duration
	// Cause is set when the wait comes from a Redis outage, not the budget.
	Cause error
}

func (e *WaitError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("rate limit %s: store unavailable (%v); try again in %s", e.Key, e.Cause, e.Wait)
	}
	return fmt.Sprintf("rate limit %s: next call in %s", e.Key, e.Wait.Round(time.Millisecond))
}

func (e *WaitError) Unwrap() error { return e.Cause }

// Config configures a Limiter.
type Config struct {
	Store Store
	// Local limits (flags, env, file); the fleet's limits in the store win.
	Local Table
	// MaxInPlace is the longest wait taken inside the caller (default 5 s);
	// longer waits return a *WaitError.
	MaxInPlace time.Duration
	// Refresh is how often the fleet's limits are re-read (default 2 s), so
	// a change applies without restarting workers.
	Refresh  time.Duration
	Disabled bool
	Clock    clock.Clock
	Logger   zerolog.Logger
}

// Limiter paces calls to providers with the fleet-wide budget. It never
// busy-polls: it sleeps exactly until the budget allows a call, and fails
// safe (waits) when the store cannot be reached, never unlimited.
type Limiter struct {
	cfg Config

	mu    sync.Mutex // guards fleet and read
	fleet Table      // the store's limits as last read
	read  time.Time  // when the last read started
}

// New returns a limiter.
func New(cfg Config) *Limiter {
	if cfg.MaxInPlace <= 0 {
		cfg.MaxInPlace = 5 * time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Limiter{cfg: cfg}
}

// Limit returns the limit in force for key: the fleet's (set in the store),
// else the local one, else the built-in default for the model.
func (l *Limiter) Limit(ctx context.Context, key Key) Limit {
	if lim, ok := l.fleetLimits(ctx).Find(key); ok {
		return lim
	}
	lim, _ := l.cfg.Local.Lookup(key)
	return lim
}

// fleetLimits returns the fleet's limits, re-read from the store once
// Refresh has passed: by one caller, while the others go on with the
// table they have. Until a first read succeeds every caller tries.
func (l *Limiter) fleetLimits(ctx context.Context) Table {
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	fleet := l.fleet
	refresh := fleet == nil || now.Sub(l.read) >= l.cfg.Refresh
	if refresh {
		l.read = now
	}
	l.mu.Unlock()
	if !refresh {
		return fleet
	}
	t, err := l.cfg.Store.Limits(ctx)
	if err != nil {
		return fleet // the last table read, or none: the local limits apply
	}
	l.mu.Lock()
	l.fleet = t
	l.mu.Unlock()
	return t
}

// Ticket is a granted call; Done corrects its token estimate.
type Ticket struct {
	Key    Key
	Limit  Limit
	Tokens int
	Waited time.Duration
}

// Acquire waits until key's budget allows a call of tokens (input plus
// expected output). A call that can go within MaxInPlace reserves its
// turn and sleeps until then; a longer wait returns a *WaitError without
// spending anything, so the caller can give its slot back. Reservations
// keep waiting callers in a queue: only as many hold a slot as the budget
// lets through in MaxInPlace.
func (l *Limiter) Acquire(ctx context.Context, key Key, tokens int) (Ticket, error) {
	if l == nil || l.cfg.Disabled {
		return Ticket{Key: key}, nil
	}
	lim := l.Limit(ctx, key)
	t := Ticket{Key: key, Limit: lim, Tokens: tokens}
	// An unlimited key still goes through the store: a provider's 429
	// pauses it like any other.
	backoff := 50 * time.Millisecond
	for {
		wait, granted, err := l.cfg.Store.Take(ctx, key, lim, tokens, l.cfg.Clock.Now(), l.cfg.MaxInPlace-t.Waited)
		if err != nil {
			if ctx.Err() != nil {
				return t, ctx.Err()
			}
			// Fail safe: without the store there is no budget to spend.
			l.cfg.Logger.Warn().Err(err).Str("key", key.String()).Msg("rate limit store unreachable; waiting")
			if t.Waited+backoff > l.cfg.MaxInPlace {
				return t, &WaitError{Key: key, Wait: backoff, Cause: err}
			}
			wait, backoff = backoff, min(backoff*2, time.Second)
		} else if granted && wait == 0 {
			return t, nil
		} else if !granted && t.Waited+wait > l.cfg.MaxInPlace {
			return t, &WaitError{Key: key, Wait: wait}
		}
		if err := l.sleep(ctx, wait); err != nil {
			return t, err
		}
		t.Waited += wait
		if !granted {
			continue
		}
		// A reserved turn has come. A 429 shared meanwhile voids it: the
		// provider asked the fleet to pause.
		st, err := l.cfg.Store.State(ctx, key, l.cfg.Clock.Now())
		if err != nil || st.CooldownLeft == 0 {
			return t, nil
		}
		if t.Waited+st.CooldownLeft > l.cfg.MaxInPlace {
			return t, &WaitError{Key: key, Wait: st.CooldownLeft}
		}
	}
}

func (l *Limiter) sleep(ctx context.Context, d time.Duration) error {
	done := make(chan struct{})
	timer := l.cfg.Clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		timer.Stop()
		return ctx.Err()
	}
}

// Done charges (or refunds) the difference between a call's real token
// use and its estimate.
func (l *Limiter) Done(ctx context.Context, t Ticket, actual int) {
	if l == nil || l.cfg.Disabled || t.Limit.TPM <= 0 || actual <= 0 || actual == t.Tokens {
		return
	}
	if err := l.cfg.Store.Adjust(ctx, t.Key, t.Limit, actual-t.Tokens, l.cfg.Clock.Now()); err != nil {
		l.cfg.Logger.Warn().Err(err).Str("key", t.Key.String()).Msg("could not correct the token budget")
	}
}

// Cooldown pauses every worker's calls for key, after a 429 that asked for
// a wait.
func (l *Limiter) Cooldown(ctx context.Context, key Key, d time.Duration) {
	if l == nil || l.cfg.Disabled || d <= 0 {
		return
	}
	if err := l.cfg.Store.Cooldown(ctx, key, l.cfg.Clock.Now().Add(d)); err != nil {
		l.cfg.Logger.Warn().Err(err).Str("key", key.String()).Msg("could not share the provider's cool-down")
		return
	}
	l.cfg.Logger.Warn().Str("key", key.String()).Dur("for", d).Msg("provider rate-limited us: the fleet pauses this model")
}

// IsWait reports whether err asks the caller to come back later.
func IsWait(err error) (*WaitError, bool) {
	var w *WaitError
	ok := errors.As(err, &w)
	return w, ok
}
