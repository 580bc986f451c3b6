package coverage

import (
	"fmt"
	"strings"

	"github.com/qagen/qagen/llm"
)

// Format is the end-of-run summary, as the Python producer logs it: the
// three levels, the headline threshold when --coverage-threshold changed
// it, the length and position buckets, and the insights.
func (r *Report) Format() string {
	var b strings.Builder
	if e := r.Embedding; e != nil {
		dims := ""
		if e.Dimensions > 0 {
			dims = fmt.Sprintf(", %d dimensions", e.Dimensions)
		}
		fmt.Fprintf(&b, "カバレージ分析: %d chunks, %d Q&A pairs (%s %s%s)\n", r.TotalChunks, r.TotalQAPairs, e.Provider, e.Model, dims)
		if e.Provider == llm.OfflineEmbedName {
			b.WriteString("  note: offline embeddings compare words, not meaning; the thresholds are tuned for gemini-embedding-001\n")
		}
	} else {
		fmt.Fprintf(&b, "カバレージ分析: %d chunks, %d Q&A pairs\n", r.TotalChunks, r.TotalQAPairs)
	}
	for _, l := range []struct {
		name string
		l    Level
	}{{"strict", r.MultiThreshold.Strict}, {"standard", r.MultiThreshold.Standard}, {"lenient", r.MultiThreshold.Lenient}} {
		fmt.Fprintf(&b, "  %-9s (%.2f): %6s  %d/%d chunks\n", l.name, l.l.Threshold, Percent(l.l.CoverageRate), l.l.CoveredChunks, r.TotalChunks)
	}
	if r.Threshold != r.OptimalThresholds.Standard {
		fmt.Fprintf(&b, "  %-9s (%.2f): %6s  %d/%d chunks (--coverage-threshold)\n", "headline", r.Threshold, Percent(r.CoverageRate), r.CoveredChunks, r.TotalChunks)
	}
	a := r.ChunkAnalysis
	bucket := func(name string, x Bucket) string {
		if x.Count == 0 {
			return name + " 0"
		}
		return fmt.Sprintf("%s %d (%s, avg %.3f)", name, x.Count, Percent(x.CoverageRate), float64(x.AvgSimilarity))
	}
	fmt.Fprintf(&b, "  by length (threshold %.2f): %s, %s, %s\n", a.Summary.ThresholdUsed,
		bucket("short", a.ByLength.Short), bucket("medium", a.ByLength.Medium), bucket("long", a.ByLength.Long))
	fmt.Fprintf(&b, "  by position: %s, %s, %s\n",
		bucket("beginning", a.ByPosition.Beginning), bucket("middle", a.ByPosition.Middle), bucket("end", a.ByPosition.End))
	for _, s := range a.Summary.Insights {
		fmt.Fprintf(&b, "  - %s\n", s)
	}
	return b.String()
}
