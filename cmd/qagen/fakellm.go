package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/llm/fakellm"
)

// fakeLLMReady, when set (by tests), is told the address the fake LLM
// server listens on.
var fakeLLMReady func(addr string)

func fakeLLMCommand() *cli.Command {
	return &cli.Command{
		Name:  "fake-llm",
		Usage: "run a local simulator of the Gemini and OpenAI APIs (Q&A answers built from the prompt, embeddings)",
		Description: "Serves POST /{version}/models/{model}:generateContent (Gemini; key in x-goog-api-key or ?key=),\n" +
			"POST /v1/chat/completions and /chat/completions (OpenAI; Bearer key), the embedding endpoints\n" +
			"(Gemini :batchEmbedContents and :embedContent, OpenAI /v1/embeddings: deterministic hashed n-gram\n" +
			"vectors of each text) and GET /stats.\n" +
			"Point the workers at it with GOOGLE_GEMINI_BASE_URL=http://ADDR and OPENAI_BASE_URL=http://ADDR/v1.\n" +
			"Answers are schema-valid Q&A JSON drawn from the prompt's text; token counts are estimates\n" +
			"(one per CJK character, one per 4 other bytes). --latency takes 200ms, 200ms±50ms or\n" +
			"uniform:100ms-300ms. --rpm/--tpm are enforced over a sliding minute with 429 + Retry-After.\n" +
			"--fail-rate is spread over --fail-kinds (429, 500, timeout, schema, malformed, empty) as\n" +
			"independent probabilities; --seed makes the sequence of failures repeatable.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Usage: "listen address", Value: "127.0.0.1:8089"},
			&cli.StringFlag{Name: "latency", Usage: "answer delay: 200ms, 200ms±50ms or uniform:100ms-300ms", Value: "0"},
			&cli.IntFlag{Name: "rpm", Usage: "requests per minute (0: unlimited)"},
			&cli.IntFlag{Name: "tpm", Usage: "tokens per minute (0: unlimited)"},
			&cli.Float64Flag{Name: "fail-rate", Usage: "probability that a request fails (spread over --fail-kinds)"},
			&cli.StringFlag{Name: "fail-kinds", Usage: "comma-separated faults: 429, 500, timeout, schema, malformed, empty (or all)", Value: "500,timeout,malformed,empty"},
			&cli.DurationFlag{Name: "hang", Usage: "how long a timeout fault hangs before a 504 (0: until the client gives up)"},
			&cli.StringFlag{Name: "retry-after-in", Usage: "where 429s carry the wait: both, header or body", Value: "both"},
			&cli.StringFlag{Name: "api-key", Usage: "the only API key accepted (default: any)", EnvVars: []string{"FAKE_LLM_API_KEY"}},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the fault and latency draws (default: random)"},
			&cli.StringFlag{Name: "log-level", Usage: "debug (every request), info, warning, error", Value: "info"},
			&cli.StringFlag{Name: "log-format", Usage: "console or json", Value: "console"},
		},
		Action: runFakeLLM,
	}
}

// fakeLLMConfig builds the server configuration from the flags.
func fakeLLMConfig(c *cli.Context) (fakellm.Config, error) {
	var cfg fakellm.Config
	lat, err := fakellm.ParseLatency(c.String("latency"))
	if err != nil {
		return cfg, err
	}
	kinds, err := fakellm.ParseFaults(c.String("fail-kinds"))
	if err != nil {
		return cfg, err
	}
	faults, err := fakellm.SpreadFailRate(c.Float64("fail-rate"), kinds)
	if err != nil {
		return cfg, err
	}
	if c.Int("rpm") < 0 || c.Int("tpm") < 0 {
		return cfg, errors.New("--rpm and --tpm must not be negative")
	}
	switch c.String("retry-after-in") {
	case "both", "header", "body":
	default:
		return cfg, fmt.Errorf("--retry-after-in %q: want both, header or body", c.String("retry-after-in"))
	}
	seed := c.Uint64("seed")
	if !c.IsSet("seed") {
		seed = uint64(time.Now().UnixNano())
	}
	return fakellm.Config{
		Latency: lat, RPM: c.Int("rpm"), TPM: c.Int("tpm"), Faults: faults,
		HangFor: c.Duration("hang"), RetryAfterIn: c.String("retry-after-in"),
		APIKey: c.String("api-key"), Seed: seed,
	}, nil
}

func runFakeLLM(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("fake-llm takes no arguments, got %q", c.Args().Slice())
	}
	cfg, err := fakeLLMConfig(c)
	if err != nil {
		return err
	}
	log, err := newLogger(parseLevel(c.String("log-level")), c.String("log-format"), os.Stderr)
	if err != nil {
		return err
	}
	cfg.Logger = &log
	fake := fakellm.New(cfg)
	ln, err := net.Listen("tcp", c.String("addr"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	addr := ln.Addr().String()
	ev := log.Info().Str("addr", addr).Str("latency", cfg.Latency.String()).Int("rpm", cfg.RPM).Int("tpm", cfg.TPM).
		Float64("fail_rate", c.Float64("fail-rate")).Uint64("seed", cfg.Seed)
	if c.Float64("fail-rate") > 0 {
		ev = ev.Str("fail_kinds", c.String("fail-kinds"))
	}
	ev.Str("gemini", "GOOGLE_GEMINI_BASE_URL=http://"+addr).Str("openai", "OPENAI_BASE_URL=http://"+addr+"/v1").
		Msg("fake LLM API listening")

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if fakeLLMReady != nil {
		fakeLLMReady(addr)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down")
	fake.Close() // release hanging requests
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	st := fake.Stats()
	log.Info().Interface("requests", st.Requests).Int64("answers", st.Answers).Int64("rate_limited", st.RateLimited).
		Interface("errors", st.Errors).Int64("input_tokens", st.InputTokens).Int64("output_tokens", st.OutputTokens).
		Int64("pairs", st.Pairs).Msg("stopped")
	return nil
}
