package fakellm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Latency is the delay before each answer: uniform in [Min, Max] (fixed
// when they are equal).
type Latency struct {
	Min, Max time.Duration
}

// ParseLatency reads "200ms" (fixed), "200ms±50ms" or "200ms+-50ms"
// (uniform in 150ms..250ms, never below 0), or "uniform:100ms-300ms".
// "" and "0" mean none.
func ParseLatency(s string) (Latency, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Latency{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "uniform:"); ok {
		lo, hi, ok := strings.Cut(rest, "-")
		if !ok {
			return Latency{}, fmt.Errorf("latency %q: want uniform:MIN-MAX", s)
		}
		a, err1 := time.ParseDuration(strings.TrimSpace(lo))
		b, err2 := time.ParseDuration(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return Latency{}, fmt.Errorf("latency %q: want uniform:MIN-MAX with 0 <= MIN <= MAX", s)
		}
		return Latency{Min: a, Max: b}, nil
	}
	for _, sep := range []string{"±", "+-", "+/-"} {
		if base, jitter, ok := strings.Cut(s, sep); ok {
			b, err1 := time.ParseDuration(strings.TrimSpace(base))
			j, err2 := time.ParseDuration(strings.TrimSpace(jitter))
			if err1 != nil || err2 != nil || b < 0 || j < 0 {
				return Latency{}, fmt.Errorf("latency %q: want BASE±JITTER", s)
			}
			return Latency{Min: max(b-j, 0), Max: b + j}, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return Latency{}, fmt.Errorf("latency %q: want a duration, BASE±JITTER or uniform:MIN-MAX", s)
	}
	return Latency{Min: d, Max: d}, nil
}

func (l Latency) String() string {
	switch {
	case l.Max <= 0:
		return "0"
	case l.Min == l.Max:
		return l.Min.String()
	}
	return "uniform:" + l.Min.String() + "-" + l.Max.String()
}

// draw picks a delay; u is uniform in [0, 1).
func (l Latency) draw(u float64) time.Duration {
	if l.Max <= l.Min {
		return max(l.Min, 0)
	}
	return l.Min + time.Duration(u*float64(l.Max-l.Min))
}

// Fault is an injected failure.
type Fault string

// Faults, in the order they are checked.
const (
	// FaultRateLimit answers 429 as if a quota were exhausted.
	FaultRateLimit Fault = "429"
	// FaultServerError answers 500.
	FaultServerError Fault = "500"
	// FaultTimeout hangs until the client gives up, the server closes, or
	// Config.HangFor passes (then 504).
	FaultTimeout Fault = "timeout"
	// FaultSchema rejects structured output with a 400 (requests that ask
	// for none are answered normally).
	FaultSchema Fault = "schema"
	// FaultMalformed answers 200 with the JSON cut off halfway.
	FaultMalformed Fault = "malformed"
	// FaultEmpty answers 200 with an empty text.
	FaultEmpty Fault = "empty"
)

// AllFaults lists the faults in the order they are checked.
var AllFaults = []Fault{FaultRateLimit, FaultServerError, FaultTimeout, FaultSchema, FaultMalformed, FaultEmpty}

// ParseFaults reads a comma-separated fault list ("500,timeout,malformed,
// empty"; "all" for every fault).
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	seen := map[Fault]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if f == "all" {
			return append([]Fault(nil), AllFaults...), nil
		}
		if !slices.Contains(AllFaults, Fault(f)) {
			return nil, fmt.Errorf("unknown fault %q (429, 500, timeout, schema, malformed, empty)", f)
		}
		if !seen[Fault(f)] {
			seen[Fault(f)] = true
			out = append(out, Fault(f))
		}
	}
	return out, nil
}

// SpreadFailRate gives each fault the same independent probability p so
// that a request fails with probability rate: 1-(1-p)^len(kinds) = rate.
// (FaultSchema only hits requests that ask for structured output.)
func SpreadFailRate(rate float64, kinds []Fault) (map[Fault]float64, error) {
	if rate < 0 || rate > 1 || math.IsNaN(rate) {
		return nil, fmt.Errorf("fail rate %v is not between 0 and 1", rate)
	}
	out := map[Fault]float64{}
	if rate == 0 || len(kinds) == 0 {
		return out, nil
	}
	p := 1 - math.Pow(1-rate, 1/float64(len(kinds)))
	for _, k := range kinds {
		out[k] = p
	}
	return out, nil
}

// roll draws every fault (always the same number of draws per request, so
// a seed gives the same sequence) and returns the first that hits.
func roll(rng *rand.Rand, faults map[Fault]float64, structured bool) Fault {
	var hit Fault
	for _, f := range AllFaults {
		u := rng.Float64()
		if hit == "" && u < faults[f] && (f != FaultSchema || structured) {
			hit = f
		}
	}
	return hit
}
