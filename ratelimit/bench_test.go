package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/qagen/qagen/internal/testenv"
)

// BenchmarkTake is the limiter's cost per LLM call: one Lua script run on
// real Redis (both buckets), from parallel callers.
func BenchmarkTake(b *testing.B) {
	pool, _ := testenv.Redis(b, testenv.DBRateLimit)
	s := NewRedisStore(pool, testenv.Prefix(b))
	lim := Limit{RPM: 1 << 30, TPM: 1 << 30}
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.Take(ctx, flash, lim, 500, time.Now(), 5*time.Second); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
