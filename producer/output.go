package producer

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/qagen/qagen/producer/coverage"
	"github.com/qagen/qagen/tasks"
)

// Settings are the options a run was made with, kept in its manifest so
// --resume repeats them.
type Settings struct {
	Input       string `json:"input"`
	Model       string `json:"model"`
	Provider    string `json:"provider"`
	BatchChunks int    `json:"batch_chunks"`
	Merge       bool   `json:"merge_chunks"`
	MinTokens   int    `json:"min_tokens"`
	MaxTokens   int    `json:"max_tokens"`
	UseCelery   bool   `json:"use_celery"`
	Queue       string `json:"queue,omitempty"`
	MaxDocs     int    `json:"max_docs,omitempty"`
}

// Skip is a document left out, and why.
type Skip struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// Run is the manifest of a generation run: every unit with its chunks,
// task id, final state, error and pairs. It is written next to the
// outputs; --resume reads it and sends only what did not succeed.
type Run struct {
	ID          string    `json:"run_id"` // YYYYMMDD_HHMMSS, as in the output names
	DatasetType string    `json:"dataset_type"`
	DatasetName string    `json:"dataset_name"`
	CreatedAt   time.Time `json:"created_at"`
	ResumedFrom string    `json:"resumed_from,omitempty"`
	Settings    Settings  `json:"settings"`
	Documents   int       `json:"documents"`
	Chunks      int       `json:"chunks"`
	Skips       []Skip    `json:"skips,omitempty"`
	Units       []*Unit   `json:"units"`
	// Originals are the unmerged chunks that merging joined into one
	// (only those: the others are in Units as they are), so that the
	// coverage analysis, which works on the original chunks, can run on
	// the manifest of a --resume.
	Originals []OriginalChunk `json:"original_chunks,omitempty"`
	// Stopped says why the run ended before every unit was final.
	Stopped string `json:"stopped,omitempty"`
}

// Counts returns the number of chunks per final state.
func (r *Run) Counts() (succeeded, failed, missing int) {
	for _, u := range r.Units {
		switch u.State {
		case StateSucceeded:
			succeeded += len(u.ChunkIDs)
		case StateFailed:
			failed += len(u.ChunkIDs)
		default:
			missing += len(u.ChunkIDs)
		}
	}
	return
}

// Pairs returns every generated pair, in unit order.
func (r *Run) Pairs() []tasks.QAPair {
	var out []tasks.QAPair
	for _, u := range r.Units {
		if u.State == StateSucceeded {
			out = append(out, u.Pairs...)
		}
	}
	return out
}

// Files are the paths a run wrote.
type Files struct {
	QAJSON   string `json:"qa_json"`
	QACSV    string `json:"qa_csv"`
	Simple   string `json:"simple_csv,omitempty"`
	Coverage string `json:"coverage"`
	Summary  string `json:"summary"`
	Manifest string `json:"manifest"`
	Failures string `json:"failures,omitempty"`
}

// ChunkFailure names a chunk that did not succeed.
type ChunkFailure struct {
	ChunkID string `json:"chunk_id"`
	TaskID  string `json:"task_id"`
	State   State  `json:"state"`
	Error   string `json:"error,omitempty"`
}

// Failures lists every chunk that failed or is missing.
func (r *Run) Failures() []ChunkFailure {
	var out []ChunkFailure
	for _, u := range r.Units {
		if u.State == StateSucceeded {
			continue
		}
		state := u.State
		if state == StatePending {
			state = StateMissing
		}
		for _, id := range u.ChunkIDs {
			out = append(out, ChunkFailure{ChunkID: id, TaskID: u.TaskID, State: state, Error: u.Error})
		}
	}
	return out
}

// WriteOutputs writes the Python system's files — qa_pairs_<dataset>_<ts>
// .json and .csv, coverage and summary JSON in dir, and the fixed
// <simpleDir>/a02_qa_pairs_<dataset>.csv (question, answer) downstream
// tools read — plus the run manifest and, when chunks failed, a failures
// CSV.
func WriteOutputs(dir, simpleDir string, r *Run) (Files, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, err
	}
	// Run ids are timestamps to the second: a run (a quick --resume, say)
	// started in the same second as an earlier one must not overwrite its
	// files, least of all the manifest it resumes from.
	for id, n := r.ID, 2; ; n++ {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("run_%s_%s.json", r.DatasetType, r.ID))); err != nil {
			break
		}
		r.ID = fmt.Sprintf("%s_%d", id, n)
	}
	base := func(kind, ext string) string {
		return filepath.Join(dir, fmt.Sprintf("%s_%s_%s.%s", kind, r.DatasetType, r.ID, ext))
	}
	f := Files{
		QAJSON: base("qa_pairs", "json"), QACSV: base("qa_pairs", "csv"),
		Coverage: base("coverage", "json"), Summary: base("summary", "json"), Manifest: base("run", "json"),
	}
	pairs := r.Pairs()
	if pairs == nil {
		pairs = []tasks.QAPair{}
	}
	if err := writeJSON(f.QAJSON, pairs); err != nil {
		return f, err
	}
	if err := writeCSV(f.QACSV, []string{"question", "answer", "question_type", "source_chunk_id", "doc_id", "dataset_type", "chunk_idx", "provider"}, len(pairs), func(i int) []string {
		p := pairs[i]
		return []string{p.Question, p.Answer, p.QuestionType, p.SourceChunkID, text(p.DocID), text(p.DatasetType), rawText(p.ChunkIdx), p.Provider}
	}); err != nil {
		return f, err
	}
	if len(pairs) > 0 {
		if err := os.MkdirAll(simpleDir, 0o755); err != nil {
			return f, err
		}
		f.Simple = filepath.Join(simpleDir, fmt.Sprintf("a02_qa_pairs_%s.csv", r.DatasetType))
		if err := writeCSV(f.Simple, []string{"question", "answer"}, len(pairs), func(i int) []string {
			return []string{pairs[i].Question, pairs[i].Answer}
		}); err != nil {
			return f, err
		}
	}
	// The coverage analysis has not run (WriteCoverage replaces the file
	// when it does): the Python system's stub for a skipped analysis,
	// marked as such.
	if err := writeJSON(f.Coverage, coverageStub(r, nil)); err != nil {
		return f, err
	}
	failures := r.Failures()
	if len(failures) > 0 {
		f.Failures = base("failures", "csv")
		if err := writeCSV(f.Failures, []string{"chunk_id", "task_id", "state", "error"}, len(failures), func(i int) []string {
			x := failures[i]
			return []string{x.ChunkID, x.TaskID, string(x.State), x.Error}
		}); err != nil {
			return f, err
		}
	}
	if err := writeJSON(f.Summary, summaryOf(r, f, pairs, failures)); err != nil {
		return f, err
	}
	if err := writeJSON(f.Manifest, r); err != nil {
		return f, err
	}
	return f, nil
}

// summaryOf is the summary file: the Python keys (the coverage ones as
// for a skipped analysis), then qagen's accounting. pairs and failures are
// r.Pairs() and r.Failures().
func summaryOf(r *Run, f Files, pairs []tasks.QAPair, failures []ChunkFailure) map[string]any {
	if failures == nil {
		failures = []ChunkFailure{} // [] in the summary, not null
	}
	succeeded, failed, missing := r.Counts()
	var usage tasks.Usage
	for _, u := range r.Units {
		if u.Usage != nil {
			usage.Calls += u.Usage.Calls
			usage.InputTokens += u.Usage.InputTokens
			usage.OutputTokens += u.Usage.OutputTokens
			usage.LatencyMS += u.Usage.LatencyMS
		}
	}
	summary := map[string]any{
		"dataset_type": r.DatasetType, "dataset_name": r.DatasetName, "generated_at": r.ID,
		"total_qa_pairs": len(pairs), "coverage_rate": 0, "covered_chunks": 0, "total_chunks": r.Chunks,
		"coverage_analyzed": false,
		"files":             map[string]string{"qa_json": f.QAJSON, "qa_csv": f.QACSV, "coverage": f.Coverage, "manifest": f.Manifest, "failures": f.Failures},
		"documents":         r.Documents,
		"succeeded_chunks":  succeeded, "failed_chunks": failed, "missing_chunks": missing,
		"failures": failures, "skipped_documents": len(r.Skips), "question_types": QuestionTypeCounts(pairs),
		"llm_usage": usage, "settings": r.Settings, "resumed_from": r.ResumedFrom, "stopped": r.Stopped,
	}
	return summary
}

// coverageStub is the coverage file of an analysis that did not run: the
// Python system's four keys, "analyzed": false and, when the analysis was
// asked for and failed, why.
func coverageStub(r *Run, analysisErr error) map[string]any {
	m := map[string]any{
		"coverage_rate": 0, "covered_chunks": 0, "total_chunks": r.Chunks, "uncovered_chunks": []any{}, "analyzed": false,
	}
	if analysisErr != nil {
		m["error"] = analysisErr.Error()
	}
	return m
}

// WriteCoverage records the coverage analysis in the files WriteOutputs
// wrote: the report as the coverage file and its coverage_rate,
// covered_chunks and total_chunks (original chunks) in the summary, with
// coverage_analyzed true. With a nil report it writes the stub with the
// analysis error instead, and the summary's coverage_error.
func WriteCoverage(f Files, rep *coverage.Report, analysisErr error, r *Run) error {
	summary := summaryOf(r, f, r.Pairs(), r.Failures())
	if rep == nil {
		if analysisErr == nil {
			analysisErr = errors.New("the coverage analysis did not run")
		}
		summary["coverage_analyzed"] = false
		summary["coverage_error"] = analysisErr.Error()
		if err := writeJSON(f.Coverage, coverageStub(r, analysisErr)); err != nil {
			return err
		}
		return writeJSON(f.Summary, summary)
	}
	if err := writeJSON(f.Coverage, rep); err != nil {
		return err
	}
	summary["coverage_rate"] = rep.CoverageRate
	summary["covered_chunks"] = rep.CoveredChunks
	summary["total_chunks"] = rep.TotalChunks
	summary["coverage_analyzed"] = true
	summary["coverage_threshold"] = rep.Threshold
	return writeJSON(f.Summary, summary)
}

// QuestionTypeCounts counts pairs per question type.
func QuestionTypeCounts(pairs []tasks.QAPair) map[string]int {
	out := map[string]int{}
	for _, p := range pairs {
		out[p.QuestionType]++
	}
	return out
}

// FormatQuestionTypes is the statistics block the Python producer prints
// at the end: "質問タイプ別統計:" then "  {type}: {n}件" sorted by type.
func FormatQuestionTypes(pairs []tasks.QAPair) string {
	counts := QuestionTypeCounts(pairs)
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	sort.Strings(types)
	var b strings.Builder
	b.WriteString("質問タイプ別統計:\n")
	for _, t := range types {
		fmt.Fprintf(&b, "  %s: %d件\n", t, counts[t])
	}
	return b.String()
}

// LoadManifest reads a run manifest.
func LoadManifest(path string) (*Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s is not a qagen run manifest: %w", path, err)
	}
	if r.ID == "" || r.DatasetType == "" {
		return nil, fmt.Errorf("%s is not a qagen run manifest (no run_id or dataset_type)", path)
	}
	return &r, nil
}

// FindManifest resolves --resume: a manifest path, or a run id looked up
// in dir (run_<dataset>_<id>.json).
func FindManifest(dir, ref string) (string, error) {
	if st, err := os.Stat(ref); err == nil && !st.IsDir() {
		return ref, nil
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "run_*_"+ref+".json"))
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", fmt.Errorf("no run manifest %q (not a file, and no %s/run_*_%s.json)", ref, dir, ref)
	}
	return "", fmt.Errorf("run id %q is ambiguous: %s", ref, strings.Join(matches, ", "))
}

func writeJSON(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func writeCSV(path string, header []string, n int, row func(int) []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write(header)
	for i := 0; i < n; i++ {
		_ = w.Write(row(i))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// text renders a JSON-decoded scalar for CSV.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x))
		}
	}
	return fmt.Sprint(v)
}

// rawText renders a raw JSON scalar (chunk_idx: 3 or "3-4") for CSV.
func rawText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
