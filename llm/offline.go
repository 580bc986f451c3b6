package llm

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// OfflineName is the provider label of offline answers, so nobody mistakes
// them for model output.
const OfflineName = "offline-extractive"

// Offline writes Q&A pairs from the source text itself, without a network:
// each question is built from one of the text's sentences and answered by
// quoting it. It is deterministic, instant and free: for demos, tests and
// pipelines checked end to end before paying for a model.
type Offline struct{}

// Name implements Provider.
func (Offline) Name() string { return OfflineName }

// DefaultModel implements Provider.
func (Offline) DefaultModel() string { return "extractive-v1" }

// Generate implements Provider: it answers {"qa_pairs": [...]} for the
// request's Source, Pairs and Lang.
func (o Offline) Generate(ctx context.Context, req Request) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(req.Source) == 0 {
		return nil, &Error{Provider: OfflineName, Kind: KindPermanent, Err: errors.New("the offline provider needs the source text")}
	}
	start := time.Now()
	var pairs []QAPair
	batch := len(req.Source) > 1
	for i, src := range req.Source {
		n := src.Pairs
		if n <= 0 {
			n = req.Pairs
		}
		for _, p := range ExtractivePairs(src.Text, max(n, 1), req.Lang) {
			if batch {
				idx := i
				p.ChunkIndex = &idx
			}
			pairs = append(pairs, p)
		}
	}
	if len(pairs) == 0 {
		return nil, &Error{Provider: OfflineName, Kind: KindBadOutput, Err: errors.New("the source text has no sentences")}
	}
	text, _ := json.Marshal(map[string]any{"qa_pairs": pairs})
	model := req.Model
	if model == "" {
		model = o.DefaultModel()
	}
	return &Response{Text: string(text), Usage: Usage{Provider: OfflineName, Model: model,
		InputTokens: len(req.Prompt) / 4, OutputTokens: len(text) / 4, Latency: time.Since(start), Structured: true}}, nil
}
