package ratelimit

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// MemoryStore keeps the budget in this process: the pacing of one
// process that has no Redis (qagen generate without --use-celery). It
// follows RedisStore's arithmetic exactly (the same GCRA, reservations,
// waiting line, window fit and pauses), so a limiter behaves the same on
// either. It is safe for concurrent use.
type MemoryStore struct {
	// Window and MaxLine are as RedisStore's (defaults DefaultWindow and
	// DefaultMaxLine).
	Window  time.Duration
	MaxLine time.Duration

	mu     sync.Mutex // guards state and limits
	state  map[Key]*memState
	limits Table
}

// memState is one key's times, in milliseconds since the epoch.
type memState struct {
	req, tok, line, cool float64
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{Window: DefaultWindow, MaxLine: DefaultMaxLine, state: map[Key]*memState{}, limits: Table{}}
}

func (s *MemoryStore) get(k Key) *memState {
	st := s.state[k]
	if st == nil {
		st = &memState{}
		s.state[k] = st
	}
	return st
}

// Take implements Store.
func (s *MemoryStore) Take(_ context.Context, key Key, limit Limit, tokens int, now time.Time, reserve time.Duration) (time.Duration, bool, error) {
	ri, rcap, ti, tcap := intervals(limit, s.Window)
	n := float64(max(tokens, 0))
	t := ms(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(key)
	if st.cool > t {
		return msDuration(st.cool - t), false, nil
	}
	wait := 0.0
	var rtat, ttat float64
	if ri > 0 {
		rtat = math.Max(st.req, t) + ri
		wait = math.Max(wait, rtat-t-rcap)
	}
	if ti > 0 && n > 0 {
		tat := math.Max(st.tok, t)
		ttat = tat + ti*n
		if ti*n > tcap {
			wait = math.Max(wait, tat-t) // bigger than the bucket: once it is empty
		} else {
			wait = math.Max(wait, ttat-t-tcap)
		}
	}
	wait = math.Max(wait-0.001, 0)
	if wait > float64(reserve.Milliseconds()) {
		step := math.Max(ri, ti*n)
		maxq := float64(s.MaxLine.Milliseconds())
		at := math.Max(st.line, t+wait)
		if step <= 0 || at-t > maxq {
			return msDuration(wait + rand.Float64()*math.Max(maxq-wait, 0)), false, nil
		}
		st.line = at + step
		return msDuration(at - t), false, nil
	}
	if ri > 0 {
		st.req = rtat
	}
	if ti > 0 && n > 0 {
		st.tok = ttat
	}
	return msDuration(wait), true, nil
}

// msDuration rounds milliseconds up to a whole millisecond, as the Redis
// script answers.
func msDuration(x float64) time.Duration { return time.Duration(math.Ceil(x)) * time.Millisecond }

// Adjust implements Store.
func (s *MemoryStore) Adjust(_ context.Context, key Key, limit Limit, delta int, now time.Time) error {
	_, _, ti, _ := intervals(limit, s.Window)
	if ti == 0 || delta == 0 {
		return nil
	}
	t := ms(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(key)
	st.tok = math.Max(math.Max(st.tok, t)+ti*float64(delta), t)
	return nil
}

// Cooldown implements Store.
func (s *MemoryStore) Cooldown(_ context.Context, key Key, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(key)
	st.cool = math.Max(st.cool, ms(until))
	return nil
}

// Limits implements Store.
func (s *MemoryStore) Limits(context.Context) (Table, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := make(Table, len(s.limits))
	for k, v := range s.limits {
		t[k] = v
	}
	return t, nil
}

// SetLimit implements Store.
func (s *MemoryStore) SetLimit(_ context.Context, key Key, limit Limit) error {
	if limit.RPM < 0 || limit.TPM < 0 {
		return errors.New("ratelimit: negative limit")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits[key] = limit
	return nil
}

// DeleteLimit implements Store.
func (s *MemoryStore) DeleteLimit(_ context.Context, key Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.limits, key)
	return nil
}

// State implements Store.
func (s *MemoryStore) State(_ context.Context, key Key, now time.Time) (State, error) {
	t := ms(now)
	ahead := func(x float64) time.Duration {
		if x <= t {
			return 0
		}
		return time.Duration((x - t) * float64(time.Millisecond))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.state[key]
	if !ok {
		return State{}, nil
	}
	return State{CooldownLeft: ahead(st.cool), RequestsAhead: ahead(st.req), TokensAhead: ahead(st.tok)}, nil
}
