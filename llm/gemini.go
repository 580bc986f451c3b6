package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genai"
)

// Gemini provider defaults and environment variables.
const (
	GeminiName         = "gemini"
	GeminiDefaultModel = "gemini-2.0-flash"
	// EnvGoogleAPIKey holds the Gemini API key; EnvGeminiAPIKey is
	// accepted too (GOOGLE_API_KEY wins when both are set, as in the SDK).
	EnvGoogleAPIKey = "GOOGLE_API_KEY"
	EnvGeminiAPIKey = "GEMINI_API_KEY"
	// EnvGeminiBaseURL points the client at a gateway or a fake server.
	EnvGeminiBaseURL = "GOOGLE_GEMINI_BASE_URL"
)

// ErrNoAPIKey means a provider was built without an API key.
var ErrNoAPIKey = errors.New("no API key")

// GeminiConfig configures NewGemini. Empty fields come from the
// environment or defaults.
type GeminiConfig struct {
	// APIKey: "" reads GOOGLE_API_KEY, then GEMINI_API_KEY.
	APIKey string
	// BaseURL: "" reads GOOGLE_GEMINI_BASE_URL, else Google's endpoint.
	BaseURL string
	// HTTPClient is copied (never modified) and its transport wrapped to
	// observe Retry-After headers; nil uses a default client.
	HTTPClient *http.Client
	// Timeout bounds each Generate call (default DefaultTimeout).
	Timeout time.Duration
	// Model is the default model (default GeminiDefaultModel).
	Model string
}

// Gemini generates with Google's Gemini API through google.golang.org/genai.
// It is safe for concurrent use.
type Gemini struct {
	client  *genai.Client
	key     string
	model   string
	timeout time.Duration
}

// NewGemini builds a Gemini provider. It does no network I/O. A missing
// key is a KindPermanent *Error wrapping ErrNoAPIKey; no error ever
// contains the key.
func NewGemini(ctx context.Context, cfg GeminiConfig) (*Gemini, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Model == "" {
		cfg.Model = GeminiDefaultModel
	}
	client, key, err := newGeminiClient(ctx, cfg.APIKey, cfg.BaseURL, cfg.HTTPClient, "")
	if err != nil {
		return nil, err
	}
	return &Gemini{client: client, key: key, model: cfg.Model, timeout: cfg.Timeout}, nil
}

// newGeminiClient builds a genai client for the Gemini API, with the key
// from GOOGLE_API_KEY (or GEMINI_API_KEY) and the base URL from
// GOOGLE_GEMINI_BASE_URL when not given; purpose ends the missing-key
// message. It returns the key in use, for redaction.
func newGeminiClient(ctx context.Context, key, baseURL string, hc *http.Client, purpose string) (*genai.Client, string, error) {
	if key == "" {
		key = envFirst(EnvGoogleAPIKey, EnvGeminiAPIKey)
	}
	if key == "" {
		return nil, "", &Error{Provider: GeminiName, Kind: KindPermanent,
			Err: fmt.Errorf("%w: set %s (or %s)%s", ErrNoAPIKey, EnvGoogleAPIKey, EnvGeminiAPIKey, purpose)}
	}
	if baseURL == "" {
		baseURL = envFirst(EnvGeminiBaseURL)
	}
	client, err := genai.NewClient(ctx, &genai.ClientConfig{
		APIKey:      key,
		Backend:     genai.BackendGeminiAPI,
		HTTPClient:  recordingClient(hc),
		HTTPOptions: genai.HTTPOptions{BaseURL: baseURL},
	})
	if err != nil {
		// The SDK prints its whole config, key included, in some errors.
		return nil, "", &Error{Provider: GeminiName, Kind: KindPermanent, Err: errors.New(redact(err.Error(), key))}
	}
	return client, key, nil
}

// Name implements Provider.
func (g *Gemini) Name() string { return GeminiName }

// DefaultModel implements Provider.
func (g *Gemini) DefaultModel() string { return g.model }

// Generate implements Provider. With req.Schema it asks for JSON
// (responseMimeType application/json and responseSchema); without, for
// plain text. The answer's text is returned verbatim — a structured answer
// that is not valid JSON is the caller's to reject, with its usage counted.
func (g *Gemini) Generate(ctx context.Context, req Request) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	model := req.Model
	if model == "" {
		model = g.model
	}
	structured := req.Schema != nil
	cfg := &genai.GenerateContentConfig{Temperature: req.Temperature}
	if req.MaxOutputTokens > 0 {
		cfg.MaxOutputTokens = int32(min(req.MaxOutputTokens, 1<<30))
	}
	if req.System != "" {
		cfg.SystemInstruction = &genai.Content{Parts: []*genai.Part{{Text: req.System}}}
	}
	if structured {
		schema, err := GeminiSchema(req.Schema.JSON)
		if err != nil {
			return nil, &Error{Provider: GeminiName, Kind: KindPermanent, Err: err}
		}
		cfg.ResponseMIMEType = "application/json"
		cfg.ResponseSchema = schema
	}
	contents := []*genai.Content{{Role: genai.RoleUser, Parts: []*genai.Part{{Text: req.Prompt}}}}

	start := time.Now()
	resp, err := doCall(ctx, GeminiName, g.timeout, func(ctx context.Context) (*genai.GenerateContentResponse, error) {
		return g.client.Models.GenerateContent(ctx, model, contents, cfg)
	}, func(err error, info *callInfo) *Error { return classifyGemini(err, info, g.key, structured) })
	latency := time.Since(start)
	if err != nil {
		return nil, err
	}
	usage := Usage{Provider: GeminiName, Model: model, Latency: latency, Structured: structured}
	if m := resp.UsageMetadata; m != nil {
		usage.InputTokens = int(m.PromptTokenCount)
		usage.OutputTokens = int(m.CandidatesTokenCount + m.ThoughtsTokenCount)
	}
	bad := func(format string, args ...any) error { return badOutput(GeminiName, format, args...) }
	if len(resp.Candidates) == 0 || resp.Candidates[0] == nil {
		if pf := resp.PromptFeedback; pf != nil && pf.BlockReason != "" {
			return nil, bad("the prompt was blocked (%s)", pf.BlockReason)
		}
		return nil, bad("the answer has no candidates")
	}
	cand := resp.Candidates[0]
	var text strings.Builder
	if cand.Content != nil {
		for _, p := range cand.Content.Parts {
			if p != nil && !p.Thought {
				text.WriteString(p.Text)
			}
		}
	}
	switch cand.FinishReason {
	case "", genai.FinishReasonStop, genai.FinishReasonUnspecified, genai.FinishReasonContinuation:
	case genai.FinishReasonMaxTokens:
		return nil, bad("the answer was cut off at the output token limit (finish reason %s)", cand.FinishReason)
	default:
		return nil, bad("the answer was blocked (finish reason %s)", cand.FinishReason)
	}
	if strings.TrimSpace(text.String()) == "" {
		return nil, bad("the answer is empty")
	}
	return &Response{Text: text.String(), Usage: usage}, nil
}

// classifyGemini turns a genai error into an *Error; key is redacted from
// its text.
func classifyGemini(err error, info *callInfo, key string, structured bool) *Error {
	e := &Error{Provider: GeminiName, Kind: KindTransient, Err: redactErr(err, key)}
	status, headerWait := info.get()
	var apiErr genai.APIError
	var apiErrPtr *genai.APIError
	if errors.As(err, &apiErrPtr) && apiErrPtr != nil {
		apiErr = *apiErrPtr
	} else if !errors.As(err, &apiErr) {
		switch {
		case status >= 400:
			e.Status = status
			e.Kind = kindOfStatus(status, err.Error(), structured)
			e.RetryAfter = headerWait
		case isNetworkError(err) || status != 0:
			// Broken connections, or a 2xx answer that did not decode.
		default:
			// The SDK refused the request before sending it.
			e.Kind = KindPermanent
		}
		return e
	}
	code := apiErr.Code
	if code == 0 {
		code = status
	}
	e.Status = code
	e.Kind = kindOfStatus(code, apiErr.Message, structured)
	if strings.EqualFold(apiErr.Status, "RESOURCE_EXHAUSTED") {
		e.Kind = KindRateLimited
	}
	if e.Kind == KindRateLimited {
		e.RetryAfter = max(headerWait, retryInfoDelay(apiErr.Details))
	}
	return e
}

// retryInfoDelay reads google.rpc.RetryInfo's retryDelay ("17s", "0.5s",
// or {"seconds": 17, "nanos": 0}) from a Google API error's details.
func retryInfoDelay(details []map[string]any) time.Duration {
	for _, d := range details {
		t, _ := d["@type"].(string)
		if !strings.HasSuffix(t, "google.rpc.RetryInfo") {
			continue
		}
		switch v := d["retryDelay"].(type) {
		case string:
			if dur, err := time.ParseDuration(strings.TrimSpace(v)); err == nil && dur > 0 {
				return dur
			}
			if f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), "s"), 64); err == nil && f > 0 {
				return time.Duration(f * float64(time.Second))
			}
		case map[string]any:
			secs, _ := number(v["seconds"])
			nanos, _ := number(v["nanos"])
			if dur := time.Duration(secs*float64(time.Second) + nanos); dur > 0 {
				return dur
			}
		}
	}
	return 0
}

// GeminiSchema converts the JSON-schema subset of Schema.JSON (type,
// properties, required, items, enum, description, format, nullable,
// minimum/maximum, minItems/maxItems, minLength/maxLength, pattern, title,
// anyOf, propertyOrdering; a ["T", "null"] type becomes nullable) to a
// Gemini response schema. additionalProperties and other keywords Gemini's
// responseSchema lacks are dropped. Object properties are ordered as the
// required list names them, then alphabetically, so the model writes
// "question" before "answer".
func GeminiSchema(m map[string]any) (*genai.Schema, error) {
	return geminiSchema(m, "")
}

func geminiSchema(m map[string]any, path string) (*genai.Schema, error) {
	if m == nil {
		return nil, fmt.Errorf("schema%s: empty", path)
	}
	s := &genai.Schema{}
	var types []string
	switch t := m["type"].(type) {
	case nil:
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			if xs, ok := x.(string); ok {
				types = append(types, xs)
			}
		}
	case []string:
		types = t
	default:
		return nil, fmt.Errorf("schema%s: type is %T", path, t)
	}
	for _, t := range types {
		switch strings.ToLower(t) {
		case "null":
			s.Nullable = genai.Ptr(true)
			continue
		case "object":
			s.Type = genai.TypeObject
		case "array":
			s.Type = genai.TypeArray
		case "string":
			s.Type = genai.TypeString
		case "integer":
			s.Type = genai.TypeInteger
		case "number":
			s.Type = genai.TypeNumber
		case "boolean":
			s.Type = genai.TypeBoolean
		default:
			return nil, fmt.Errorf("schema%s: unsupported type %q", path, t)
		}
	}
	s.Description, _ = m["description"].(string)
	s.Format, _ = m["format"].(string)
	s.Title, _ = m["title"].(string)
	s.Pattern, _ = m["pattern"].(string)
	if v, ok := m["nullable"].(bool); ok && v {
		s.Nullable = genai.Ptr(true)
	}
	s.Enum = stringList(m["enum"])
	if len(s.Enum) > 0 && s.Type == "" {
		s.Type = genai.TypeString
	}
	for key, dst := range map[string]**float64{"minimum": &s.Minimum, "maximum": &s.Maximum} {
		if f, ok := number(m[key]); ok {
			*dst = genai.Ptr(f)
		}
	}
	for key, dst := range map[string]**int64{"minItems": &s.MinItems, "maxItems": &s.MaxItems, "minLength": &s.MinLength, "maxLength": &s.MaxLength} {
		if f, ok := number(m[key]); ok {
			*dst = genai.Ptr(int64(f))
		}
	}
	if props, ok := m["properties"].(map[string]any); ok {
		s.Properties = make(map[string]*genai.Schema, len(props))
		for name, p := range props {
			pm, ok := p.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("schema%s.properties.%s: not an object", path, name)
			}
			ps, err := geminiSchema(pm, path+".properties."+name)
			if err != nil {
				return nil, err
			}
			s.Properties[name] = ps
		}
		if s.Type == "" {
			s.Type = genai.TypeObject
		}
	}
	s.Required = stringList(m["required"])
	if order := stringList(m["propertyOrdering"]); len(order) > 0 {
		s.PropertyOrdering = order
	} else if len(s.Properties) > 1 {
		s.PropertyOrdering = propertyOrder(s.Required, s.Properties)
	}
	if items, ok := m["items"].(map[string]any); ok {
		is, err := geminiSchema(items, path+".items")
		if err != nil {
			return nil, err
		}
		s.Items = is
		if s.Type == "" {
			s.Type = genai.TypeArray
		}
	}
	if anyOf, ok := m["anyOf"].([]any); ok {
		for i, a := range anyOf {
			am, ok := a.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("schema%s.anyOf[%d]: not an object", path, i)
			}
			as, err := geminiSchema(am, fmt.Sprintf("%s.anyOf[%d]", path, i))
			if err != nil {
				return nil, err
			}
			s.AnyOf = append(s.AnyOf, as)
		}
	}
	return s, nil
}

// propertyOrder lists the properties the required list names, in its
// order, then the others alphabetically.
func propertyOrder[V any](required []string, props map[string]V) []string {
	out := make([]string, 0, len(props))
	seen := map[string]bool{}
	for _, r := range required {
		if _, ok := props[r]; ok && !seen[r] {
			out = append(out, r)
			seen[r] = true
		}
	}
	var rest []string
	for name := range props {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func stringList(v any) []string {
	switch l := v.(type) {
	case []string:
		return append([]string(nil), l...)
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			switch xs := x.(type) {
			case string:
				out = append(out, xs)
			default:
				out = append(out, fmt.Sprint(xs))
			}
		}
		return out
	}
	return nil
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
