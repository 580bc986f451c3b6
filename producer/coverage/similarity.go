package coverage

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// MaxSimilarities returns, for each chunk vector, its largest cosine
// similarity with any of the Q&A vectors (any pair may cover any chunk,
// as in the Python analysis). With no Q&A vectors every chunk gets 0: no
// pair covers it.
//
// Each vector is normalised once; the similarities are then dot products
// in float32, computed in blocks (four chunks against a run of pairs that
// stays in the CPU cache) on every core, without storing the chunks × Q&A
// matrix. The vectors must all have one length and a non-zero norm; they
// are not modified.
func MaxSimilarities(chunks, pairs [][]float32) ([]float32, error) {
	out := make([]float32, len(chunks))
	if len(chunks) == 0 || len(pairs) == 0 {
		return out, nil
	}
	d := len(chunks[0])
	if d == 0 {
		return nil, fmt.Errorf("chunk vector 1 is empty")
	}
	c, err := normalized(chunks, d, "chunk")
	if err != nil {
		return nil, err
	}
	q, err := normalized(pairs, d, "Q&A")
	if err != nil {
		return nil, err
	}
	nc := len(chunks)
	workers := max(1, min(runtime.GOMAXPROCS(0), nc/4))
	per := (nc/workers + 3) &^ 3 // rows per worker, a multiple of 4
	var wg sync.WaitGroup
	for lo := 0; lo < nc; lo += per {
		hi := min(lo+per, nc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			maxRows(out[lo:hi], c[lo*d:hi*d], q, d)
		}()
	}
	wg.Wait()
	return out, nil
}

// normalized copies vectors into one slice, each scaled to unit length.
func normalized(vs [][]float32, d int, what string) ([]float32, error) {
	out := make([]float32, len(vs)*d)
	for i, v := range vs {
		if len(v) != d {
			return nil, fmt.Errorf("%s vector %d has %d dimensions, want %d", what, i+1, len(v), d)
		}
		var sum float64
		for _, x := range v {
			sum += float64(x) * float64(x)
		}
		if sum == 0 || math.IsNaN(sum) || math.IsInf(sum, 0) {
			return nil, fmt.Errorf("%s vector %d has no direction (norm %v)", what, i+1, math.Sqrt(sum))
		}
		inv := 1 / math.Sqrt(sum)
		row := out[i*d : (i+1)*d]
		for k, x := range v {
			row[k] = float32(float64(x) * inv)
		}
	}
	return out, nil
}

// cacheBytes is the size of the run of Q&A vectors kept in cache while
// every group of chunks is compared with it.
const cacheBytes = 192 << 10

// maxRows sets best[i] to the largest dot product of chunk row i of c
// with any row of q (rows of d floats).
func maxRows(best, c, q []float32, d int) {
	n := len(best)
	nq := len(q) / d
	for i := range best {
		best[i] = float32(math.Inf(-1))
	}
	block := max(1, cacheBytes/(4*d))
	for qb := 0; qb < nq; qb += block {
		qs := q[qb*d : min(qb+block, nq)*d]
		i := 0
		for ; i+4 <= n; i += 4 {
			c0, c1, c2, c3 := c[i*d:(i+1)*d], c[(i+1)*d:(i+2)*d], c[(i+2)*d:(i+3)*d], c[(i+3)*d:(i+4)*d]
			b0, b1, b2, b3 := best[i], best[i+1], best[i+2], best[i+3]
			for j := 0; j+d <= len(qs); j += d {
				s0, s1, s2, s3 := dot4(qs[j:j+d], c0, c1, c2, c3)
				b0, b1, b2, b3 = max(b0, s0), max(b1, s1), max(b2, s2), max(b3, s3)
			}
			best[i], best[i+1], best[i+2], best[i+3] = b0, b1, b2, b3
		}
		for ; i < n; i++ {
			ci := c[i*d : (i+1)*d]
			b := best[i]
			for j := 0; j+d <= len(qs); j += d {
				b = max(b, dot(qs[j:j+d], ci))
			}
			best[i] = b
		}
	}
}

// dot4 returns the dot products of x with a, b, c and e (all of x's
// length): one pass over x, four independent sums.
func dot4(x, a, b, c, e []float32) (s0, s1, s2, s3 float32) {
	a, b, c, e = a[:len(x)], b[:len(x)], c[:len(x)], e[:len(x)]
	for k, v := range x {
		s0 += v * a[k]
		s1 += v * b[k]
		s2 += v * c[k]
		s3 += v * e[k]
	}
	return
}

// dot returns the dot product of x and y (of x's length), with four
// partial sums.
func dot(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	k := 0
	for ; k+4 <= len(x); k += 4 {
		s0 += x[k] * y[k]
		s1 += x[k+1] * y[k+1]
		s2 += x[k+2] * y[k+2]
		s3 += x[k+3] * y[k+3]
	}
	for ; k < len(x); k++ {
		s0 += x[k] * y[k]
	}
	return (s0 + s1) + (s2 + s3)
}
