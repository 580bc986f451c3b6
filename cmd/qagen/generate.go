package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/control"
	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/producer/chunk"
	"github.com/qagen/qagen/producer/docs"
	"github.com/qagen/qagen/ratelimit"
	"github.com/qagen/qagen/rdb"
	"github.com/qagen/qagen/tasks"
)

func generateCommand() *cli.Command {
	d := config.DefaultWorker()
	return &cli.Command{
		Name:  "generate",
		Usage: "documents in, Q&A data set out (a02_make_qa_para.py): chunk locally, generate on workers or in-process, collect, write the outputs",
		Description: "One of --dataset (the Python system's preprocessed CSVs) or --input-file (CSV, TXT, JSON, JSONL,\n" +
			"Markdown, or a directory of them). Without --use-celery the tasks run in this process; with it they\n" +
			"go to the workers of --queue (Go or Python) exactly as the Python producer sends them.\n" +
			"Outputs go to --output (qa_pairs_*.json/.csv, summary, run manifest) and qa_output/a02_qa_pairs_<dataset>.csv;\n" +
			"--resume <run id or manifest> sends again only the chunks that failed or are missing.\n" +
			"--analyze-coverage adds the Python producer's embedding coverage analysis (it always runs here, in the producer).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dataset", Usage: "cc_news, livedoor, wikipedia_ja or japanese_text"},
			&cli.StringFlag{Name: "input-file", Usage: "a CSV, TXT, JSON, JSONL or Markdown file, or a directory of them"},
			&cli.StringFlag{Name: "input-dir", Usage: "where the preprocessed dataset CSVs are", Value: config.DefaultInputDir},
			&cli.IntFlag{Name: "max-docs", Usage: "use the first N documents (0: all)"},
			&cli.StringFlag{Name: "txt-mode", Usage: "for .txt inputs: line (one document per line, as the Python system) or file (one document per file, paragraphs kept)", Value: "line"},
			&cli.StringFlag{Name: "lang", Usage: "force the language of --input-file documents (en or ja; default: detected per document)"},
			&cli.StringFlag{Name: "model", Usage: "LLM model (default: the provider's default, gemini-2.0-flash for Gemini)"},
			&cli.StringFlag{Name: "provider", Usage: "gemini, openai or offline (default: $LLM_PROVIDER, else gemini; offline when no API key is set and the tasks run in-process)"},
			&cli.StringFlag{Name: "output", Usage: "directory of the timestamped outputs", Value: "qa_output/a02"},
			&cli.StringFlag{Name: "simple-output-dir", Usage: "directory of the fixed a02_qa_pairs_<dataset>.csv downstream tools read", Value: "qa_output"},
			&cli.IntFlag{Name: "batch-chunks", Usage: "chunks per task and LLM request (1: one task per chunk, as the Python producer)", Value: 1},
			&cli.BoolFlag{Name: "merge-chunks", Usage: "merge small chunks of a document (--no-merge-chunks to disable)", Value: true},
			&cli.BoolFlag{Name: "no-merge-chunks", Usage: "do not merge small chunks"},
			&cli.IntFlag{Name: "min-tokens", Usage: "chunks below this many tokens are merge candidates", Value: 150},
			&cli.IntFlag{Name: "max-tokens", Usage: "largest merged chunk, in tokens", Value: 400},
			&cli.BoolFlag{Name: "use-celery", Usage: "send the tasks to Celery workers (Go or Python) instead of running them here"},
			&cli.IntFlag{Name: "celery-workers", Usage: "worker slots expected by the pre-flight check", Value: 8},
			&cli.IntFlag{Name: "concurrency", Usage: "tasks run at once in-process", Value: 8},
			&cli.StringFlag{Name: "queue", Aliases: []string{"Q"}, Usage: "queue of the Celery tasks", Value: d.Queues[0]},
			brokerFlag(d),
			backendFlag(d),
			keyPrefixFlag(),
			&cli.DurationFlag{Name: "timeout", Usage: "stop collecting after this long and report what is missing (0: no limit)"},
			&cli.DurationFlag{Name: "stall-timeout", Usage: "stop when no task has finished for this long", Value: 15 * time.Minute},
			&cli.BoolFlag{Name: "dry-run", Usage: "chunk, merge and plan without any LLM call; writes chunks_<dataset>_<ts>.jsonl"},
			&cli.StringFlag{Name: "resume", Usage: "run id or manifest of an earlier run: send again only its failed and missing chunks"},
			&cli.Float64Flag{Name: "llm-timeout", Usage: "seconds one LLM call (in-process) or one coverage embedding request may take", Value: 90},
			&cli.IntFlag{Name: "llm-rpm", Usage: "in-process: LLM requests per minute for the provider (default: the model's known limit); Celery workers pace themselves", EnvVars: []string{"QAGEN_LLM_RPM"}},
			&cli.IntFlag{Name: "llm-tpm", Usage: "in-process: LLM tokens per minute (input + expected output)", EnvVars: []string{"QAGEN_LLM_TPM"}},
			&cli.StringFlag{Name: "llm-limits", Usage: "in-process: JSON file of limits, as qagen worker --llm-limits", EnvVars: []string{"QAGEN_LLM_LIMITS"}},
			&cli.BoolFlag{Name: "no-llm-limit", Usage: "in-process: do not pace LLM calls"},
			&cli.BoolFlag{Name: "analyze-coverage", Usage: "after collection, embed the original chunks and the Q&A pairs and write the coverage analysis (coverage_<dataset>_<ts>.json)"},
			&cli.Float64Flag{Name: "coverage-threshold", Usage: "similarity a chunk needs to count as covered (default: the dataset's standard level, 0.7 for uploads); the strict/standard/lenient block keeps the dataset's levels"},
			&cli.StringFlag{Name: "embedding-provider", Usage: "gemini, openai or offline (default: the --provider resolution; offline when it has no API key)", EnvVars: []string{llm.EnvEmbeddingProvider}},
			&cli.StringFlag{Name: "embedding-model", Usage: "embedding model (default: gemini-embedding-001 at 3072 dimensions, text-embedding-3-small)"},
			&cli.StringFlag{Name: "loglevel", Aliases: []string{"l"}, Usage: "debug, info, warning, error", Value: "info"},
		},
		Action: runGenerate,
	}
}

func runGenerate(c *cli.Context) error {
	log, err := newLogger(parseLevel(c.String("loglevel")), "console", os.Stderr)
	if err != nil {
		return err
	}
	out := writerOf(c)
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// --timeout bounds the collection, not the coverage analysis after it.
	coverageCtx := ctx
	if d := c.Duration("timeout"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	now := time.Now()
	cov, err := coverageFlags(c)
	if err != nil {
		return err
	}

	var run *producer.Run
	var units []*producer.Unit
	if ref := c.String("resume"); ref != "" {
		if c.String("dataset") != "" || c.String("input-file") != "" {
			return errors.New("--resume takes its input from the run manifest; drop --dataset/--input-file")
		}
		path, err := producer.FindManifest(c.String("output"), ref)
		if err != nil {
			return err
		}
		prev, err := producer.LoadManifest(path)
		if err != nil {
			return err
		}
		run, units = producer.Resume(prev, now)
		fmt.Fprintf(out, "[resume] run %s: %d of %d tasks to send again (failed or missing)\n", prev.ID, len(units), len(prev.Units))
		if c.Bool("dry-run") {
			fmt.Fprintln(out, "dry run: nothing sent")
			cov.skipDryRun(out)
			return nil
		}
	} else {
		plan, err := planFromFlags(c, out, now)
		if err != nil {
			return err
		}
		if c.Bool("dry-run") {
			path, err := plan.WriteChunks(c.String("output"))
			if err != nil {
				return err
			}
			printPlan(c, out, plan, c.Int("batch-chunks"))
			fmt.Fprintf(out, "dry run: no LLM call made; chunks written to %s\n", path)
			cov.skipDryRun(out)
			return nil
		}
		run, units = plan.Run, plan.Run.Units
	}
	if len(units) == 0 && !cov.enabled {
		// Only a resume of a complete run gets here (a plan has chunks);
		// its outputs are already complete.
		fmt.Fprintf(out, "nothing to send: every chunk of run %s succeeded\n", run.ResumedFrom)
		return nil
	}

	settings := &run.Settings
	if c.IsSet("model") || settings.Model == "" {
		settings.Model = c.String("model")
	}
	if c.IsSet("provider") || settings.Provider == "" {
		settings.Provider = strings.ToLower(c.String("provider"))
	}
	if c.IsSet("use-celery") || c.String("resume") == "" {
		settings.UseCelery = c.Bool("use-celery")
	}
	if c.IsSet("queue") || settings.Queue == "" {
		settings.Queue = c.String("queue")
	}
	// The embedder is built before anything is sent: a bad
	// --embedding-provider or a missing key stops the run before it costs.
	if err := cov.resolve(ctx, c, settings, log); err != nil {
		return err
	}
	if len(units) == 0 {
		fmt.Fprintf(out, "nothing to send: every chunk of run %s succeeded; analysing its coverage\n", run.ResumedFrom)
	} else {
		exec, closeExec, err := executorFor(ctx, c, settings, log, out)
		if err != nil {
			return err
		}
		defer closeExec()
		progress := producer.NewProgress(os.Stderr, isTerminal(os.Stderr), len(units))
		switch e := exec.(type) {
		case *producer.LocalExecutor:
			e.Progress = progress.Retry
		case *producer.CeleryExecutor:
			e.Progress = progress.Retry
		}
		fmt.Fprintf(out, "[3/4] generating Q&A: %d tasks (%s)\n", len(units), modeName(settings))
		if runErr := producer.Execute(ctx, run, units, exec, progress); runErr != nil {
			log.Warn().Err(runErr).Msg("collection stopped before every task finished; what is missing is listed in the outputs")
		}
	}
	files, err := producer.WriteOutputs(c.String("output"), c.String("simple-output-dir"), run)
	if err != nil {
		return err
	}
	printReport(out, run, files)
	// The Q&A outputs are on disk before the analysis starts: a failed or
	// interrupted analysis loses nothing but itself.
	covErr := cov.run(coverageCtx, out, log, run, files)
	_, failed, missing := run.Counts()
	if failed+missing > 0 {
		return &exitError{code: 3, err: fmt.Errorf("%d chunks failed and %d are missing; resend them with --resume %s", failed, missing, files.Manifest)}
	}
	if covErr != nil {
		return &exitError{code: 4, err: covErr}
	}
	return nil
}

// planFromFlags loads the input and chunks it.
func planFromFlags(c *cli.Context, out io.Writer, now time.Time) (*producer.Plan, error) {
	dataset, input := c.String("dataset"), c.String("input-file")
	if (dataset == "") == (input == "") {
		return nil, errors.New("give exactly one of --dataset or --input-file")
	}
	var corpus *docs.Corpus
	var err error
	fmt.Fprintln(out, "[1/4] loading documents")
	if dataset != "" {
		corpus, err = docs.LoadDataset(dataset, c.String("input-dir"), c.Int("max-docs"))
	} else {
		mode, merr := docs.ParseTxtMode(c.String("txt-mode"))
		if merr != nil {
			return nil, merr
		}
		corpus, err = docs.LoadInput(input, c.Int("max-docs"), docs.InputOptions{TxtMode: mode, Lang: c.String("lang")})
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "      %d documents (%d skipped) from %s\n", len(corpus.Docs), len(corpus.Skips), firstNonEmpty(input, dataset))
	for _, s := range corpus.Skips {
		fmt.Fprintf(out, "      skipped %s: %s\n", s.Source, s.Reason)
	}
	for _, n := range corpus.Notes {
		fmt.Fprintf(out, "      note: %s\n", n)
	}
	if len(corpus.Docs) == 0 {
		return nil, errors.New("no documents to work on")
	}
	tok, err := chunk.CL100K()
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "[2/4] chunking (local cl100k_base tokenizer)")
	merge := c.Bool("merge-chunks") && !c.Bool("no-merge-chunks")
	plan, err := producer.NewPlan(corpus, chunk.New(tok), producer.PlanOptions{
		Merge: merge, MinTokens: c.Int("min-tokens"), MaxTokens: c.Int("max-tokens"), BatchChunks: c.Int("batch-chunks"),
	}, now)
	if err != nil {
		return nil, err
	}
	plan.Run.Settings = producer.Settings{
		Input: firstNonEmpty(input, dataset), BatchChunks: max(c.Int("batch-chunks"), 1), Merge: merge,
		MinTokens: c.Int("min-tokens"), MaxTokens: c.Int("max-tokens"), Queue: c.String("queue"), MaxDocs: c.Int("max-docs"),
	}
	fmt.Fprintf(out, "      %d chunks (%d before merging), %d tokens\n", len(plan.Chunks), plan.Unmerged, plan.Tokens())
	if len(plan.Chunks) == 0 {
		return nil, errors.New("chunking produced no chunks")
	}
	return plan, nil
}

func printPlan(c *cli.Context, out io.Writer, plan *producer.Plan, batch int) {
	fmt.Fprintf(out, "plan: %d documents, %d chunks (%d before merging), %d LLM requests (batch %d), %d chunk tokens\n",
		plan.Run.Documents, len(plan.Chunks), plan.Unmerged, len(plan.Run.Units), max(batch, 1), plan.Tokens())
	tokens := 0
	for _, u := range plan.Run.Units {
		n, err := tasks.EstimateTokens(u.Chunks, u.Config)
		if err != nil {
			fmt.Fprintf(out, "      no token estimate: %v\n", err)
			return
		}
		tokens += n
	}
	fmt.Fprintf(out, "      about %d LLM tokens (prompts and expected answers)\n", tokens)
	provider := llm.ResolveName(c.String("provider"))
	model := c.String("model")
	switch {
	case model != "":
	case provider == llm.GeminiName:
		model = llm.GeminiDefaultModel
	case provider == llm.OpenAIName:
		model = llm.OpenAIDefaultModel
	default:
		return // the offline provider is not paced
	}
	key := ratelimit.Key{Provider: provider, Model: model}
	if c.Bool("no-llm-limit") && !c.Bool("use-celery") {
		fmt.Fprintf(out, "      %s not paced (--no-llm-limit)\n", key)
		return
	}
	lim, where := planLimit(c, key)
	if lim.Unlimited() {
		fmt.Fprintf(out, "      no rate limit known for %s\n", key)
		return
	}
	minutes := 0.0
	if lim.RPM > 0 {
		minutes = float64(len(plan.Run.Units)) / float64(lim.RPM)
	}
	if lim.TPM > 0 {
		minutes = max(minutes, float64(tokens)/float64(lim.TPM))
	}
	least := time.Duration(minutes * float64(time.Minute)).Round(time.Second).String()
	if minutes*60 < 1 {
		least = "under a second"
	}
	fmt.Fprintf(out, "      at %s's %s (%s): at least %s of LLM calls\n", key, lim, where, least)
}

// planLimit is the limit the run will be paced at: with --use-celery the
// fleet's (in Redis, when it answers within 2 s), else the local one.
func planLimit(c *cli.Context, key ratelimit.Key) (ratelimit.Limit, string) {
	if !c.Bool("use-celery") {
		local, _ := localLimits(c, key.Provider) // a bad flag fails the real run; here, the defaults
		lim, _ := local.Lookup(key)
		return lim, "in-process"
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Second)
	defer cancel()
	if store, closeFn, err := limitStore(c); err == nil {
		defer closeFn()
		if fleet, err := store.Limits(ctx); err == nil {
			if lim, ok := fleet.Find(key); ok {
				return lim, "the fleet's limit"
			}
			lim, _ := ratelimit.Table{}.Lookup(key)
			return lim, "the workers' default unless they set their own"
		}
	}
	lim, _ := ratelimit.Table{}.Lookup(key)
	return lim, "the default; the fleet's limits could not be read"
}

func modeName(s *producer.Settings) string {
	if s.UseCelery {
		return "Celery workers on queue " + s.Queue
	}
	return "in-process"
}

// localLimiter paces in-process LLM calls (there is no fleet to share a
// budget with, so the store is in memory): --llm-rpm/--llm-tpm for the
// provider, else a --llm-limits file, else the models' known limits.
func localLimiter(c *cli.Context, provider string, log zerolog.Logger) (*ratelimit.Limiter, error) {
	local, err := localLimits(c, provider)
	if err != nil {
		return nil, err
	}
	return ratelimit.New(ratelimit.Config{Store: ratelimit.NewMemoryStore(), Local: local, Disabled: c.Bool("no-llm-limit"), Logger: log}), nil
}

// localLimits reads --llm-limits and --llm-rpm/--llm-tpm (for provider).
func localLimits(c *cli.Context, provider string) (ratelimit.Table, error) {
	local, lim, err := llmLimitFlags(c)
	if err != nil {
		return nil, err
	}
	if !lim.Unlimited() {
		local[ratelimit.Key{Provider: provider, Model: "*"}] = lim
	}
	return local, nil
}

// executorFor builds the in-process or the Celery executor; for Celery it
// runs the Python producer's pre-flight check first.
func executorFor(ctx context.Context, c *cli.Context, s *producer.Settings, log zerolog.Logger, out io.Writer) (producer.Executor, func(), error) {
	if !s.UseCelery {
		timeout := secondsFlag(c.Float64("llm-timeout"))
		providers := &llm.Cache{NewFunc: func(ctx context.Context, name string) (llm.Provider, error) {
			return llm.NewWith(ctx, name, llm.Options{Timeout: timeout})
		}}
		name := llm.ResolveName(s.Provider)
		if !c.IsSet("provider") && name == "gemini" && os.Getenv("GOOGLE_API_KEY") == "" && os.Getenv("GEMINI_API_KEY") == "" {
			log.Warn().Msg("no GOOGLE_API_KEY or GEMINI_API_KEY: using the offline extractive provider (answers quoted from the text, labelled offline-extractive)")
			name = "offline"
		}
		s.Provider = name
		limiter, err := localLimiter(c, name, log)
		if err != nil {
			return nil, nil, err
		}
		qa := tasks.NewQA(tasks.QAConfig{Provider: providers.Get, DefaultProvider: name, Logger: log, Limiter: limiter})
		return &producer.LocalExecutor{QA: qa, Concurrency: c.Int("concurrency"), Model: s.Model, Provider: name, Log: log}, func() {}, nil
	}
	b, brokerOpts, err := dialBroker(c, rdb.PoolOptions{MaxIdle: 8})
	if err != nil {
		return nil, nil, err
	}
	backendOpts, err := rdb.ParseURL(c.String("result-backend"))
	if err != nil {
		b.Pool().Close()
		return nil, nil, err
	}
	// One pool when the results live in the broker's database, as the worker.
	rp := b.Pool()
	if !backendOpts.SameDatabase(brokerOpts) {
		rp = backendOpts.NewPool(rdb.PoolOptions{MaxIdle: 8})
	}
	closeAll := func() { b.Pool().Close(); rp.Close() } // closing a pool twice is harmless
	client := producer.New(b, backend.New(rp, backend.Options{}))
	// Pre-flight, as the Python producer: broadcast stats, sum the pools.
	ctl := control.New(b)
	slots, nodes := 0, 0
	for attempt := 0; attempt < 3 && nodes == 0; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		stats, err := ctl.Stats(ctx, control.Options{Timeout: 2 * time.Second})
		if err != nil {
			closeAll()
			if ctx.Err() != nil { // Ctrl-C or --timeout: nothing was sent
				return nil, nil, fmt.Errorf("stopped during the worker check, before sending anything: %w", ctx.Err())
			}
			return nil, nil, fmt.Errorf("worker check: %w", err)
		}
		nodes = len(stats)
		slots, _ = control.SumMaxConcurrency(stats)
	}
	if nodes == 0 {
		closeAll()
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("no Celery worker answered on %s; start them first, e.g. ./start_celery.sh start -w %d", brokerOpts, c.Int("celery-workers"))}
	}
	if want := c.Int("celery-workers"); slots < want {
		log.Warn().Int("slots", slots).Int("expected", want).Msg("fewer worker slots than --celery-workers; continuing")
	}
	fmt.Fprintf(out, "      %d worker(s) with %d slots answer on %s\n", nodes, slots, brokerOpts)
	return &producer.CeleryExecutor{Client: client, Queue: s.Queue, Model: s.Model, Provider: s.Provider,
		StallTimeout: c.Duration("stall-timeout"), Log: log}, closeAll, nil
}

func printReport(out io.Writer, run *producer.Run, files producer.Files) {
	succeeded, failed, missing := run.Counts()
	pairs := run.Pairs()
	fmt.Fprintln(out, "[4/4] results")
	fmt.Fprintf(out, "      chunks: %d succeeded, %d failed, %d missing; %d Q&A pairs\n", succeeded, failed, missing, len(pairs))
	if run.Stopped != "" {
		fmt.Fprintf(out, "      stopped early: %s\n", run.Stopped)
	}
	for _, p := range []struct{ name, path string }{
		{"Q&A JSON", files.QAJSON}, {"Q&A CSV", files.QACSV}, {"simple CSV", files.Simple},
		{"summary", files.Summary}, {"manifest", files.Manifest}, {"failures", files.Failures},
	} {
		if p.path != "" {
			fmt.Fprintf(out, "      %-10s %s\n", p.name, p.path)
		}
	}
	fmt.Fprint(out, producer.FormatQuestionTypes(pairs))
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
