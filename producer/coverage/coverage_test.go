package coverage

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qagen/qagen/llm"
)

// words counts whitespace-separated words: token counts the tests choose.
type words struct{}

func (words) Count(s string) int { return len(strings.Fields(s)) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-5 }

func TestMaxSimilaritiesKnown(t *testing.T) {
	chunks := [][]float32{
		{1, 0, 0},
		{0, 5, 0}, // not unit length: normalised
		{0, 0, 1},
		{1, 1, 0},
		{-1, 0, 0},
	}
	pairs := [][]float32{
		{3, 0, 0},
		{0.6, 0.8, 0},
	}
	got, err := MaxSimilarities(chunks, pairs)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 0.8, 0, 1.4 / math.Sqrt2, -0.6}
	for i := range want {
		if !near(float64(got[i]), want[i]) {
			t.Errorf("chunk %d: %v, want %v", i, got[i], want[i])
		}
	}
	if chunks[1][1] != 5 || pairs[0][0] != 3 {
		t.Error("the input vectors were modified")
	}
}

// TestMaxSimilaritiesBlocks: sizes that leave remainders everywhere (rows
// not a multiple of 4, pairs over several cache blocks, several workers)
// agree with a plain float64 computation.
func TestMaxSimilaritiesBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, c := range []struct{ nc, nq, d int }{{1, 1, 1}, {3, 5, 7}, {4, 1, 16}, {23, 41, 3072}, {130, 70, 768}} {
		chunks, pairs := randomVectors(r, c.nc, c.d), randomVectors(r, c.nq, c.d)
		got, err := MaxSimilarities(chunks, pairs)
		if err != nil {
			t.Fatal(err)
		}
		norm := func(v []float32) float64 {
			s := 0.0
			for _, x := range v {
				s += float64(x) * float64(x)
			}
			return math.Sqrt(s)
		}
		for i, cv := range chunks {
			best := math.Inf(-1)
			for _, qv := range pairs {
				s := 0.0
				for k := range cv {
					s += float64(cv[k]) * float64(qv[k])
				}
				best = math.Max(best, s/norm(cv)/norm(qv))
			}
			if math.Abs(float64(got[i])-best) > 1e-4 {
				t.Fatalf("%+v chunk %d: %v, want %v", c, i, got[i], best)
			}
		}
	}
}

func TestMaxSimilaritiesEdges(t *testing.T) {
	got, err := MaxSimilarities([][]float32{{1, 0}, {0, 1}}, nil)
	if err != nil || len(got) != 2 || got[0] != 0 || got[1] != 0 {
		t.Errorf("no pairs: %v %v, want zeros", got, err)
	}
	if got, err := MaxSimilarities(nil, [][]float32{{1}}); err != nil || len(got) != 0 {
		t.Errorf("no chunks: %v %v", got, err)
	}
	if _, err := MaxSimilarities([][]float32{{1, 0}}, [][]float32{{1, 0, 0}}); err == nil || !strings.Contains(err.Error(), "dimensions") {
		t.Errorf("dimension mismatch: %v", err)
	}
	if _, err := MaxSimilarities([][]float32{{1, 0}, {0, 0}}, [][]float32{{1, 0}}); err == nil || !strings.Contains(err.Error(), "chunk vector 2") {
		t.Errorf("zero vector: %v", err)
	}
	if _, err := MaxSimilarities([][]float32{{1, 0}}, [][]float32{{float32(math.NaN()), 0}}); err == nil {
		t.Error("NaN accepted")
	}
}

func TestThresholds(t *testing.T) {
	for ds, want := range map[string]Thresholds{
		"cc_news": {0.80, 0.70, 0.60}, "japanese_text": {0.75, 0.65, 0.55}, "wikipedia_ja": {0.85, 0.75, 0.65},
		"livedoor": {0.78, 0.68, 0.58}, "custom_upload": {0.8, 0.7, 0.6}, "": {0.8, 0.7, 0.6},
	} {
		if got := DatasetThresholds(ds); got != want {
			t.Errorf("%q: %+v, want %+v", ds, got, want)
		}
	}
}

// sample is ten chunks: tokens (words) 50, 150 or 250, and their
// similarities.
func sample() ([]Chunk, []float32) {
	lengths := []int{50, 50, 150, 250, 150, 50, 250, 150, 50, 250}
	sims := []float32{0.95, 0.85, 0.75, 0.72, 0.65, 0.61, 0.55, 0.3, 0.7, 0}
	chunks := make([]Chunk, len(lengths))
	for i, n := range lengths {
		chunks[i] = Chunk{ID: "doc_chunk_" + string(rune('a'+i)), Text: strings.Repeat("w ", n)}
	}
	return chunks, sims
}

func TestBuildLevels(t *testing.T) {
	chunks, sims := sample()
	r := Build(chunks, sims, 30, Options{DatasetType: "cc_news", Tokens: words{}})
	// Standard 0.7 covers 0.95, 0.85, 0.75, 0.72 and 0.7 (float32(0.7)
	// reaches 0.7).
	if r.Threshold != 0.7 || r.CoveredChunks != 5 || r.TotalChunks != 10 || r.CoverageRate != 0.5 || !r.Analyzed || r.TotalQAPairs != 30 {
		t.Fatalf("headline %+v", r)
	}
	if len(r.UncoveredChunks) != 5 || r.UncoveredChunks[0].ChunkID != "doc_chunk_e" || !near(float64(r.UncoveredChunks[0].Gap), 0.05) ||
		!near(float64(r.UncoveredChunks[4].Similarity), 0) || !near(float64(r.UncoveredChunks[4].Gap), 0.7) {
		t.Errorf("uncovered %+v", r.UncoveredChunks)
	}
	if p := r.UncoveredChunks[0].TextPreview; !strings.HasSuffix(p, "...") || utf8.RuneCountInString(p) != 203 {
		t.Errorf("preview %q", p)
	}
	if len(r.MaxSimilarities) != 10 || r.MaxSimilarities[8] != Score(float32(0.7)) {
		t.Errorf("max similarities %v", r.MaxSimilarities)
	}
	m := r.MultiThreshold
	for _, c := range []struct {
		l                 Level
		threshold         float64
		covered, uncov    int
		rate              float64
		firstUncoveredSim float32
	}{
		{m.Strict, 0.8, 2, 8, 0.2, 0.75},
		{m.Standard, 0.7, 5, 5, 0.5, 0.65},
		{m.Lenient, 0.6, 7, 3, 0.7, 0.55},
	} {
		if c.l.Threshold != c.threshold || c.l.CoveredChunks != c.covered || c.l.UncoveredCount != c.uncov || len(c.l.UncoveredChunks) != c.uncov ||
			!near(c.l.CoverageRate, c.rate) || c.l.UncoveredChunks[0].Similarity != Score(c.firstUncoveredSim) ||
			!near(float64(c.l.UncoveredChunks[0].Gap), c.threshold-float64(c.firstUncoveredSim)) {
			t.Errorf("level %v: %+v", c.threshold, c.l)
		}
	}
	if r.OptimalThresholds != (Thresholds{0.8, 0.7, 0.6}) || r.DatasetType != "cc_news" {
		t.Errorf("thresholds %+v %q", r.OptimalThresholds, r.DatasetType)
	}
}

func TestBuildBucketsAndInsights(t *testing.T) {
	chunks, sims := sample()
	a := Build(chunks, sims, 30, Options{DatasetType: "cc_news", Tokens: words{}}).ChunkAnalysis
	// short: a .95, b .85, f .61, i .7 -> 3/4 covered; medium: c .75, e .65,
	// h .3 -> 1/3; long: d .72, g .55, j 0 -> 1/3.
	check := func(name string, b Bucket, count, covered int, avg float64) {
		t.Helper()
		if b.Count != count || b.Covered != covered || !near(b.CoverageRate, float64(covered)/float64(count)) || !near(float64(b.AvgSimilarity), avg) {
			t.Errorf("%s: %+v, want %d/%d avg %v", name, b, covered, count, avg)
		}
	}
	check("short", a.ByLength.Short, 4, 3, (0.95+0.85+0.61+0.7)/4)
	check("medium", a.ByLength.Medium, 3, 1, (0.75+0.65+0.3)/3)
	check("long", a.ByLength.Long, 3, 1, (0.72+0.55+0)/3)
	// N = 10: beginning i < 3.3 (a-d), middle i < 6.7 (e-g), end (h-j).
	check("beginning", a.ByPosition.Beginning, 4, 4, (0.95+0.85+0.75+0.72)/4)
	check("middle", a.ByPosition.Middle, 3, 0, (0.65+0.61+0.55)/3)
	check("end", a.ByPosition.End, 3, 1, (0.3+0.7+0)/3)
	want := []string{
		"mediumチャンクのカバレージが低い（33.3%）",
		"longチャンクのカバレージが低い（33.3%）",
		"文書middle部分のカバレージが低い（0.0%）",
		"文書end部分のカバレージが低い（33.3%）",
	}
	if strings.Join(a.Summary.Insights, "|") != strings.Join(want, "|") {
		t.Errorf("insights %q\nwant %q", a.Summary.Insights, want)
	}
	if a.Summary.TotalChunks != 10 || a.Summary.TotalQAPairs != 30 || a.Summary.ThresholdUsed != 0.7 {
		t.Errorf("summary %+v", a.Summary)
	}
}

// TestBuildCustomThreshold: --coverage-threshold changes the headline and
// the chunk analysis, not the three levels.
func TestBuildCustomThreshold(t *testing.T) {
	chunks, sims := sample()
	r := Build(chunks, sims, 30, Options{DatasetType: "cc_news", Threshold: 0.58, Tokens: words{}})
	if r.Threshold != 0.58 || r.CoveredChunks != 7 || len(r.UncoveredChunks) != 3 || !near(float64(r.UncoveredChunks[0].Gap), 0.03) {
		t.Errorf("headline %v %d %+v", r.Threshold, r.CoveredChunks, r.UncoveredChunks)
	}
	if r.MultiThreshold.Standard.Threshold != 0.7 || r.MultiThreshold.Standard.CoveredChunks != 5 || r.OptimalThresholds.Standard != 0.7 {
		t.Errorf("levels changed: %+v", r.MultiThreshold.Standard)
	}
	a := r.ChunkAnalysis
	if a.Summary.ThresholdUsed != 0.58 || a.ByPosition.Middle.Covered != 2 || a.ByLength.Medium.Covered != 2 {
		t.Errorf("analysis at 0.58: %+v", a)
	}
	if !strings.Contains(r.Format(), "headline  (0.58):  70.0%  7/10 chunks (--coverage-threshold)") {
		t.Errorf("format:\n%s", r.Format())
	}
}

func TestBuildEmpty(t *testing.T) {
	r := Build(nil, nil, 0, Options{DatasetType: "livedoor", Tokens: words{}})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.CoverageRate != 0 || r.TotalChunks != 0 || len(r.ChunkAnalysis.Summary.Insights) != 0 ||
		!strings.Contains(string(b), `"uncovered_chunks":[]`) || strings.Contains(string(b), "null") {
		t.Errorf("empty report %s", b)
	}
}

// TestReportJSON: Python's keys in Python's order, then qagen's; scores as
// short float32 decimals.
func TestReportJSON(t *testing.T) {
	chunks, sims := sample()
	r := Build(chunks, sims, 30, Options{DatasetType: "cc_news", Tokens: words{}})
	r.Embedding = &Embedding{Provider: "gemini", Model: "gemini-embedding-001", Dimensions: 3072, ChunkTexts: 10, QATexts: 30}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	var keys []string
	dec := json.NewDecoder(strings.NewReader(s))
	dec.Token() // {
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if want := "coverage_rate covered_chunks total_chunks uncovered_chunks max_similarities threshold multi_threshold chunk_analysis " +
		"dataset_type optimal_thresholds analyzed total_qa_pairs embedding"; strings.Join(keys, " ") != want {
		t.Errorf("keys %v\nwant %s", keys, want)
	}
	for _, want := range []string{`"max_similarities":[0.95,0.85,0.75,0.72,0.65,0.61,0.55,0.3,0.7,0]`,
		`{"chunk_id":"doc_chunk_e","similarity":0.65,"gap":0.05`,
		`"strict":{"threshold":0.8,"covered_chunks":2,"coverage_rate":0.2,"uncovered_count":8,"uncovered_chunks":[{"chunk_id":"doc_chunk_c","similarity":0.75,"gap":`,
		`"by_length":{"short":{"count":4,"covered":3,"avg_similarity":0.7775`,
		`"optimal_thresholds":{"strict":0.8,"standard":0.7,"lenient":0.6}`, `"analyzed":true`} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in\n%s", want, s)
		}
	}
	if _, err := json.Marshal(Score(float32(math.Inf(1)))); err == nil {
		t.Error("infinite score marshalled")
	}
	if b, _ := json.Marshal(Score(1e-8)); string(b) != "1e-08" {
		t.Errorf("tiny score %s", b)
	}
}

func TestPreview(t *testing.T) {
	ja := strings.Repeat("日本語", 100) // 300 runes
	if p := Preview(ja); p != strings.Repeat("日本語", 66)+"日本..." || !utf8.ValidString(p) {
		t.Errorf("preview %q", p)
	}
	if p := Preview("short"); p != "short..." {
		t.Errorf("%q", p)
	}
	exact := strings.Repeat("é", 200)
	if p := Preview(exact); p != exact+"..." {
		t.Errorf("200 runes: %q", p)
	}
	if Percent(0.4567) != "45.7%" || Percent(0) != "0.0%" || Percent(1) != "100.0%" {
		t.Error("percent format")
	}
}

// table is an embedder that looks texts up; calls counts Embed calls.
type table struct {
	vecs  map[string][]float32
	err   error
	calls int
	texts [][]string
}

func (t *table) Name() string  { return "table" }
func (t *table) Model() string { return "table-1" }
func (t *table) Embed(_ context.Context, texts []string) ([][]float32, error) {
	t.calls++
	t.texts = append(t.texts, texts)
	if t.err != nil {
		return nil, t.err
	}
	out := make([][]float32, len(texts))
	for i, s := range texts {
		v, ok := t.vecs[s]
		if !ok {
			return nil, errors.New("unknown text " + s)
		}
		out[i] = v
	}
	return out, nil
}

func TestAnalyze(t *testing.T) {
	emb := &table{vecs: map[string][]float32{
		"tea grows on hills":             {1, 0, 0},
		"trains at night":                {0, 1, 0},
		"Where does tea grow? On hills.": {0.9, 0.1, 0},
	}}
	chunks := []Chunk{{"c0", "tea grows on hills"}, {"c1", "   "}, {"c2", "trains at night"}}
	pairs := []Pair{{"Where does tea grow?", "On hills."}, {"", " "}}
	r, err := Analyze(context.Background(), emb, chunks, pairs, Options{DatasetType: "custom_upload", Tokens: words{}})
	if err != nil {
		t.Fatal(err)
	}
	// Blank chunks are not embedded (uncovered, 0); blank pairs left out.
	if emb.calls != 2 || len(emb.texts[0]) != 2 || len(emb.texts[1]) != 1 || emb.texts[1][0] != "Where does tea grow? On hills." {
		t.Errorf("embedded %q", emb.texts)
	}
	want := []float64{0.9 / math.Sqrt(0.82), 0, 0.1 / math.Sqrt(0.82)}
	for i, w := range want {
		if !near(float64(r.MaxSimilarities[i]), w) {
			t.Errorf("chunk %d: %v, want %v", i, r.MaxSimilarities[i], w)
		}
	}
	if r.CoveredChunks != 1 || r.TotalQAPairs != 1 || r.Embedding == nil || r.Embedding.Provider != "table" || r.Embedding.Dimensions != 3 ||
		r.Embedding.ChunkTexts != 2 || r.Embedding.QATexts != 1 {
		t.Errorf("report %+v %+v", r, r.Embedding)
	}

	// No pairs: nothing embedded, every chunk uncovered.
	emb.calls = 0
	r, err = Analyze(context.Background(), emb, chunks, nil, Options{Tokens: words{}})
	if err != nil || emb.calls != 0 || r.CoveredChunks != 0 || len(r.UncoveredChunks) != 3 || r.MultiThreshold.Lenient.UncoveredCount != 3 {
		t.Errorf("no pairs: %v calls %d %+v", err, emb.calls, r)
	}

	// An embedding failure is the analysis's failure.
	emb.err = &llm.Error{Provider: "table", Kind: llm.KindTransient, Status: 500, Err: errors.New("boom")}
	r, err = Analyze(context.Background(), emb, chunks, pairs, Options{Tokens: words{}})
	var le *llm.Error
	if r != nil || err == nil || !errors.As(err, &le) || !strings.Contains(err.Error(), "embeddings of 2 chunks") {
		t.Errorf("failure: %v %v", r, err)
	}
	if _, err := Analyze(context.Background(), emb, chunks, pairs, Options{}); err == nil {
		t.Error("no token counter accepted")
	}
}

// TestAnalyzeOffline: the offline embedder end to end: pairs quoting a
// chunk score higher on it than on an unrelated one.
func TestAnalyzeOffline(t *testing.T) {
	chunks := []Chunk{
		{"tea", "Green tea begins as a shrub. Growers prune Camellia sinensis into rounded hedges, and the first harvest in May is prized for its sweetness."},
		{"rail", "Sleeper trains are returning on a few routes. Operators say travellers want to avoid airports and arrive rested in city centres."},
		{"moon", "Lunar regolith is a layer of loose dust and broken rock that covers the Moon's surface."},
	}
	pairs := []Pair{
		{"When is the first tea harvest prized?", "The first harvest in May is prized for its sweetness."},
		{"Why are sleeper trains returning?", "Travellers want to avoid airports and arrive rested in city centres."},
	}
	r, err := Analyze(context.Background(), llm.NewOfflineEmbedder(0), chunks, pairs, Options{Tokens: words{}})
	if err != nil {
		t.Fatal(err)
	}
	s := r.MaxSimilarities
	if !(s[0] > s[2]+0.2 && s[1] > s[2]+0.2) || r.Embedding.Provider != llm.OfflineEmbedName || r.Embedding.Dimensions != llm.OfflineEmbeddingDimensions {
		t.Errorf("offline similarities %v %+v", s, r.Embedding)
	}
}
