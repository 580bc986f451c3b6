package producer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/qagen/qagen/producer/chunk"
	"github.com/qagen/qagen/producer/docs"
)

// PlanOptions shape how a corpus becomes units of work.
type PlanOptions struct {
	// Merge joins small chunks of a document (--merge-chunks) with
	// MinTokens and MaxTokens, as the Python producer's merge_small_chunks.
	Merge     bool
	MinTokens int
	MaxTokens int
	// BatchChunks > 1 packs that many chunks (of one language) into one
	// task and one LLM request.
	BatchChunks int
}

// Plan is a run's work before anything is sent.
type Plan struct {
	Run    *Run
	Chunks []chunk.Chunk // after merging, in order
	// Unmerged is the number of chunks before merging.
	Unmerged int
}

// Tokens is the sum of the chunks' token counts.
func (p *Plan) Tokens() int {
	n := 0
	for _, c := range p.Chunks {
		n += c.Tokens
	}
	return n
}

// NewPlan chunks every document of the corpus locally (no API calls),
// merges small chunks if asked, and groups the chunks into units.
func NewPlan(corpus *docs.Corpus, c *chunk.Chunker, opts PlanOptions, now time.Time) (*Plan, error) {
	cfg := corpus.Config
	var all []chunk.Chunk
	langs := map[string]string{} // doc id -> language
	for _, d := range corpus.Docs {
		pieces := c.Document(d.ID, d.Index, corpus.DatasetType, d.Lang, d.Text, chunk.Options{MaxTokens: cfg.ChunkSize})
		all = append(all, pieces...)
		langs[d.ID] = d.Lang
	}
	p := &Plan{Unmerged: len(all)}
	var originals []OriginalChunk
	if opts.Merge {
		merged := c.MergeSmall(all, opts.MinTokens, opts.MaxTokens)
		originals = mergedOriginals(all, merged)
		all = merged
	}
	p.Chunks = all
	run := &Run{
		ID: now.Format("20060102_150405"), DatasetType: corpus.DatasetType, DatasetName: cfg.Name,
		CreatedAt: now, Documents: len(corpus.Docs), Chunks: len(all), Originals: originals,
	}
	for _, s := range corpus.Skips {
		run.Skips = append(run.Skips, Skip{Source: s.Source, Reason: s.Reason})
	}
	batch := max(opts.BatchChunks, 1)
	confs := map[string]json.RawMessage{} // language -> config dict, marshalled once
	var cur *Unit
	curLang := ""
	for _, ch := range all {
		lang := langs[ch.DocID]
		if lang == "" {
			lang = cfg.Lang
		}
		raw, err := json.Marshal(ch)
		if err != nil {
			return nil, fmt.Errorf("chunk %s: %w", ch.ID, err)
		}
		if cur == nil || len(cur.Chunks) >= batch || lang != curLang {
			conf, ok := confs[lang]
			if !ok {
				if conf, err = json.Marshal(cfg.WithLang(lang)); err != nil {
					return nil, err
				}
				confs[lang] = conf
			}
			cur = &Unit{Config: conf, State: StatePending}
			curLang = lang
			run.Units = append(run.Units, cur)
		}
		cur.Chunks = append(cur.Chunks, raw)
		cur.ChunkIDs = append(cur.ChunkIDs, ch.ID)
		cur.Tokens += ch.Tokens
	}
	p.Run = run
	return p, nil
}

// WriteChunks writes chunks_<dataset>_<ts>.jsonl (one chunk dict per line)
// for --dry-run.
func (p *Plan) WriteChunks(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("chunks_%s_%s.jsonl", p.Run.DatasetType, p.Run.ID))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriter(f)
	for _, c := range p.Chunks {
		b, err := c.MarshalJSON() // not json.Marshal: no \u003c for <, as Python's json.dumps
		if err != nil {
			f.Close()
			return "", err
		}
		w.Write(b)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// Resume prepares a manifest for another pass: units that did not succeed
// go out again under new task ids; succeeded ones keep their pairs.
func Resume(prev *Run, now time.Time) (*Run, []*Unit) {
	run := *prev
	run.ResumedFrom = prev.ID
	run.ID = now.Format("20060102_150405")
	run.CreatedAt = now
	run.Stopped = ""
	var todo []*Unit
	run.Units = make([]*Unit, len(prev.Units))
	for i, u := range prev.Units {
		cp := *u
		if cp.State != StateSucceeded {
			cp.TaskID, cp.State, cp.Error, cp.Attempts, cp.Pairs = "", StatePending, "", 0, nil
			todo = append(todo, &cp)
		}
		run.Units[i] = &cp
	}
	return &run, todo
}

// Execute runs units with the executor, reporting progress, and marks what
// is still pending when it stops as missing. It returns why it stopped
// early (ctx done, stall), or nil.
func Execute(ctx context.Context, run *Run, units []*Unit, exec Executor, progress *Progress) error {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	stopTick := make(chan struct{})
	go func() {
		for {
			select {
			case <-ticker.C:
				progress.Tick()
			case <-stopTick:
				return
			}
		}
	}()
	err := exec.Run(ctx, units, progress.Done)
	close(stopTick)
	progress.Finish()
	for _, u := range units {
		if u.State == StatePending {
			u.State = StateMissing
			if u.Error == "" {
				u.Error = "no result before the run stopped"
			}
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		run.Stopped = "interrupted"
	case errors.Is(err, context.DeadlineExceeded):
		run.Stopped = "timeout"
	case errors.Is(err, ErrStalled):
		run.Stopped = "stalled: no task finished for the stall timeout"
	default:
		run.Stopped = err.Error()
	}
	return err
}
