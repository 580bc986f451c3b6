package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// OpenAI provider defaults and environment variables.
const (
	OpenAIName         = "openai"
	OpenAIDefaultModel = "gpt-4o-mini"
	EnvOpenAIAPIKey    = "OPENAI_API_KEY"
	// EnvOpenAIBaseURL points the client at an OpenAI-compatible server
	// (vLLM, Ollama, LM Studio, a gateway, the fake server), e.g.
	// http://localhost:8000/v1.
	EnvOpenAIBaseURL = "OPENAI_BASE_URL"
)

// OpenAIConfig configures NewOpenAI. Empty fields come from the
// environment or defaults.
type OpenAIConfig struct {
	// APIKey: "" reads OPENAI_API_KEY. It may stay empty only with a
	// BaseURL other than api.openai.com (local servers often need none).
	APIKey string
	// BaseURL: "" reads OPENAI_BASE_URL, else https://api.openai.com/v1.
	BaseURL string
	// HTTPClient is copied (never modified) and its transport wrapped to
	// observe Retry-After headers; nil uses a default client.
	HTTPClient *http.Client
	// Timeout bounds each Generate call (default DefaultTimeout).
	Timeout time.Duration
	// Model is the default model (default OpenAIDefaultModel).
	Model string
}

// OpenAI generates with the OpenAI chat completions API, or any server
// that speaks it, through github.com/sashabaranov/go-openai. It is safe for
// concurrent use.
type OpenAI struct {
	client  *openai.Client
	key     string
	model   string
	timeout time.Duration
}

// NewOpenAI builds an OpenAI provider. It does no network I/O.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Model == "" {
		cfg.Model = OpenAIDefaultModel
	}
	client, key, err := newOpenAIClient(cfg.APIKey, cfg.BaseURL, cfg.HTTPClient, "")
	if err != nil {
		return nil, err
	}
	return &OpenAI{client: client, key: key, model: cfg.Model, timeout: cfg.Timeout}, nil
}

// newOpenAIClient builds a go-openai client, with the key from
// OPENAI_API_KEY and the base URL from OPENAI_BASE_URL when not given. A
// key is required only by OpenAI's own host; purpose ends the missing-key
// message. It returns the key in use, for redaction.
func newOpenAIClient(key, baseURL string, hc *http.Client, purpose string) (*openai.Client, string, error) {
	if key == "" {
		key = envFirst(EnvOpenAIAPIKey)
	}
	if baseURL == "" {
		baseURL = envFirst(EnvOpenAIBaseURL)
	}
	if key == "" && isOpenAIHost(baseURL) {
		return nil, "", &Error{Provider: OpenAIName, Kind: KindPermanent,
			Err: fmt.Errorf("%w: set %s (or %s for a server that needs none)%s", ErrNoAPIKey, EnvOpenAIAPIKey, EnvOpenAIBaseURL, purpose)}
	}
	oc := openai.DefaultConfig(key)
	if baseURL != "" {
		oc.BaseURL = strings.TrimRight(baseURL, "/")
	}
	oc.HTTPClient = recordingClient(hc)
	return openai.NewClientWithConfig(oc), key, nil
}

func isOpenAIHost(base string) bool {
	if base == "" {
		return true
	}
	u, err := url.Parse(base)
	return err == nil && strings.EqualFold(u.Hostname(), "api.openai.com")
}

// Name implements Provider.
func (o *OpenAI) Name() string { return OpenAIName }

// DefaultModel implements Provider.
func (o *OpenAI) DefaultModel() string { return o.model }

// isReasoningModel: o-series and gpt-5 models take max_completion_tokens
// and no temperature.
func isReasoningModel(model string) bool {
	m := strings.ToLower(model)
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// Generate implements Provider. With req.Schema it asks for a strict
// json_schema response format; without, for plain text. The answer's text
// is returned verbatim — a structured answer that is not valid JSON is the
// caller's to reject, with its usage counted.
func (o *OpenAI) Generate(ctx context.Context, req Request) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	model := req.Model
	if model == "" {
		model = o.model
	}
	structured := req.Schema != nil
	var msgs []openai.ChatCompletionMessage
	if req.System != "" {
		msgs = append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleSystem, Content: req.System})
	}
	msgs = append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: req.Prompt})
	creq := openai.ChatCompletionRequest{Model: model, Messages: msgs}
	reasoning := isReasoningModel(model)
	if req.MaxOutputTokens > 0 {
		// max_tokens for the models and servers that only know it;
		// reasoning models refuse it.
		if reasoning {
			creq.MaxCompletionTokens = req.MaxOutputTokens
		} else {
			//lint:ignore SA1019 max_tokens is what OpenAI-compatible servers (Ollama, older vLLM) understand.
			creq.MaxTokens = req.MaxOutputTokens
		}
	}
	if req.Temperature != nil && !reasoning {
		creq.Temperature = *req.Temperature
		if creq.Temperature == 0 {
			// The field is omitempty: 0 would mean "default" (1).
			creq.Temperature = math.SmallestNonzeroFloat32
		}
	}
	if structured {
		schema, err := json.Marshal(StrictSchema(req.Schema.JSON))
		if err != nil {
			return nil, &Error{Provider: OpenAIName, Kind: KindPermanent, Err: fmt.Errorf("schema: %w", err)}
		}
		creq.ResponseFormat = &openai.ChatCompletionResponseFormat{
			Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{
				Name: schemaName(req.Schema.Name), Schema: json.RawMessage(schema), Strict: true,
			},
		}
	}

	start := time.Now()
	resp, err := doCall(ctx, OpenAIName, o.timeout, func(ctx context.Context) (openai.ChatCompletionResponse, error) {
		return o.client.CreateChatCompletion(ctx, creq)
	}, func(err error, info *callInfo) *Error { return classifyOpenAI(err, info, o.key, structured) })
	latency := time.Since(start)
	if err != nil {
		return nil, err
	}
	usage := Usage{Provider: OpenAIName, Model: model, Latency: latency, Structured: structured,
		InputTokens: resp.Usage.PromptTokens, OutputTokens: resp.Usage.CompletionTokens}
	bad := func(format string, args ...any) error { return badOutput(OpenAIName, format, args...) }
	if len(resp.Choices) == 0 {
		return nil, bad("the answer has no choices")
	}
	ch := resp.Choices[0]
	switch ch.FinishReason {
	case openai.FinishReasonLength:
		return nil, bad("the answer was cut off at the output token limit (finish reason length)")
	case openai.FinishReasonContentFilter:
		return nil, bad("the answer was blocked (finish reason content_filter)")
	}
	if ch.Message.Refusal != "" {
		return nil, bad("the model refused: %s", ch.Message.Refusal)
	}
	text := ch.Message.Content
	if text == "" {
		for _, p := range ch.Message.MultiContent {
			text += p.Text
		}
	}
	if strings.TrimSpace(text) == "" {
		return nil, bad("the answer is empty")
	}
	return &Response{Text: text, Usage: usage}, nil
}

// classifyOpenAI turns a go-openai error into an *Error; key is redacted
// from its text.
func classifyOpenAI(err error, info *callInfo, key string, structured bool) *Error {
	e := &Error{Provider: OpenAIName, Kind: KindTransient, Err: redactErr(err, key)}
	status, headerWait := info.get()
	var msg string
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		status = max(status, apiErr.HTTPStatusCode)
		msg = apiErr.Message + " " + apiErr.Type + " " + fmt.Sprint(apiErr.Code)
		if apiErr.Param != nil {
			msg += " " + *apiErr.Param
		}
	case errors.As(err, &reqErr):
		status = max(status, reqErr.HTTPStatusCode)
		msg = string(reqErr.Body)
	}
	switch {
	case status >= 400:
		e.Status = status
		e.Kind = kindOfStatus(status, msg, structured)
		if e.Kind == KindRateLimited {
			e.RetryAfter = headerWait
			if e.RetryAfter == 0 {
				e.RetryAfter = retryAfterFromMessage(msg)
			}
		}
	case isNetworkError(err) || status != 0:
		// Broken connections, or a 2xx answer that did not decode.
	default:
		// go-openai refused the request before sending it (unknown
		// endpoint for the model, invalid reasoning parameters).
		e.Kind = KindPermanent
	}
	return e
}

var schemaNameRE = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// schemaName makes a json_schema name OpenAI accepts: ^[a-zA-Z0-9_-]{1,64}$.
func schemaName(name string) string {
	name = schemaNameRE.ReplaceAllString(name, "_")
	if len(name) > 64 {
		name = name[:64]
	}
	if name == "" {
		name = "response"
	}
	return name
}

// StrictSchema returns a copy of a JSON schema that OpenAI's strict mode
// accepts: every object gets additionalProperties false and lists all its
// properties as required (in the order required gave, then alphabetical).
// The input is not modified.
func StrictSchema(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	props, hasProps := m["properties"].(map[string]any)
	if hasProps {
		np := make(map[string]any, len(props))
		for name, p := range props {
			np[name] = strictSub(p)
		}
		out["properties"] = np
	}
	if items, ok := m["items"].(map[string]any); ok {
		out["items"] = StrictSchema(items)
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if l, ok := m[k].([]any); ok {
			nl := make([]any, len(l))
			for i, e := range l {
				nl[i] = strictSub(e)
			}
			out[k] = nl
		}
	}
	for _, k := range []string{"$defs", "definitions"} {
		if defs, ok := m[k].(map[string]any); ok {
			nd := make(map[string]any, len(defs))
			for name, d := range defs {
				nd[name] = strictSub(d)
			}
			out[k] = nd
		}
	}
	if t, _ := m["type"].(string); t == "object" || hasProps {
		out["additionalProperties"] = false
		all := []any{}
		for _, name := range propertyOrder(stringList(m["required"]), props) {
			all = append(all, name)
		}
		out["required"] = all
	}
	return out
}

func strictSub(v any) any {
	if m, ok := v.(map[string]any); ok {
		return StrictSchema(m)
	}
	return v
}
