// Package coverage is the Python producer's coverage analysis
// (a02_make_qa_para.py --analyze-coverage): how well a data set's Q&A
// pairs cover the chunks of its documents, by the cosine similarity of
// their embeddings.
//
// As in Python: the chunks are the original ones (before merging), a
// pair's text is "question answer", a chunk's score is its largest
// similarity with any pair, and a chunk is covered when that score reaches
// the threshold — the dataset's standard one or --coverage-threshold.
// Three levels (strict, standard, lenient, always the dataset's table),
// buckets by length (cl100k tokens: short < 100, medium < 200, long) and by
// position in the chunk list (beginning < 33 %, middle < 67 %, end), and
// insights in Python's Japanese wording for any bucket under 70 %.
//
// Unlike Python: a failed embedding request fails the analysis with an
// error instead of counting zero vectors as uncovered chunks; a run
// without pairs gives a well-formed report (every chunk uncovered) rather
// than one that breaks the output writer; the insights skip empty
// buckets.
package coverage

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/llm"
)

// Chunk is an original chunk: its id and text.
type Chunk struct {
	ID   string
	Text string
}

// Pair is a Q&A pair.
type Pair struct {
	Question string
	Answer   string
}

// Text is what is embedded for a pair: f"{question} {answer}".
func (p Pair) Text() string { return p.Question + " " + p.Answer }

// Thresholds are the three coverage levels.
type Thresholds struct {
	Strict   float64 `json:"strict"`
	Standard float64 `json:"standard"`
	Lenient  float64 `json:"lenient"`
}

// datasetThresholds is Python's OPTIMAL_THRESHOLDS.
var datasetThresholds = map[string]Thresholds{
	"cc_news":       {0.80, 0.70, 0.60},
	"japanese_text": {0.75, 0.65, 0.55},
	"wikipedia_ja":  {0.85, 0.75, 0.65},
	"livedoor":      {0.78, 0.68, 0.58},
}

// DefaultThresholds are the levels of any other dataset (custom_upload).
var DefaultThresholds = Thresholds{0.8, 0.7, 0.6}

// DatasetThresholds returns a dataset's levels.
func DatasetThresholds(datasetType string) Thresholds {
	if t, ok := datasetThresholds[datasetType]; ok {
		return t
	}
	return DefaultThresholds
}

// TokenCounter counts tokens (the producer's cl100k_base tokenizer).
type TokenCounter interface {
	Count(text string) int
}

// Options shape an analysis.
type Options struct {
	// DatasetType chooses the thresholds (custom_upload and anything
	// unknown: 0.8/0.7/0.6).
	DatasetType string
	// Threshold, when > 0, replaces the standard level for the headline
	// rate, uncovered_chunks and the chunk analysis (not in
	// multi_threshold), as --coverage-threshold does in Python.
	Threshold float64
	// Tokens counts the chunks' tokens for the length buckets (required).
	Tokens TokenCounter
	// Log receives progress messages (zero value: none).
	Log zerolog.Logger
}

// Length and position bucket limits.
const (
	shortTokens    = 100
	mediumTokens   = 200
	beginningShare = 0.33
	middleShare    = 0.67
	// insightBelow is the bucket coverage rate under which an insight is
	// written.
	insightBelow = 0.7
	// previewRunes is the length of text_preview.
	previewRunes = 200
)

// Analyze embeds the chunks' texts and the pairs' "question answer" texts
// with emb and analyses the coverage. A blank chunk is uncovered without
// being embedded; blank pairs are left out. Any embedding failure is
// returned (wrapped): there is no partial report.
func Analyze(ctx context.Context, emb llm.Embedder, chunks []Chunk, pairs []Pair, opts Options) (*Report, error) {
	if opts.Tokens == nil {
		return nil, fmt.Errorf("coverage: no token counter")
	}
	var chunkTexts, qaTexts []string
	var chunkAt []int // index of each embedded chunk
	for i, c := range chunks {
		if strings.TrimSpace(c.Text) != "" {
			chunkTexts = append(chunkTexts, c.Text)
			chunkAt = append(chunkAt, i)
		}
	}
	for _, p := range pairs {
		if t := p.Text(); strings.TrimSpace(t) != "" {
			qaTexts = append(qaTexts, t)
		}
	}
	sims := make([]float32, len(chunks))
	info := &Embedding{Provider: emb.Name(), Model: emb.Model(), ChunkTexts: len(chunkTexts), QATexts: len(qaTexts)}
	if len(chunkTexts) > 0 && len(qaTexts) > 0 {
		start := time.Now()
		opts.Log.Info().Str("provider", emb.Name()).Str("model", emb.Model()).Int("chunks", len(chunkTexts)).
			Int("qa_pairs", len(qaTexts)).Msg("coverage: embedding chunks and Q&A pairs")
		chunkVecs, err := emb.Embed(ctx, chunkTexts)
		if err != nil {
			return nil, fmt.Errorf("coverage: %s embeddings of %d chunks: %w", emb.Name(), len(chunkTexts), err)
		}
		qaVecs, err := emb.Embed(ctx, qaTexts)
		if err != nil {
			return nil, fmt.Errorf("coverage: %s embeddings of %d Q&A pairs: %w", emb.Name(), len(qaTexts), err)
		}
		if len(chunkVecs) != len(chunkTexts) || len(qaVecs) != len(qaTexts) {
			return nil, fmt.Errorf("coverage: %s returned %d and %d vectors for %d chunks and %d pairs",
				emb.Name(), len(chunkVecs), len(qaVecs), len(chunkTexts), len(qaTexts))
		}
		info.Dimensions = len(chunkVecs[0])
		if d := len(qaVecs[0]); d != info.Dimensions {
			return nil, fmt.Errorf("coverage: chunk vectors have %d dimensions, Q&A vectors %d", info.Dimensions, d)
		}
		embedded := time.Now()
		maxSims, err := MaxSimilarities(chunkVecs, qaVecs)
		if err != nil {
			return nil, fmt.Errorf("coverage: %w", err)
		}
		for k, i := range chunkAt {
			sims[i] = maxSims[k]
		}
		opts.Log.Info().Dur("embedding", embedded.Sub(start)).Dur("similarity", time.Since(embedded)).
			Int("dimensions", info.Dimensions).Msg("coverage: similarities computed")
	} else if len(qaTexts) == 0 {
		opts.Log.Warn().Int("chunks", len(chunks)).Msg("coverage: no Q&A pairs; every chunk is uncovered")
	}
	r := Build(chunks, sims, len(qaTexts), opts)
	r.Embedding = info
	return r, nil
}

// Build makes the report from each chunk's largest similarity (sims[i]
// for chunks[i]) and the number of pairs compared.
func Build(chunks []Chunk, sims []float32, qaPairs int, opts Options) *Report {
	levels := DatasetThresholds(opts.DatasetType)
	threshold := levels.Standard
	if opts.Threshold > 0 {
		threshold = opts.Threshold
	}
	n := len(chunks)
	r := &Report{
		TotalChunks: n, Threshold: threshold, DatasetType: opts.DatasetType, OptimalThresholds: levels,
		Analyzed: true, TotalQAPairs: qaPairs,
		UncoveredChunks: []Uncovered{}, MaxSimilarities: make([]Score, n),
	}
	for i, c := range chunks {
		s := sims[i]
		r.MaxSimilarities[i] = Score(s)
		if covered(s, threshold) {
			r.CoveredChunks++
			continue
		}
		r.UncoveredChunks = append(r.UncoveredChunks, Uncovered{
			ChunkID: c.ID, Similarity: Score(s), Gap: gap(threshold, s), TextPreview: Preview(c.Text),
		})
	}
	r.CoverageRate = rate(r.CoveredChunks, n)
	r.MultiThreshold = MultiThreshold{
		Strict:   level(chunks, sims, levels.Strict),
		Standard: level(chunks, sims, levels.Standard),
		Lenient:  level(chunks, sims, levels.Lenient),
	}
	r.ChunkAnalysis = analyse(chunks, sims, qaPairs, threshold, opts.Tokens)
	return r
}

// covered compares at the similarities' precision: a similarity of
// float32(0.7) reaches a threshold of 0.7.
func covered(sim float32, threshold float64) bool { return sim >= float32(threshold) }

func gap(threshold float64, sim float32) Score { return Score(threshold - float64(sim)) }

func rate(k, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(k) / float64(n)
}

func level(chunks []Chunk, sims []float32, threshold float64) Level {
	l := Level{Threshold: threshold, UncoveredChunks: []LevelUncovered{}}
	for i, c := range chunks {
		if covered(sims[i], threshold) {
			l.CoveredChunks++
			continue
		}
		l.UncoveredChunks = append(l.UncoveredChunks, LevelUncovered{ChunkID: c.ID, Similarity: Score(sims[i]), Gap: gap(threshold, sims[i])})
	}
	l.UncoveredCount = len(l.UncoveredChunks)
	l.CoverageRate = rate(l.CoveredChunks, len(chunks))
	return l
}

// bucketSum accumulates one bucket.
type bucketSum struct {
	count, covered int
	sum            float64
}

func (b *bucketSum) add(sim float32, threshold float64) {
	b.count++
	b.sum += float64(sim)
	if covered(sim, threshold) {
		b.covered++
	}
}

func (b *bucketSum) bucket() Bucket {
	out := Bucket{Count: b.count, Covered: b.covered, CoverageRate: rate(b.covered, b.count)}
	if b.count > 0 {
		out.AvgSimilarity = Score(b.sum / float64(b.count))
	}
	return out
}

// analyse is Python's chunk characteristics analysis.
func analyse(chunks []Chunk, sims []float32, qaPairs int, threshold float64, tok TokenCounter) ChunkAnalysis {
	var length, position [3]bucketSum
	n := len(chunks)
	for i, c := range chunks {
		t := 0
		if tok != nil {
			t = tok.Count(c.Text)
		}
		switch {
		case t < shortTokens:
			length[0].add(sims[i], threshold)
		case t < mediumTokens:
			length[1].add(sims[i], threshold)
		default:
			length[2].add(sims[i], threshold)
		}
		switch p := float64(i); {
		case p < beginningShare*float64(n):
			position[0].add(sims[i], threshold)
		case p < middleShare*float64(n):
			position[1].add(sims[i], threshold)
		default:
			position[2].add(sims[i], threshold)
		}
	}
	a := ChunkAnalysis{
		ByLength:   LengthBuckets{Short: length[0].bucket(), Medium: length[1].bucket(), Long: length[2].bucket()},
		ByPosition: PositionBuckets{Beginning: position[0].bucket(), Middle: position[1].bucket(), End: position[2].bucket()},
		Summary:    Summary{TotalChunks: n, TotalQAPairs: qaPairs, ThresholdUsed: threshold, Insights: []string{}},
	}
	insight := func(format, name string, b Bucket) {
		if b.Count > 0 && b.CoverageRate < insightBelow {
			a.Summary.Insights = append(a.Summary.Insights, fmt.Sprintf(format, name, Percent(b.CoverageRate)))
		}
	}
	const lengthInsight, positionInsight = "%sチャンクのカバレージが低い（%s）", "文書%s部分のカバレージが低い（%s）"
	insight(lengthInsight, "short", a.ByLength.Short)
	insight(lengthInsight, "medium", a.ByLength.Medium)
	insight(lengthInsight, "long", a.ByLength.Long)
	insight(positionInsight, "beginning", a.ByPosition.Beginning)
	insight(positionInsight, "middle", a.ByPosition.Middle)
	insight(positionInsight, "end", a.ByPosition.End)
	return a
}

// Percent formats a rate as Python's f"{rate:.1%}": 0.4567 -> "45.7%".
func Percent(rate float64) string { return strconv.FormatFloat(rate*100, 'f', 1, 64) + "%" }

// Preview is text_preview: the first 200 characters (never a cut UTF-8
// sequence) and "...", as Python's text[:200] + "...".
func Preview(text string) string {
	n := 0
	for i := range text {
		if n == previewRunes {
			return text[:i] + "..."
		}
		n++
	}
	return text + "..."
}

// Report is the analysis, with Python's keys in Python's order, followed by
// qagen's: analyzed (true), total_qa_pairs and the embedding used. Its
// JSON is the coverage_<dataset>_<ts>.json file, uncovered_chunks already
// in the form Python's save_results writes.
type Report struct {
	CoverageRate      float64        `json:"coverage_rate"`
	CoveredChunks     int            `json:"covered_chunks"`
	TotalChunks       int            `json:"total_chunks"`
	UncoveredChunks   []Uncovered    `json:"uncovered_chunks"`
	MaxSimilarities   []Score        `json:"max_similarities"`
	Threshold         float64        `json:"threshold"`
	MultiThreshold    MultiThreshold `json:"multi_threshold"`
	ChunkAnalysis     ChunkAnalysis  `json:"chunk_analysis"`
	DatasetType       string         `json:"dataset_type"`
	OptimalThresholds Thresholds     `json:"optimal_thresholds"`

	Analyzed     bool       `json:"analyzed"`
	TotalQAPairs int        `json:"total_qa_pairs"`
	Embedding    *Embedding `json:"embedding,omitempty"`
}

// Uncovered is a chunk under the headline threshold.
type Uncovered struct {
	ChunkID     string `json:"chunk_id"`
	Similarity  Score  `json:"similarity"`
	Gap         Score  `json:"gap"` // threshold - similarity
	TextPreview string `json:"text_preview"`
}

// MultiThreshold is the three-level block.
type MultiThreshold struct {
	Strict   Level `json:"strict"`
	Standard Level `json:"standard"`
	Lenient  Level `json:"lenient"`
}

// Level is the coverage at one threshold.
type Level struct {
	Threshold       float64          `json:"threshold"`
	CoveredChunks   int              `json:"covered_chunks"`
	CoverageRate    float64          `json:"coverage_rate"`
	UncoveredCount  int              `json:"uncovered_count"`
	UncoveredChunks []LevelUncovered `json:"uncovered_chunks"`
}

// LevelUncovered is a chunk under one level's threshold.
type LevelUncovered struct {
	ChunkID    string `json:"chunk_id"`
	Similarity Score  `json:"similarity"`
	Gap        Score  `json:"gap"`
}

// ChunkAnalysis is the characteristics analysis.
type ChunkAnalysis struct {
	ByLength   LengthBuckets   `json:"by_length"`
	ByPosition PositionBuckets `json:"by_position"`
	Summary    Summary         `json:"summary"`
}

// LengthBuckets split chunks by cl100k tokens: < 100, < 200, the rest.
type LengthBuckets struct {
	Short  Bucket `json:"short"`
	Medium Bucket `json:"medium"`
	Long   Bucket `json:"long"`
}

// PositionBuckets split chunks by their index i in the chunk list of N:
// i < 0.33 N, i < 0.67 N, the rest.
type PositionBuckets struct {
	Beginning Bucket `json:"beginning"`
	Middle    Bucket `json:"middle"`
	End       Bucket `json:"end"`
}

// Bucket is the coverage of a group of chunks.
type Bucket struct {
	Count         int     `json:"count"`
	Covered       int     `json:"covered"`
	AvgSimilarity Score   `json:"avg_similarity"`
	CoverageRate  float64 `json:"coverage_rate"`
}

// Summary closes the chunk analysis.
type Summary struct {
	TotalChunks   int      `json:"total_chunks"`
	TotalQAPairs  int      `json:"total_qa_pairs"`
	ThresholdUsed float64  `json:"threshold_used"`
	Insights      []string `json:"insights"`
}

// Embedding says which vectors the analysis compared.
type Embedding struct {
	Provider   string `json:"provider"`
	Model      string `json:"model"`
	Dimensions int    `json:"dimensions,omitempty"`
	ChunkTexts int    `json:"chunk_texts"`
	QATexts    int    `json:"qa_texts"`
}

// Score is a similarity (or a gap) computed in float32; its JSON is the
// shortest decimal that reads back as the same float32 (0.7234 rather
// than 0.7233999967575073).
type Score float32

// MarshalJSON implements json.Marshaler.
func (s Score) MarshalJSON() ([]byte, error) {
	f := float64(s)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("coverage: similarity %v is not a number", f)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && a < 1e-6 {
		format = 'e'
	}
	return strconv.AppendFloat(nil, f, format, -1, 32), nil
}
