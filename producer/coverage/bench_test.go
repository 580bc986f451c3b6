package coverage

import (
	"math/rand/v2"
	"testing"
)

func randomVectors(r *rand.Rand, n, d int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		v := make([]float32, d)
		for k := range v {
			v[k] = float32(r.NormFloat64())
		}
		out[i] = v
	}
	return out
}

// BenchmarkMaxSimilarities: 2,000 chunks against 6,000 Q&A pairs in 768
// dimensions (9.2 billion multiply-adds).
func BenchmarkMaxSimilarities(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	chunks, pairs := randomVectors(r, 2000, 768), randomVectors(r, 6000, 768)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := MaxSimilarities(chunks, pairs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2000*6000)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpairs/s")
}
