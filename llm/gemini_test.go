package llm_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/llm/fakellm"
)

func TestGemini(t *testing.T) { runProviderCases(t, "gemini") }

// TestGeminiRequestShape checks what goes over the wire: the system
// instruction, native structured output with responseSchema (not
// responseJsonSchema, which gemini-2.0-flash lacks), generation limits,
// and the key in x-goog-api-key.
func TestGeminiRequestShape(t *testing.T) {
	var body map[string]any
	var path, key string
	f := recordingFake(t, func(r *http.Request, b map[string]any) {
		body, path, key = b, r.URL.Path, r.Header.Get("x-goog-api-key")
	})
	p, err := llm.NewGemini(context.Background(), llm.GeminiConfig{APIKey: testKey, BaseURL: f.srv.URL, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	temp := float32(0.2)
	req := structuredRequest(2)
	req.MaxOutputTokens, req.Temperature = 4096, &temp
	if _, err := p.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if path != "/v1beta/models/gemini-2.0-flash:generateContent" || key != testKey {
		t.Fatalf("path %q key %q", path, key)
	}
	gc, _ := body["generationConfig"].(map[string]any)
	si, _ := body["systemInstruction"].(map[string]any)
	if gc["responseMimeType"] != "application/json" || gc["responseSchema"] == nil || gc["responseJsonSchema"] != nil ||
		gc["maxOutputTokens"] != float64(4096) || gc["temperature"] == nil || si == nil {
		t.Fatalf("body %v", body)
	}
	schema, _ := json.Marshal(gc["responseSchema"])
	if strings.Contains(string(schema), "additionalProperties") || !strings.Contains(string(schema), `"propertyOrdering":["question","answer","question_type"]`) {
		t.Fatalf("schema %s", schema)
	}

	// Plain text: no response format at all.
	req.Schema = nil
	if _, err := p.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	gc, _ = body["generationConfig"].(map[string]any)
	if gc["responseMimeType"] != nil || gc["responseSchema"] != nil {
		t.Fatalf("plain request asks for JSON: %v", gc)
	}
}

func TestGeminiSchema(t *testing.T) {
	s, err := llm.GeminiSchema(llm.BatchQASchema.JSON)
	if err != nil {
		t.Fatal(err)
	}
	item := s.Properties["qa_pairs"].Items
	if s.Type != genai.TypeObject || s.Properties["qa_pairs"].Type != genai.TypeArray || item.Type != genai.TypeObject ||
		item.Properties["chunk_index"].Type != genai.TypeInteger || len(item.Properties["question_type"].Enum) != 4 ||
		strings.Join(item.Required, ",") != "question,answer,question_type,chunk_index" ||
		strings.Join(item.PropertyOrdering, ",") != "question,answer,question_type,chunk_index" {
		b, _ := json.Marshal(s)
		t.Fatalf("schema %s", b)
	}
	n, err := llm.GeminiSchema(map[string]any{"type": []any{"string", "null"}, "maxLength": 5})
	if err != nil || n.Type != genai.TypeString || n.Nullable == nil || !*n.Nullable || *n.MaxLength != 5 {
		t.Fatalf("%+v %v", n, err)
	}
	if _, err := llm.GeminiSchema(map[string]any{"type": "object", "properties": map[string]any{"x": map[string]any{"type": "date"}}}); err == nil ||
		!strings.Contains(err.Error(), "properties.x") {
		t.Fatalf("unsupported type: %v", err)
	}
}

// TestGeminiRetryInfoWins checks that the longer of Retry-After and
// RetryInfo is used.
func TestGeminiRetryDelayBothSources(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(429)
		io.WriteString(w, `{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [
			{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}]}}`)
	}))
	defer srv.Close()
	p, err := llm.NewGemini(context.Background(), llm.GeminiConfig{APIKey: testKey, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Generate(context.Background(), structuredRequest(1))
	if e := wantKind(t, err, llm.KindRateLimited, 429); e.RetryAfter != 17*time.Second {
		t.Fatalf("retry after %v", e.RetryAfter)
	}
}

func TestGeminiBlockedAndMissingCandidates(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"no candidates", `{"usageMetadata": {"promptTokenCount": 3}}`},
		{"prompt blocked", `{"promptFeedback": {"blockReason": "SAFETY"}}`},
		{"safety finish", `{"candidates": [{"content": {"parts": [{"text": "{}"}]}, "finishReason": "SAFETY"}]}`},
		{"thought only", `{"candidates": [{"content": {"parts": [{"text": "hmm", "thought": true}]}, "finishReason": "STOP"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			p, err := llm.NewGemini(context.Background(), llm.GeminiConfig{APIKey: testKey, BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Generate(context.Background(), structuredRequest(1))
			wantKind(t, err, llm.KindBadOutput, 0)
		})
	}
}

func TestGeminiGoogleAPIKeyWins(t *testing.T) {
	f := startFake(t, fakellm.Config{APIKey: "google-key"})
	t.Setenv(llm.EnvGoogleAPIKey, "google-key")
	t.Setenv(llm.EnvGeminiAPIKey, "gemini-key")
	p, err := llm.NewGemini(context.Background(), llm.GeminiConfig{BaseURL: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Generate(context.Background(), structuredRequest(1)); err != nil {
		t.Fatal(err)
	}
}
