package llm

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// EnvProvider names the provider tasks use when they name none.
const EnvProvider = "LLM_PROVIDER"

// DefaultProviderName is the provider when neither the task nor
// LLM_PROVIDER names one.
const DefaultProviderName = GeminiName

// ProviderNames are the names New accepts.
var ProviderNames = []string{GeminiName, OpenAIName, "offline"}

// Options are settings common to every provider.
type Options struct {
	// Timeout bounds each call (default DefaultTimeout); keep it below the
	// task's soft time limit.
	Timeout time.Duration
}

// New builds the provider of a name — "gemini", "openai" or "offline" —
// configured from the environment (see GeminiConfig and OpenAIConfig).
// Names are case-insensitive and trimmed.
func New(ctx context.Context, name string) (Provider, error) { return NewWith(ctx, name, Options{}) }

// NewWith is New with options.
func NewWith(ctx context.Context, name string, opts Options) (Provider, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case GeminiName:
		return NewGemini(ctx, GeminiConfig{Timeout: opts.Timeout})
	case OpenAIName:
		return NewOpenAI(OpenAIConfig{Timeout: opts.Timeout})
	case "offline", OfflineName:
		return Offline{}, nil
	}
	return nil, &Error{Provider: name, Kind: KindPermanent,
		Err: fmt.Errorf("unknown LLM provider %q (%s)", name, strings.Join(ProviderNames, ", "))}
}

// ResolveName returns the provider a task uses: its own argument, else
// $LLM_PROVIDER, else "gemini" — lower-cased and trimmed.
func ResolveName(arg string) string {
	for _, s := range []string{arg, os.Getenv(EnvProvider)} {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			return s
		}
	}
	return DefaultProviderName
}

// IsOpenAIModel reports whether a model name is an OpenAI one (it contains
// gpt, o1, o3 or o4, case-insensitively) — the Python rule: such a model
// sent with provider gemini is replaced by Gemini's default model, and the
// caller warns.
func IsOpenAIModel(model string) bool {
	return containsAny(strings.ToLower(model), "gpt", "o1", "o3", "o4")
}

// Cache keeps one provider per name, so a worker reuses its clients (and
// their connection pools). The zero value builds providers with New; it is
// safe for concurrent use. Failed constructions are not cached: a key set
// later is picked up by the next call.
type Cache struct {
	// NewFunc builds a provider (default New).
	NewFunc func(ctx context.Context, name string) (Provider, error)

	mu sync.Mutex
	m  map[string]Provider
}

// Get returns the cached provider of a name, building it on first use.
func (c *Cache) Get(ctx context.Context, name string) (Provider, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[key]; ok {
		return p, nil
	}
	newFunc := c.NewFunc
	if newFunc == nil {
		newFunc = New
	}
	p, err := newFunc(ctx, key)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]Provider{}
	}
	c.m[key] = p
	return p, nil
}

// Reset forgets every cached provider.
func (c *Cache) Reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
