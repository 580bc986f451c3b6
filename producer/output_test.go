package producer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/tasks"
)

func pair(q, typ, chunkID string, chunkIdx string) tasks.QAPair {
	return tasks.QAPair{Question: q, Answer: "A: " + q, QuestionType: typ, SourceChunkID: chunkID,
		DocID: strings.SplitN(chunkID, "_chunk_", 2)[0], DatasetType: "wikipedia_ja", ChunkIdx: json.RawMessage(chunkIdx), Provider: "gemini"}
}

// sampleRun is a finished run of four units: one chunk succeeded, a batch
// of a plain and a merged chunk succeeded, one chunk failed, one missing.
func sampleRun() *producer.Run {
	return &producer.Run{
		ID: testRunID, DatasetType: "wikipedia_ja", DatasetName: "Wikipedia日本語版", CreatedAt: testNow,
		Settings:  producer.Settings{Input: "wikipedia_ja", BatchChunks: 2, Merge: true, MinTokens: 150, MaxTokens: 400, UseCelery: true, Queue: "qa_generation"},
		Documents: 3, Chunks: 5,
		Units: []*producer.Unit{
			{TaskID: "t1", ChunkIDs: []string{"wikipedia_ja_0_東京_chunk_3"}, State: producer.StateSucceeded, Provider: "gemini",
				Usage: &tasks.Usage{Calls: 1, InputTokens: 100, OutputTokens: 50},
				Pairs: []tasks.QAPair{
					pair("東京の<人口>は?", "fact", "wikipedia_ja_0_東京_chunk_3", "3"),
					pair(`Why "quotes", commas & newlines?`+"\nline 2", "reason", "wikipedia_ja_0_東京_chunk_3", "3"),
				}},
			{TaskID: "t2", ChunkIDs: []string{"wikipedia_ja_1_chunk_0", "wikipedia_ja_1_chunk_3"}, State: producer.StateSucceeded, Provider: "gemini",
				Usage: &tasks.Usage{Calls: 1, InputTokens: 200, OutputTokens: 80},
				Pairs: []tasks.QAPair{
					pair("Q0", "comparison", "wikipedia_ja_1_chunk_0", "0"),
					pair("Q34", "fact", "wikipedia_ja_1_chunk_3", `"3-4"`),
				}},
			{TaskID: "t3", ChunkIDs: []string{"wikipedia_ja_2_chunk_0"}, State: producer.StateFailed, Error: "gemini: transient (HTTP 500)", Attempts: 3},
			{TaskID: "t4", ChunkIDs: []string{"wikipedia_ja_2_chunk_1"}, State: producer.StateMissing, Error: "no result before the run stopped"},
		},
		Stopped: "timeout",
	}
}

func TestWriteOutputs(t *testing.T) {
	root := t.TempDir()
	dir, simple := filepath.Join(root, "qa_output", "a02"), filepath.Join(root, "qa_output")
	run := sampleRun()
	files, err := producer.WriteOutputs(dir, simple, run)
	if err != nil {
		t.Fatal(err)
	}
	name := func(kind, ext string) string { return filepath.Join(dir, kind+"_wikipedia_ja_"+testRunID+"."+ext) }
	want := producer.Files{
		QAJSON: name("qa_pairs", "json"), QACSV: name("qa_pairs", "csv"), Simple: filepath.Join(simple, "a02_qa_pairs_wikipedia_ja.csv"),
		Coverage: name("coverage", "json"), Summary: name("summary", "json"), Manifest: name("run", "json"), Failures: name("failures", "csv"),
	}
	if files != want {
		t.Fatalf("files\n%+v\nwant\n%+v", files, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 6 {
		t.Errorf("%d files in the output directory, want 6", len(entries))
	}

	// Q&A JSON: every pair, unit order, UTF-8 and <>& verbatim, indented.
	var pairs []map[string]any
	data := testenv.ReadJSON(t, files.QAJSON, &pairs)
	if len(pairs) != 4 || pairs[0]["question"] != "東京の<人口>は?" || pairs[3]["chunk_idx"] != "3-4" || pairs[2]["chunk_idx"] != 0.0 {
		t.Fatalf("qa json %v", pairs)
	}
	if !bytes.Contains(data, []byte("東京の<人口>は?")) || bytes.Contains(data, []byte(`\u`)) || !bytes.HasPrefix(data, []byte("[\n  {\n    \"question\": ")) {
		t.Errorf("qa json is escaped or not indented:\n%s", data)
	}

	// Q&A CSV: the Python column order, chunk_idx "3-4" as a string.
	rows := testenv.ReadCSV(t, files.QACSV)
	if !reflect.DeepEqual(rows[0], []string{"question", "answer", "question_type", "source_chunk_id", "doc_id", "dataset_type", "chunk_idx", "provider"}) {
		t.Fatalf("csv header %v", rows[0])
	}
	if len(rows) != 5 {
		t.Fatalf("%d csv rows", len(rows))
	}
	if !reflect.DeepEqual(rows[1], []string{"東京の<人口>は?", "A: 東京の<人口>は?", "fact", "wikipedia_ja_0_東京_chunk_3", "wikipedia_ja_0_東京", "wikipedia_ja", "3", "gemini"}) {
		t.Errorf("csv row 1 %v", rows[1])
	}
	if rows[2][0] != `Why "quotes", commas & newlines?`+"\nline 2" || rows[4][6] != "3-4" || rows[3][6] != "0" {
		t.Errorf("csv rows %q", rows[2:])
	}

	// The fixed simple CSV downstream tools read.
	rows = testenv.ReadCSV(t, files.Simple)
	if !reflect.DeepEqual(rows[0], []string{"question", "answer"}) || len(rows) != 5 || rows[4][0] != "Q34" || rows[4][1] != "A: Q34" {
		t.Errorf("simple csv %q", rows)
	}

	// Coverage: the Python stub, marked as not analysed.
	var cov map[string]any
	testenv.ReadJSON(t, files.Coverage, &cov)
	if cov["coverage_rate"] != 0.0 || cov["covered_chunks"] != 0.0 || cov["total_chunks"] != 5.0 || cov["analyzed"] != false ||
		!reflect.DeepEqual(cov["uncovered_chunks"], []any{}) {
		t.Errorf("coverage %v", cov)
	}

	// Summary: the Python keys, then qagen's accounting.
	var sum map[string]any
	testenv.ReadJSON(t, files.Summary, &sum)
	for k, v := range map[string]any{
		"dataset_type": "wikipedia_ja", "dataset_name": "Wikipedia日本語版", "generated_at": testRunID,
		"total_qa_pairs": 4.0, "coverage_rate": 0.0, "covered_chunks": 0.0, "total_chunks": 5.0,
		"succeeded_chunks": 3.0, "failed_chunks": 1.0, "missing_chunks": 1.0, "stopped": "timeout", "resumed_from": "",
	} {
		if !reflect.DeepEqual(sum[k], v) {
			t.Errorf("summary %s = %v, want %v", k, sum[k], v)
		}
	}
	fs, _ := sum["files"].(map[string]any)
	if fs["qa_json"] != files.QAJSON || fs["qa_csv"] != files.QACSV || fs["coverage"] != files.Coverage || fs["manifest"] != files.Manifest || fs["failures"] != files.Failures {
		t.Errorf("summary files %v", fs)
	}
	if qt := sum["question_types"].(map[string]any); qt["fact"] != 2.0 || qt["reason"] != 1.0 || qt["comparison"] != 1.0 {
		t.Errorf("question types %v", qt)
	}
	if u := sum["llm_usage"].(map[string]any); u["calls"] != 2.0 || u["input_tokens"] != 300.0 || u["output_tokens"] != 130.0 {
		t.Errorf("llm usage %v", u)
	}
	if fl := sum["failures"].([]any); len(fl) != 2 || fl[0].(map[string]any)["chunk_id"] != "wikipedia_ja_2_chunk_0" || fl[1].(map[string]any)["state"] != "missing" {
		t.Errorf("summary failures %v", fl)
	}

	// Failures CSV: one row per chunk that did not succeed.
	rows = testenv.ReadCSV(t, files.Failures)
	if !reflect.DeepEqual(rows, [][]string{
		{"chunk_id", "task_id", "state", "error"},
		{"wikipedia_ja_2_chunk_0", "t3", "failed", "gemini: transient (HTTP 500)"},
		{"wikipedia_ja_2_chunk_1", "t4", "missing", "no result before the run stopped"},
	}) {
		t.Errorf("failures csv %q", rows)
	}

	// The manifest reads back as the run.
	back, err := producer.LoadManifest(files.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != testRunID || len(back.Units) != 4 || back.Units[2].State != producer.StateFailed || back.Units[3].State != producer.StateMissing ||
		len(back.Units[1].Pairs) != 2 || string(back.Units[1].Pairs[1].ChunkIdx) != `"3-4"` || back.Settings != run.Settings || !back.CreatedAt.Equal(testNow) {
		t.Errorf("manifest read back: %+v", back)
	}
}

func TestWriteOutputsComplete(t *testing.T) {
	dir, simple := t.TempDir(), t.TempDir()
	run := sampleRun()
	run.Units, run.Stopped = run.Units[:2], ""
	files, err := producer.WriteOutputs(dir, simple, run)
	if err != nil {
		t.Fatal(err)
	}
	if files.Failures != "" {
		t.Errorf("failures file %s for a complete run", files.Failures)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "failures_*")); len(m) != 0 {
		t.Errorf("failures written: %v", m)
	}
	var sum map[string]any
	testenv.ReadJSON(t, files.Summary, &sum)
	if !reflect.DeepEqual(sum["failures"], []any{}) || sum["failed_chunks"] != 0.0 || sum["missing_chunks"] != 0.0 {
		t.Errorf("summary failures %v", sum["failures"])
	}

	// A second run in the same second (a quick --resume) gets its own
	// files; the first run's manifest is left alone.
	first, _ := os.ReadFile(files.Manifest)
	again := sampleRun()
	again.ResumedFrom = testRunID
	files2, err := producer.WriteOutputs(dir, simple, again)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != testRunID+"_2" || files2.Manifest != filepath.Join(dir, "run_wikipedia_ja_"+testRunID+"_2.json") || files2.QACSV == files.QACSV {
		t.Fatalf("second run id %s, files %+v", again.ID, files2)
	}
	if now, _ := os.ReadFile(files.Manifest); !bytes.Equal(now, first) {
		t.Error("the first run's manifest was overwritten")
	}
	// Both are found by their ids.
	for id, want := range map[string]string{testRunID: files.Manifest, testRunID + "_2": files2.Manifest} {
		if got, err := producer.FindManifest(dir, id); err != nil || got != want {
			t.Errorf("FindManifest(%s) = %s, %v; want %s", id, got, err, want)
		}
	}
}

func TestWriteOutputsNoPairs(t *testing.T) {
	dir, simple := t.TempDir(), filepath.Join(t.TempDir(), "simple")
	run := sampleRun()
	run.Units = run.Units[2:]
	files, err := producer.WriteOutputs(dir, simple, run)
	if err != nil {
		t.Fatal(err)
	}
	if files.Simple != "" {
		t.Errorf("simple csv %s without pairs (Python skips it)", files.Simple)
	}
	if _, err := os.Stat(simple); !os.IsNotExist(err) {
		t.Errorf("simple dir created: %v", err)
	}
	if data, _ := os.ReadFile(files.QAJSON); strings.TrimSpace(string(data)) != "[]" {
		t.Errorf("qa json %q", data)
	}
	if rows := testenv.ReadCSV(t, files.QACSV); len(rows) != 1 {
		t.Errorf("qa csv %q", rows)
	}
}

func TestFindManifest(t *testing.T) {
	dir := t.TempDir()
	files, err := producer.WriteOutputs(dir, t.TempDir(), sampleRun())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := producer.FindManifest(dir, files.Manifest); err != nil || got != files.Manifest {
		t.Errorf("by path: %s %v", got, err)
	}
	if _, err := producer.FindManifest(dir, "20990101_000000"); err == nil || !strings.Contains(err.Error(), "no run manifest") {
		t.Errorf("unknown id: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "run_cc_news_"+testRunID+".json"), []byte(`{}`), 0o644)
	if _, err := producer.FindManifest(dir, testRunID); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("two datasets with one id: %v", err)
	}
	if _, err := producer.LoadManifest(filepath.Join(dir, "run_cc_news_"+testRunID+".json")); err == nil {
		t.Error("an empty object loaded as a manifest")
	}
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`[1`), 0o644)
	if _, err := producer.LoadManifest(filepath.Join(dir, "bad.json")); err == nil {
		t.Error("broken JSON loaded as a manifest")
	}
}

func TestResume(t *testing.T) {
	dir := t.TempDir()
	files, err := producer.WriteOutputs(dir, t.TempDir(), sampleRun())
	if err != nil {
		t.Fatal(err)
	}
	prev, err := producer.LoadManifest(files.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	later := testNow.Add(time.Hour)
	run, todo := producer.Resume(prev, later)
	if run.ID != "20261127_111500" || run.ResumedFrom != testRunID || run.Stopped != "" || !run.CreatedAt.Equal(later) || run.Settings != prev.Settings {
		t.Fatalf("resumed run %+v", run)
	}
	if len(todo) != 2 || todo[0] != run.Units[2] || todo[1] != run.Units[3] {
		t.Fatalf("todo %v", todo)
	}
	for _, u := range todo {
		if u.TaskID != "" || u.State != producer.StatePending || u.Error != "" || u.Attempts != 0 || u.Pairs != nil {
			t.Errorf("unit to resend %+v", u)
		}
	}
	if run.Units[0].TaskID != "t1" || len(run.Units[0].Pairs) != 2 || run.Units[1].State != producer.StateSucceeded {
		t.Errorf("succeeded units changed: %+v", run.Units[:2])
	}
	if prev.Units[2].TaskID != "t3" || prev.Units[2].State != producer.StateFailed || prev.ID != testRunID {
		t.Error("Resume modified the previous run")
	}

	// Resend in-process: new task ids; the kept pairs plus the new ones.
	// The chunks need dicts the task can read.
	for i, u := range todo {
		u.Chunks = []json.RawMessage{json.RawMessage(`{"id": "` + u.ChunkIDs[0] + `", "text": "Kyoto was the capital for a thousand years. It has many temples.", "tokens": 20, "doc_id": "wikipedia_ja_2", "chunk_idx": ` + []string{"0", "1"}[i] + `, "dataset_type": "wikipedia_ja"}`)}
		u.Config = json.RawMessage(`{"lang": "en", "qa_per_chunk": 2}`)
	}
	exec := &producer.LocalExecutor{QA: tasks.NewQA(tasks.QAConfig{Provider: offlineProvider, Logger: zerolog.Nop()}), Concurrency: 2, Provider: "offline", Log: zerolog.Nop()}
	if err := producer.Execute(context.Background(), run, todo, exec, producer.NewProgress(&bytes.Buffer{}, false, len(todo))); err != nil {
		t.Fatal(err)
	}
	if s, f, m := run.Counts(); s != 5 || f != 0 || m != 0 {
		t.Fatalf("after the resend: %d succeeded, %d failed, %d missing", s, f, m)
	}
	for _, u := range todo {
		if u.TaskID == "" || u.TaskID == "t3" || u.TaskID == "t4" {
			t.Errorf("task id %q not new", u.TaskID)
		}
	}
	pairs := run.Pairs()
	if len(pairs) < 6 || pairs[0].Question != "東京の<人口>は?" || pairs[len(pairs)-1].SourceChunkID != "wikipedia_ja_2_chunk_1" {
		t.Errorf("pairs after resume: %d", len(pairs))
	}
	files2, err := producer.WriteOutputs(dir, t.TempDir(), run)
	if err != nil {
		t.Fatal(err)
	}
	var sum map[string]any
	testenv.ReadJSON(t, files2.Summary, &sum)
	if sum["resumed_from"] != testRunID || sum["total_qa_pairs"] != float64(len(pairs)) || files2.Failures != "" {
		t.Errorf("summary of the resumed run: %v", sum)
	}
	// Nothing left: Resume has no work.
	if _, todo := producer.Resume(run, later); len(todo) != 0 {
		t.Errorf("complete run resumed with %d units", len(todo))
	}
}

func TestFormatQuestionTypes(t *testing.T) {
	pairs := []tasks.QAPair{{QuestionType: "reason"}, {QuestionType: "fact"}, {QuestionType: "fact"}, {QuestionType: "comparison"}, {QuestionType: "application"}}
	want := "質問タイプ別統計:\n  application: 1件\n  comparison: 1件\n  fact: 2件\n  reason: 1件\n"
	if got := producer.FormatQuestionTypes(pairs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := producer.FormatQuestionTypes(nil); got != "質問タイプ別統計:\n" {
		t.Errorf("no pairs: %q", got)
	}
}

// oldUI is the regular expression the Streamlit UI parsed a02's progress
// lines with.
var oldUI = regexp.MustCompile(`進捗.*?完了[=:：\s]*(\d+)\s*/\s*(\d+)`)

func TestProgressPlain(t *testing.T) {
	var out bytes.Buffer
	p := producer.NewProgress(&out, false, 4)
	p.Done(&producer.Unit{State: producer.StateSucceeded, ChunkIDs: []string{"a"}})
	p.Retry(&producer.Unit{})
	p.Done(&producer.Unit{State: producer.StateSucceeded, ChunkIDs: []string{"b", "c"}})
	p.Done(&producer.Unit{State: producer.StateFailed, ChunkIDs: []string{"d"}})
	p.Finish()
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	// The first result is shown at once; then at most every 5 s, and the
	// final state at the end.
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	for i, want := range [][2]string{{"1", "4"}, {"3", "4"}} {
		m := oldUI.FindStringSubmatch(lines[i])
		if m == nil || m[1] != want[0] || m[2] != want[1] || !strings.HasPrefix(lines[i], "進捗: 完了="+want[0]+"/"+want[1]) {
			t.Errorf("line %q: the old UI reads %v, want %v", lines[i], m, want)
		}
	}
	if !strings.Contains(lines[1], "成功=2, 失敗=1, 処理中=1, 再試行=1") || strings.Contains(out.String(), "\r") {
		t.Errorf("final line %q", lines[1])
	}
}

func TestProgressTerminal(t *testing.T) {
	var out bytes.Buffer
	p := producer.NewProgress(&out, true, 2)
	p.Done(&producer.Unit{State: producer.StateSucceeded})
	p.Done(&producer.Unit{State: producer.StateFailed})
	p.Finish()
	s := out.String()
	if !strings.HasPrefix(s, "\r[") || !strings.HasSuffix(s, "\n") || !strings.Contains(s, "2/2  ok 1  failed 1  pending 0") || strings.Contains(s, "進捗") {
		t.Errorf("bar %q", s)
	}
}
