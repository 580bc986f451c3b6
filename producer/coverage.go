package producer

import (
	"encoding/json"
	"fmt"

	"github.com/qagen/qagen/producer/chunk"
	"github.com/qagen/qagen/producer/coverage"
)

// OriginalChunk is an unmerged chunk that merging joined with others.
type OriginalChunk struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// mergedOriginals lists the pieces of every chunk merged from several.
func mergedOriginals(before, after []chunk.Chunk) []OriginalChunk {
	var text map[string]string
	var out []OriginalChunk
	for _, m := range after {
		if len(m.OriginalChunks) < 2 {
			continue
		}
		if text == nil {
			text = make(map[string]string, len(before))
			for _, c := range before {
				text[c.ID] = c.Text
			}
		}
		for _, id := range m.OriginalChunks {
			out = append(out, OriginalChunk{ID: id, Text: text[id]})
		}
	}
	return out
}

// CoverageChunks returns the run's original (unmerged) chunks in order,
// for the coverage analysis: every chunk of every unit, whatever its
// state, with merged chunks replaced by their pieces. A merged chunk whose
// pieces the manifest lacks (one written before qagen kept them) stays
// whole; unexpanded counts those.
func (r *Run) CoverageChunks() (chunks []coverage.Chunk, unexpanded int, err error) {
	pieces := make(map[string]string, len(r.Originals))
	for _, o := range r.Originals {
		pieces[o.ID] = o.Text
	}
	for ui, u := range r.Units {
		for ci, raw := range u.Chunks {
			var c struct {
				ID             string   `json:"id"`
				Text           string   `json:"text"`
				OriginalChunks []string `json:"original_chunks"`
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, 0, fmt.Errorf("unit %d chunk %d of the manifest: %w", ui+1, ci+1, err)
			}
			if len(c.OriginalChunks) > 1 {
				expanded := make([]coverage.Chunk, 0, len(c.OriginalChunks))
				for _, id := range c.OriginalChunks {
					text, ok := pieces[id]
					if !ok {
						break
					}
					expanded = append(expanded, coverage.Chunk{ID: id, Text: text})
				}
				if len(expanded) == len(c.OriginalChunks) {
					chunks = append(chunks, expanded...)
					continue
				}
				unexpanded++
			}
			chunks = append(chunks, coverage.Chunk{ID: c.ID, Text: c.Text})
		}
	}
	return chunks, unexpanded, nil
}

// CoveragePairs returns the run's pairs (those of succeeded units) for the
// coverage analysis.
func (r *Run) CoveragePairs() []coverage.Pair {
	pairs := r.Pairs()
	out := make([]coverage.Pair, len(pairs))
	for i, p := range pairs {
		out[i] = coverage.Pair{Question: p.Question, Answer: p.Answer}
	}
	return out
}
