// Package llm talks to the language models that write Q&A pairs: Gemini
// (google.golang.org/genai), OpenAI and OpenAI-compatible servers
// (github.com/sashabaranov/go-openai), and an offline extractive provider
// for demos and tests. Errors are classified by what the caller should do
// about them (retry, wait, give up).
package llm

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Request is one generation call.
type Request struct {
	Model string
	// System is the system instruction; Prompt the user content.
	System string
	Prompt string
	// Schema asks for structured output; nil asks for plain text.
	Schema *Schema
	// MaxOutputTokens bounds the answer (0: the provider's default).
	MaxOutputTokens int
	Temperature     *float32

	// Source, Pairs and Lang describe the Q&A job for the offline
	// provider, which writes pairs from the source text instead of reading
	// the prompt. Network providers ignore them.
	Source []SourceChunk
	Pairs  int
	Lang   string
}

// SourceChunk is a text the pairs are drawn from (one per chunk in a
// multi-chunk request), with the number of pairs wanted from it.
type SourceChunk struct {
	ID    string
	Text  string
	Pairs int
}

// Schema is the JSON schema of the object a structured call must return.
// It uses the subset of JSON Schema that both Gemini's response schema and
// OpenAI's strict json_schema accept: object, array, string, integer,
// number, boolean, enum, required, properties, items, description.
type Schema struct {
	Name string
	JSON map[string]any
}

// Usage is what one call cost.
type Usage struct {
	Provider     string
	Model        string
	InputTokens  int
	OutputTokens int
	Latency      time.Duration
	// Structured is false when the answer came from a plain-text call.
	Structured bool
}

// Response is a model's answer.
type Response struct {
	Text  string
	Usage Usage
}

// Provider generates text.
type Provider interface {
	Name() string
	DefaultModel() string
	Generate(ctx context.Context, req Request) (*Response, error)
}

// Kind says what to do about a failed call.
type Kind int

// Error kinds.
const (
	// KindTransient: server errors, timeouts, broken connections: retry.
	KindTransient Kind = iota
	// KindRateLimited: 429 / RESOURCE_EXHAUSTED: retry no earlier than
	// RetryAfter (when the provider said).
	KindRateLimited
	// KindBadOutput: an answer that is empty or not the JSON asked for:
	// retry (the model may do better).
	KindBadOutput
	// KindUnsupported: the server rejected structured output: ask again
	// in plain text and extract the JSON.
	KindUnsupported
	// KindPermanent: bad key, unknown model, invalid request: retrying
	// cannot help.
	KindPermanent
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindRateLimited:
		return "rate limited"
	case KindBadOutput:
		return "bad output"
	case KindUnsupported:
		return "structured output unsupported"
	case KindPermanent:
		return "permanent"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a classified provider error.
type Error struct {
	Provider string
	Kind     Kind
	// Status is the HTTP status, when there was one.
	Status int
	// RetryAfter is the wait the provider asked for (429 Retry-After or
	// Gemini's RetryInfo), 0 if it said nothing.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	s := e.Provider + ": " + e.Kind.String()
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf classifies any error: a *Error's kind, context cancellation and
// deadlines as transient, everything else transient too (when in doubt,
// retry; the retry budget bounds it).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransient
}

// RetryAfter returns the wait a provider asked for, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
