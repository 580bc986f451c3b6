package worker

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// parseRateLimit reads Celery's rate_limit strings: "10/s", "100/m",
// "1000/h", or a bare number (per second). "" or "0" means no limit.
func parseRateLimit(s string) (perSecond float64, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num, unit, hasUnit := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid rate limit string: %q", s)
	}
	div := 1.0
	if hasUnit {
		unit = strings.TrimSpace(unit)
		if unit == "" {
			return 0, fmt.Errorf("invalid rate limit string: %q", s)
		}
		switch unit[:1] {
		case "s":
		case "m":
			div = 60
		case "h":
			div = 3600
		default:
			return 0, fmt.Errorf("invalid rate limit string: %q", s)
		}
	}
	return n / div, nil
}

// rateLimiter is Celery's per-task, per-worker rate limit: a token bucket
// per task name. A task over its rate waits in the scheduler (keeping its
// prefetch credit, so the worker does not hoard messages) instead of
// holding a slot.
type rateLimiter struct {
	mu      sync.Mutex // guards the fields below
	specs   map[string]string
	buckets map[string]*bucket
}

type bucket struct {
	rate   float64 // tokens per second
	tokens float64
	last   time.Time
}

func newRateLimiter() *rateLimiter {
	return &rateLimiter{specs: map[string]string{}, buckets: map[string]*bucket{}}
}

// set changes a task's limit; "" removes it.
func (r *rateLimiter) set(task, spec string) error {
	rate, err := parseRateLimit(spec)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rate == 0 {
		delete(r.specs, task)
		delete(r.buckets, task)
		return nil
	}
	r.specs[task] = spec
	// Celery's per-task bucket is TokenBucket(rate, capacity=1): no burst,
	// tasks are spaced 1/rate apart.
	r.buckets[task] = &bucket{rate: rate, tokens: 1}
	return nil
}

func (r *rateLimiter) spec(task string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.specs[task]
}

// reserve takes a token for task and returns how long the task must wait
// before it may run (0: now).
func (r *rateLimiter) reserve(task string, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[task]
	if b == nil {
		return 0
	}
	if !b.last.IsZero() {
		b.tokens = min(1, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
