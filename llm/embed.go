package llm

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Embedder turns texts into vectors. The producer's coverage analysis
// (qagen generate --analyze-coverage) compares chunks with Q&A pairs by
// the cosine of their vectors.
type Embedder interface {
	// Name is the provider label: gemini, openai or offline-hashed.
	Name() string
	// Model is the embedding model.
	Model() string
	// Embed returns one vector per text, in order. The vectors all have
	// the same length, are finite and never all zero. A request that still
	// fails after its retries fails the whole call with an error: there
	// are no placeholder vectors (the Python system silently used zeros).
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Embedding defaults.
const (
	// EnvEmbeddingProvider names the embedding provider when the caller
	// names none (as in the Python system's helper_embedding.py).
	EnvEmbeddingProvider = "EMBEDDING_PROVIDER"
	// GeminiEmbeddingModel and GeminiEmbeddingDimensions are the Python
	// coverage analysis's settings (output_dimensionality 3072).
	GeminiEmbeddingModel      = "gemini-embedding-001"
	GeminiEmbeddingDimensions = 3072
	OpenAIEmbeddingModel      = "text-embedding-3-small"
	// OfflineEmbedName labels the offline embeddings: hashed word and
	// character n-grams, lexical rather than semantic.
	OfflineEmbedName           = "offline-hashed"
	OfflineEmbeddingModel      = "hashed-ngrams-v1"
	OfflineEmbeddingDimensions = 768
	// DefaultEmbedBatch is the number of texts per request (Gemini's
	// batchEmbedContents takes at most 100; the Python system sent 100).
	DefaultEmbedBatch       = 100
	DefaultEmbedConcurrency = 4
	DefaultEmbedRetries     = 3
	// maxEmbedWait bounds one wait between retries.
	maxEmbedWait = time.Minute
)

// EmbedConfig configures NewEmbedder. Empty fields come from the
// environment (the same API key and base URL variables as the generation
// providers) or defaults.
type EmbedConfig struct {
	APIKey  string
	BaseURL string
	// HTTPClient is copied (never modified); nil uses a default client.
	HTTPClient *http.Client
	// Model: "" is the provider's default embedding model.
	Model string
	// Dimensions asks for vectors of this length; 0 is 3072 for
	// gemini-embedding-001 (the Python setting), the model's own size
	// otherwise (768 for the offline embedder).
	Dimensions int
	// BatchSize is the number of texts per request (default 100).
	BatchSize int
	// Concurrency is the number of requests at once (default 4).
	Concurrency int
	// Timeout bounds one request (default DefaultTimeout).
	Timeout time.Duration
	// Retries is how often a request that may succeed later (429, 5xx,
	// timeouts, malformed answers) is sent again; 0 is the default (3),
	// negative none.
	Retries int
	// RetryDelay is the first wait before a retry (default 1s), doubled
	// each time, never shorter than the provider's Retry-After and never
	// longer than MaxRetryWait (default a minute).
	RetryDelay   time.Duration
	MaxRetryWait time.Duration
}

func (c EmbedConfig) batcher(provider string) batcher {
	b := batcher{provider: provider, size: c.BatchSize, conc: c.Concurrency, retries: c.Retries, delay: c.RetryDelay, maxWait: c.MaxRetryWait}
	if b.size <= 0 {
		b.size = DefaultEmbedBatch
	}
	if b.conc <= 0 {
		b.conc = DefaultEmbedConcurrency
	}
	switch {
	case b.retries == 0:
		b.retries = DefaultEmbedRetries
	case b.retries < 0:
		b.retries = 0
	}
	if b.delay <= 0 {
		b.delay = time.Second
	}
	if b.maxWait <= 0 {
		b.maxWait = maxEmbedWait
	}
	return b
}

// EmbedderNames are the names NewEmbedder accepts.
var EmbedderNames = []string{GeminiName, OpenAIName, "offline"}

// NewEmbedder builds the embedder of a name — "gemini", "openai" or
// "offline" (case-insensitive). It does no network I/O. A network
// provider without an API key is a KindPermanent *Error wrapping
// ErrNoAPIKey.
func NewEmbedder(ctx context.Context, name string, cfg EmbedConfig) (Embedder, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case GeminiName:
		return NewGeminiEmbedder(ctx, cfg)
	case OpenAIName:
		return NewOpenAIEmbedder(cfg)
	case "offline", OfflineEmbedName:
		if cfg.Model != "" && cfg.Model != OfflineEmbeddingModel {
			return nil, &Error{Provider: OfflineEmbedName, Kind: KindPermanent,
				Err: fmt.Errorf("the offline embedder has one model, %s (not %q)", OfflineEmbeddingModel, cfg.Model)}
		}
		return NewOfflineEmbedder(cfg.Dimensions), nil
	}
	return nil, &Error{Provider: name, Kind: KindPermanent,
		Err: fmt.Errorf("unknown embedding provider %q (%s)", name, strings.Join(EmbedderNames, ", "))}
}

// HasAPIKey reports whether the environment holds a key for a network
// provider (gemini: GOOGLE_API_KEY or GEMINI_API_KEY; openai:
// OPENAI_API_KEY, or OPENAI_BASE_URL pointing at a server that may need
// none). Other names report true.
func HasAPIKey(provider string) bool {
	switch strings.ToLower(strings.TrimSpace(provider)) {
	case GeminiName:
		return envFirst(EnvGoogleAPIKey, EnvGeminiAPIKey) != ""
	case OpenAIName:
		return envFirst(EnvOpenAIAPIKey) != "" || !isOpenAIHost(envFirst(EnvOpenAIBaseURL))
	}
	return true
}

// embedBatchFunc embeds one request's texts.
type embedBatchFunc func(ctx context.Context, texts []string) ([][]float32, error)

// batcher cuts a call into requests of size texts, runs conc of them at
// once, retries the ones that may succeed later and checks every answer.
type batcher struct {
	provider string
	size     int
	conc     int
	retries  int
	delay    time.Duration
	maxWait  time.Duration
}

func (b batcher) run(ctx context.Context, texts []string, call embedBatchFunc) ([][]float32, error) {
	out := make([][]float32, len(texts))
	if len(texts) == 0 {
		return out, nil
	}
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			return nil, &Error{Provider: b.provider, Kind: KindPermanent, Err: fmt.Errorf("text %d of %d is empty", i+1, len(texts))}
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type span struct{ start, end int }
	jobs := make(chan span)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	requests := (len(texts) + b.size - 1) / b.size
	for w := 0; w < min(b.conc, requests); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range jobs {
				vecs, err := b.one(runCtx, texts[s.start:s.end], call)
				if err != nil {
					once.Do(func() {
						firstErr = fmt.Errorf("embedding texts %d-%d of %d: %w", s.start+1, s.end, len(texts), err)
						cancel()
					})
					continue
				}
				copy(out[s.start:s.end], vecs)
			}
		}()
	}
send:
	for start := 0; start < len(texts); start += b.size {
		select {
		case jobs <- span{start, min(start+b.size, len(texts))}:
		case <-runCtx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	dim := len(out[0])
	for i, v := range out {
		if len(v) != dim {
			return nil, &Error{Provider: b.provider, Kind: KindBadOutput,
				Err: fmt.Errorf("vectors of different lengths: text 1 has %d dimensions, text %d has %d", dim, i+1, len(v))}
		}
	}
	return out, nil
}

// one sends one request, with retries.
func (b batcher) one(ctx context.Context, texts []string, call embedBatchFunc) ([][]float32, error) {
	for attempt := 0; ; attempt++ {
		vecs, err := call(ctx, texts)
		if err == nil {
			if err = checkVectors(vecs, len(texts)); err == nil {
				return vecs, nil
			}
			err = &Error{Provider: b.provider, Kind: KindBadOutput, Err: err}
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		switch KindOf(err) {
		case KindPermanent, KindUnsupported:
			return nil, err
		}
		if attempt >= b.retries {
			if attempt > 0 {
				return nil, fmt.Errorf("%w (gave up after %d attempts)", err, attempt+1)
			}
			return nil, err
		}
		wait := min(max(b.delay<<min(attempt, 16), RetryAfter(err)), b.maxWait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// checkVectors checks one answer: a vector per text, all of one length,
// finite and not all zero.
func checkVectors(vecs [][]float32, n int) error {
	if len(vecs) != n {
		return fmt.Errorf("%d vectors for %d texts", len(vecs), n)
	}
	for i, v := range vecs {
		if len(v) == 0 {
			return fmt.Errorf("no vector for text %d of the request", i+1)
		}
		if len(v) != len(vecs[0]) {
			return fmt.Errorf("vectors of different lengths in one answer (%d and %d)", len(vecs[0]), len(v))
		}
		zero := true
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("the vector of text %d of the request is not finite", i+1)
			}
			if x != 0 {
				zero = false
			}
		}
		if zero {
			return fmt.Errorf("the vector of text %d of the request is all zeros", i+1)
		}
	}
	return nil
}
