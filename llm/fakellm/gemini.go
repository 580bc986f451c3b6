package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// geminiContent is a Content of the Gemini REST API.
type geminiContent struct {
	Role  string `json:"role"`
	Parts []struct {
		Text string `json:"text"`
	} `json:"parts"`
}

func (c *geminiContent) text() string {
	if c == nil {
		return ""
	}
	var b []string
	for _, p := range c.Parts {
		if p.Text != "" {
			b = append(b, p.Text)
		}
	}
	return strings.Join(b, "\n")
}

// geminiRequest is a generateContent body; the REST API accepts camelCase
// and snake_case field names, and so does the fake.
type geminiRequest struct {
	Contents               []geminiContent `json:"contents"`
	SystemInstruction      *geminiContent  `json:"systemInstruction"`
	SystemInstructionSnake *geminiContent  `json:"system_instruction"`
	GenerationConfig       map[string]any  `json:"generationConfig"`
	GenerationConfigSnake  map[string]any  `json:"generation_config"`
}

func lookup(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			return v
		}
	}
	return nil
}

// handleGemini serves POST /{version}/models/{model}:generateContent (and
// hands the embedding methods to handleGeminiEmbed).
func (s *Server) handleGemini(w http.ResponseWriter, r *http.Request) {
	d := geminiDialect{}
	model, action, _ := strings.Cut(r.PathValue("model"), ":")
	switch action {
	case "batchEmbedContents", "embedContent":
		s.handleGeminiEmbed(w, r, model, action == "batchEmbedContents")
		return
	}
	s.countRequest(d.name())
	if action != "generateContent" {
		s.countError("not_found")
		d.fail(w, failure{kind: failNotFound, msg: fmt.Sprintf("method %q is not implemented by fake-llm (only generateContent, batchEmbedContents, embedContent)", action)}, "")
		return
	}
	var req geminiRequest
	if err := readJSON(r, &req); err != nil {
		s.badRequest(w, d, "Invalid JSON payload received: "+err.Error())
		return
	}
	c := &call{model: model}
	var prompt []string
	for i := range req.Contents {
		if role := req.Contents[i].Role; role == "" || role == "user" {
			prompt = append(prompt, req.Contents[i].text())
		}
	}
	c.prompt = strings.Join(prompt, "\n")
	si := req.SystemInstruction
	if si == nil {
		si = req.SystemInstructionSnake
	}
	c.system = si.text()
	gc := req.GenerationConfig
	if gc == nil {
		gc = req.GenerationConfigSnake
	}
	if gc != nil {
		mime, _ := lookup(gc, "responseMimeType", "response_mime_type").(string)
		c.schema = lookup(gc, "responseSchema", "response_schema", "responseJsonSchema", "response_json_schema")
		c.structured = strings.EqualFold(mime, "application/json") || c.schema != nil
		if n, ok := lookup(gc, "maxOutputTokens", "max_output_tokens").(json.Number); ok {
			if v, err := n.Int64(); err == nil && v > 0 {
				c.maxTokens = int(min(v, 1<<30))
			}
		}
	}
	if len(req.Contents) == 0 {
		s.badRequest(w, d, "* GenerateContentRequest.contents: contents is not specified")
		return
	}
	s.serve(w, r, d, c)
}

type geminiDialect struct{}

func (geminiDialect) name() string { return "gemini" }

// key reads the x-goog-api-key header, else the key query parameter.
func (geminiDialect) key(r *http.Request) string {
	if key := r.Header.Get("x-goog-api-key"); key != "" {
		return key
	}
	return r.URL.Query().Get("key")
}

func (geminiDialect) fail(w http.ResponseWriter, f failure, retryIn string) {
	status, name, msg := http.StatusInternalServerError, "INTERNAL", f.msg
	var details []any
	switch f.kind {
	case failBadRequest:
		status, name = http.StatusBadRequest, "INVALID_ARGUMENT"
	case failUnauthorized:
		status, name = http.StatusUnauthorized, "UNAUTHENTICATED"
	case failNotFound:
		status, name = http.StatusNotFound, "NOT_FOUND"
	case failRateLimited:
		status, name = http.StatusTooManyRequests, "RESOURCE_EXHAUSTED"
		msg = "Resource has been exhausted (e.g. check quota): " + f.msg
		details = append(details, map[string]any{
			"@type": "type.googleapis.com/google.rpc.QuotaFailure",
			"violations": []any{map[string]any{
				"quotaMetric": "generativelanguage.googleapis.com/generate_content_" + f.limit,
				"quotaId":     "GenerateContentPerMinutePerProjectPerModel",
			}},
		})
		if retryIn != "header" {
			details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": seconds(f.wait)})
		}
		if retryIn != "body" {
			retryHeader(w, f.wait)
		}
	case failServer:
		msg = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting (" + f.msg + ")"
	case failTimeout:
		status, name = http.StatusGatewayTimeout, "DEADLINE_EXCEEDED"
	case failSchema:
		status, name = http.StatusBadRequest, "INVALID_ARGUMENT"
		msg = "* GenerateContentRequest.generation_config.response_schema: structured output (response_schema with response_mime_type application/json) is not supported by this model (fake-llm injected)"
	case failClosed:
		status, name = http.StatusServiceUnavailable, "UNAVAILABLE"
	}
	body := map[string]any{"code": status, "message": msg, "status": name}
	if details != nil {
		body["details"] = details
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func (geminiDialect) ok(w http.ResponseWriter, c *call, a answer) {
	finish := "STOP"
	if a.truncated {
		finish = "MAX_TOKENS"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"candidates": []any{map[string]any{
			"content":      map[string]any{"role": "model", "parts": []any{map[string]any{"text": a.text}}},
			"finishReason": finish,
			"index":        0,
		}},
		"usageMetadata": map[string]any{
			"promptTokenCount":     a.in,
			"candidatesTokenCount": a.out,
			"totalTokenCount":      a.in + a.out,
		},
		"modelVersion": c.model,
		"responseId":   fmt.Sprintf("fake-%d", c.id),
	})
}
