package llm_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/qagen/qagen/llm"
)

func TestOpenAI(t *testing.T) { runProviderCases(t, "openai") }

// TestOpenAIRequestShape checks the strict json_schema response format,
// the system message, max_tokens and the bearer key.
func TestOpenAIRequestShape(t *testing.T) {
	var body map[string]any
	var path, auth string
	f := recordingFake(t, func(r *http.Request, b map[string]any) {
		body, path, auth = b, r.URL.Path, r.Header.Get("Authorization")
	})
	p, err := llm.NewOpenAI(llm.OpenAIConfig{APIKey: testKey, BaseURL: f.srv.URL + "/v1/"})
	if err != nil {
		t.Fatal(err)
	}
	temp := float32(0)
	req := structuredRequest(2)
	req.MaxOutputTokens, req.Temperature = 4096, &temp
	if _, err := p.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if path != "/v1/chat/completions" || auth != "Bearer "+testKey || body["model"] != llm.OpenAIDefaultModel {
		t.Fatalf("path %q auth %q body %v", path, auth, body)
	}
	rf, _ := body["response_format"].(map[string]any)
	js, _ := rf["json_schema"].(map[string]any)
	msgs, _ := body["messages"].([]any)
	if rf["type"] != "json_schema" || js["strict"] != true || js["name"] != "qa_pairs" || len(msgs) != 2 ||
		body["max_tokens"] != float64(4096) || body["temperature"] == nil {
		t.Fatalf("body %v", body)
	}
	if msgs[0].(map[string]any)["role"] != "system" {
		t.Fatalf("messages %v", msgs)
	}

	// A reasoning model: max_completion_tokens, no temperature.
	req.Model = "o3-mini"
	if _, err := p.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if body["max_completion_tokens"] != float64(4096) || body["max_tokens"] != nil || body["temperature"] != nil {
		t.Fatalf("reasoning body %v", body)
	}

	req.Schema, req.Model = nil, ""
	if _, err := p.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if body["response_format"] != nil {
		t.Fatalf("plain request asks for a format: %v", body["response_format"])
	}
}

func TestStrictSchema(t *testing.T) {
	in := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"b": map[string]any{"type": "string"},
			"a": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
				"type": map[string]any{"type": "string"}, "x": map[string]any{"type": "integer"}}}},
		},
		"required": []any{"b"},
	}
	out := StrictJSON(t, llm.StrictSchema(in))
	want := `{"additionalProperties":false,"properties":{"a":{"items":{"additionalProperties":false,"properties":{"type":{"type":"string"},"x":{"type":"integer"}},"required":["type","x"],"type":"object"},"type":"array"},"b":{"type":"string"}},"required":["b","a"],"type":"object"}`
	if out != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	if _, ok := in["additionalProperties"]; ok {
		t.Fatal("the input was modified")
	}
	// QASchema is already strict: unchanged.
	if a, b := StrictJSON(t, llm.StrictSchema(llm.QASchema.JSON)), StrictJSON(t, llm.QASchema.JSON); a != b {
		t.Fatalf("QASchema changed:\n%s\n%s", a, b)
	}
}

func StrictJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenAIErrorShapes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		kind   llm.Kind
		wait   string
	}{
		{"429 retry-after-ms", 429, map[string]string{"Retry-After-Ms": "1500"}, `{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}`, llm.KindRateLimited, "1.5s"},
		{"429 http date", 429, map[string]string{"Retry-After": "Mon, 01 Jan 2125 00:00:00 GMT"}, `{"error": {"message": "x", "type": "requests"}}`, llm.KindRateLimited, "long"},
		{"503 non-JSON body", 503, nil, `<html>bad gateway</html>`, llm.KindTransient, ""},
		{"404 model", 404, nil, `{"error": {"message": "The model does not exist", "type": "invalid_request_error", "code": "model_not_found"}}`, llm.KindPermanent, ""},
		{"400 other", 400, nil, `{"error": {"message": "messages too long", "type": "invalid_request_error"}}`, llm.KindPermanent, ""},
		{"400 vllm guided decoding", 400, nil, `{"object": "error", "message": "guided_json is not supported", "type": "BadRequestError", "code": 400}`, llm.KindUnsupported, ""},
		{"no choices", 200, nil, `{"id": "x", "choices": []}`, llm.KindBadOutput, ""},
		{"refusal", 200, nil, `{"choices": [{"message": {"role": "assistant", "refusal": "I can't"}, "finish_reason": "stop"}]}`, llm.KindBadOutput, ""},
		{"content filter", 200, nil, `{"choices": [{"message": {"role": "assistant", "content": "{}"}, "finish_reason": "content_filter"}]}`, llm.KindBadOutput, ""},
		{"undecodable 200", 200, nil, `{"choices": [`, llm.KindTransient, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			p, err := llm.NewOpenAI(llm.OpenAIConfig{APIKey: testKey, BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Generate(context.Background(), structuredRequest(1))
			e := wantKind(t, err, tc.kind, 0)
			switch tc.wait {
			case "long":
				if e.RetryAfter < 24*365*3600e9 {
					t.Fatalf("retry after %v", e.RetryAfter)
				}
			case "":
			default:
				if e.RetryAfter.String() != tc.wait {
					t.Fatalf("retry after %v, want %s", e.RetryAfter, tc.wait)
				}
			}
		})
	}
}

// A request go-openai refuses locally (a reasoning model with max_tokens
// would be one; here an endpoint/model mismatch) never reaches the server
// and is permanent.
func TestOpenAILocalRefusalIsPermanent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request reached the server")
	}))
	defer srv.Close()
	p, err := llm.NewOpenAI(llm.OpenAIConfig{APIKey: testKey, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	req := structuredRequest(1)
	req.Model = "text-davinci-003"
	_, err = p.Generate(context.Background(), req)
	wantKind(t, err, llm.KindPermanent, 0)
}
