package llm

import (
	"context"
	"fmt"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// OpenAIEmbedder embeds with OpenAI's embeddings API (or a compatible
// server) through github.com/sashabaranov/go-openai. It is safe for
// concurrent use.
type OpenAIEmbedder struct {
	client  *openai.Client
	key     string
	model   string
	dims    int
	timeout time.Duration
	b       batcher
}

// NewOpenAIEmbedder builds an OpenAI embedder: key from OPENAI_API_KEY,
// base URL from OPENAI_BASE_URL, model text-embedding-3-small unless cfg
// says otherwise. It does no network I/O.
func NewOpenAIEmbedder(cfg EmbedConfig) (*OpenAIEmbedder, error) {
	if cfg.Dimensions < 0 {
		return nil, &Error{Provider: OpenAIName, Kind: KindPermanent, Err: fmt.Errorf("embedding dimensions %d", cfg.Dimensions)}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Model == "" {
		cfg.Model = OpenAIEmbeddingModel
	}
	client, key, err := newOpenAIClient(cfg.APIKey, cfg.BaseURL, cfg.HTTPClient, " for OpenAI embeddings")
	if err != nil {
		return nil, err
	}
	return &OpenAIEmbedder{client: client, key: key, model: cfg.Model, dims: cfg.Dimensions,
		timeout: cfg.Timeout, b: cfg.batcher(OpenAIName)}, nil
}

// Name implements Embedder.
func (o *OpenAIEmbedder) Name() string { return OpenAIName }

// Model implements Embedder.
func (o *OpenAIEmbedder) Model() string { return o.model }

// Embed implements Embedder.
func (o *OpenAIEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return o.b.run(ctx, texts, o.batch)
}

func (o *OpenAIEmbedder) batch(ctx context.Context, texts []string) ([][]float32, error) {
	resp, err := doCall(ctx, OpenAIName, o.timeout, func(ctx context.Context) (openai.EmbeddingResponse, error) {
		return o.client.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{
			Input: texts, Model: openai.EmbeddingModel(o.model), Dimensions: o.dims,
		})
	}, func(err error, info *callInfo) *Error { return classifyOpenAI(err, info, o.key, false) })
	if err != nil {
		return nil, err
	}
	if len(resp.Data) != len(texts) {
		return nil, badOutput(OpenAIName, "%d embeddings for %d texts", len(resp.Data), len(texts))
	}
	// The API answers with an index per input; put them in input order.
	out := make([][]float32, len(texts))
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, badOutput(OpenAIName, "embedding index %d is out of range or repeated", d.Index)
		}
		out[d.Index] = d.Embedding
	}
	return out, nil
}
