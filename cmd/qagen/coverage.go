package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/producer/chunk"
	"github.com/qagen/qagen/producer/coverage"
)

// coverageRun is qagen generate's --analyze-coverage: the flags, then the
// embedder, then the analysis after the outputs are written.
type coverageRun struct {
	enabled   bool
	threshold float64 // 0: the dataset's standard level
	emb       llm.Embedder
}

// coverageFlags reads and checks the coverage flags.
func coverageFlags(c *cli.Context) (*coverageRun, error) {
	cr := &coverageRun{enabled: c.Bool("analyze-coverage")}
	if c.IsSet("coverage-threshold") {
		t := c.Float64("coverage-threshold")
		if !(t > 0 && t <= 1) {
			return nil, fmt.Errorf("--coverage-threshold %v: want a cosine similarity in (0, 1]", t)
		}
		cr.threshold = t
	}
	if !cr.enabled {
		for _, f := range []string{"coverage-threshold", "embedding-model"} {
			if c.IsSet(f) {
				return nil, fmt.Errorf("--%s has no effect without --analyze-coverage", f)
			}
		}
	}
	return cr, nil
}

func (cr *coverageRun) skipDryRun(out io.Writer) {
	if cr.enabled {
		fmt.Fprintln(out, "coverage analysis skipped: a dry run embeds nothing")
	}
}

// resolve builds the embedder: --embedding-provider ($EMBEDDING_PROVIDER),
// else the generation provider's resolution (--provider, $LLM_PROVIDER,
// gemini), falling back to the offline embedder when that provider has no
// API key. A provider named explicitly must have its key.
func (cr *coverageRun) resolve(ctx context.Context, c *cli.Context, s *producer.Settings, log zerolog.Logger) error {
	if !cr.enabled {
		return nil
	}
	name := strings.ToLower(strings.TrimSpace(c.String("embedding-provider")))
	model := c.String("embedding-model")
	if name == "" {
		name = llm.ResolveName(s.Provider)
		if name == llm.OfflineName {
			name = "offline"
		}
		if !llm.HasAPIKey(name) {
			log.Warn().Str("provider", name).Msg("coverage: no API key for the embedding provider; using the offline embedder (hashed n-grams, labelled offline-hashed)")
			name = "offline"
			if model != "" {
				log.Warn().Str("model", model).Msg("coverage: --embedding-model ignored by the offline embedder")
				model = ""
			}
		}
	}
	emb, err := llm.NewEmbedder(ctx, name, llm.EmbedConfig{Model: model, Timeout: secondsFlag(c.Float64("llm-timeout"))})
	if err != nil {
		return fmt.Errorf("--analyze-coverage: %w", err)
	}
	cr.emb = emb
	return nil
}

// run analyses the run's coverage, records it in its files and prints the
// summary. Its error says the analysis failed; the Q&A outputs are
// written either way.
func (cr *coverageRun) run(ctx context.Context, out io.Writer, log zerolog.Logger, run *producer.Run, files producer.Files) error {
	if !cr.enabled {
		return nil
	}
	rep, err := cr.analyse(ctx, out, log, run)
	if err != nil {
		log.Error().Err(err).Msg("coverage analysis failed")
	}
	if werr := producer.WriteCoverage(files, rep, err, run); werr != nil {
		return errors.Join(err, fmt.Errorf("write the coverage analysis: %w", werr))
	}
	if err != nil {
		fmt.Fprintf(out, "[coverage] FAILED: %v\n      the Q&A outputs are complete; %s says \"analyzed\": false\n", err, files.Coverage)
		return fmt.Errorf("the coverage analysis failed (the Q&A outputs are written): %w", err)
	}
	fmt.Fprint(out, "[coverage] ")
	fmt.Fprint(out, strings.ReplaceAll(strings.TrimRight(rep.Format(), "\n"), "\n", "\n    "))
	fmt.Fprintf(out, "\n      %-10s %s\n", "coverage", files.Coverage)
	return nil
}

func (cr *coverageRun) analyse(ctx context.Context, out io.Writer, log zerolog.Logger, run *producer.Run) (*coverage.Report, error) {
	chunks, unexpanded, err := run.CoverageChunks()
	if err != nil {
		return nil, err
	}
	if unexpanded > 0 {
		log.Warn().Int("merged_chunks", unexpanded).Msg("coverage: the manifest lacks the pieces of some merged chunks (written by an older qagen); they are analysed whole")
	}
	pairs := run.CoveragePairs()
	fmt.Fprintf(out, "[coverage] embedding %d original chunks and %d Q&A pairs (%s %s)\n", len(chunks), len(pairs), cr.emb.Name(), cr.emb.Model())
	tok, err := chunk.CL100K()
	if err != nil {
		return nil, err
	}
	return coverage.Analyze(ctx, cr.emb, chunks, pairs, coverage.Options{
		DatasetType: run.DatasetType, Threshold: cr.threshold, Tokens: tok, Log: log,
	})
}
