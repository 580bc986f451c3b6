package llm

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/genai"
)

// GeminiEmbedder embeds with the Gemini API's batchEmbedContents through
// google.golang.org/genai (Models.EmbedContent). It is safe for concurrent
// use.
type GeminiEmbedder struct {
	client  *genai.Client
	key     string
	model   string
	dims    int
	timeout time.Duration
	b       batcher
}

// NewGeminiEmbedder builds a Gemini embedder: key from GOOGLE_API_KEY (or
// GEMINI_API_KEY), base URL from GOOGLE_GEMINI_BASE_URL, model
// gemini-embedding-001 with 3072 dimensions unless cfg says otherwise. It
// does no network I/O; no error contains the key.
func NewGeminiEmbedder(ctx context.Context, cfg EmbedConfig) (*GeminiEmbedder, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Model == "" {
		cfg.Model = GeminiEmbeddingModel
	}
	if cfg.Dimensions < 0 {
		return nil, &Error{Provider: GeminiName, Kind: KindPermanent, Err: fmt.Errorf("embedding dimensions %d", cfg.Dimensions)}
	}
	if cfg.Dimensions == 0 && cfg.Model == GeminiEmbeddingModel {
		cfg.Dimensions = GeminiEmbeddingDimensions
	}
	client, key, err := newGeminiClient(ctx, cfg.APIKey, cfg.BaseURL, cfg.HTTPClient, " for Gemini embeddings")
	if err != nil {
		return nil, err
	}
	return &GeminiEmbedder{client: client, key: key, model: cfg.Model, dims: cfg.Dimensions,
		timeout: cfg.Timeout, b: cfg.batcher(GeminiName)}, nil
}

// Name implements Embedder.
func (g *GeminiEmbedder) Name() string { return GeminiName }

// Model implements Embedder.
func (g *GeminiEmbedder) Model() string { return g.model }

// Embed implements Embedder.
func (g *GeminiEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return g.b.run(ctx, texts, g.batch)
}

func (g *GeminiEmbedder) batch(ctx context.Context, texts []string) ([][]float32, error) {
	contents := make([]*genai.Content, len(texts))
	for i, t := range texts {
		contents[i] = &genai.Content{Parts: []*genai.Part{{Text: t}}}
	}
	cfg := &genai.EmbedContentConfig{}
	if g.dims > 0 {
		d := int32(min(g.dims, 1<<20))
		cfg.OutputDimensionality = &d
	}
	resp, err := doCall(ctx, GeminiName, g.timeout, func(ctx context.Context) (*genai.EmbedContentResponse, error) {
		return g.client.Models.EmbedContent(ctx, g.model, contents, cfg)
	}, func(err error, info *callInfo) *Error { return classifyGemini(err, info, g.key, false) })
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(resp.Embeddings))
	for i, e := range resp.Embeddings {
		if e != nil {
			out[i] = e.Values
		}
	}
	return out, nil
}
