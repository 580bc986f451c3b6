package backend_test

import (
	"testing"

	"github.com/qagen/qagen/backend"
)

// BenchmarkStore measures storing results in batches of 64 (GET guard,
// SETEX and PUBLISH per result, one script call per batch); ns/op is per
// result.
func BenchmarkStore(b *testing.B) {
	e := newEnv(b, backend.Options{})
	recs := make([]backend.Record, b.N)
	for i := range recs {
		recs[i] = rec(newID(), "SUCCESS", `{"question": "q", "answer": "a", "score": 0.5}`)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < len(recs); i += 64 {
		if _, err := e.b.Store(ctx(), recs[i:min(i+64, len(recs))]...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c := e.pool.Get()
	defer c.Close()
	for i := 0; i < len(recs); i += 500 {
		var keys []any
		for _, r := range recs[i:min(i+500, len(recs))] {
			keys = append(keys, e.b.Key(r.TaskID))
		}
		if _, err := c.Do("UNLINK", keys...); err != nil {
			b.Fatal(err)
		}
	}
}
