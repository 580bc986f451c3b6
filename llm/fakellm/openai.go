package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// openaiRequest is a chat completions body.
type openaiRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	ResponseFormat *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string `json:"name"`
			Schema any    `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	MaxTokens           int  `json:"max_tokens"`
	MaxCompletionTokens int  `json:"max_completion_tokens"`
	Stream              bool `json:"stream"`
}

// messageText reads a message content: a string or an array of parts.
func messageText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		var b []string
		for _, p := range parts {
			if p.Text != "" {
				b = append(b, p.Text)
			}
		}
		return strings.Join(b, "\n")
	}
	return ""
}

// handleOpenAI serves POST /v1/chat/completions (and /chat/completions).
func (s *Server) handleOpenAI(w http.ResponseWriter, r *http.Request) {
	d := openaiDialect{}
	s.countRequest(d.name())
	var req openaiRequest
	if err := readJSON(r, &req); err != nil {
		s.badRequest(w, d, "We could not parse the JSON body of your request: "+err.Error())
		return
	}
	if req.Stream {
		s.badRequest(w, d, "stream is not supported by fake-llm")
		return
	}
	if len(req.Messages) == 0 {
		s.badRequest(w, d, "'messages' must contain at least one message")
		return
	}
	c := &call{model: req.Model}
	var system, user []string
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			system = append(system, messageText(m.Content))
		case "user":
			user = append(user, messageText(m.Content))
		}
	}
	c.system, c.prompt = strings.Join(system, "\n"), strings.Join(user, "\n")
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "json_schema":
			c.structured = true
			if rf.JSONSchema != nil {
				c.schema = rf.JSONSchema.Schema
			}
		case "json_object":
			c.structured = true
		}
	}
	c.maxTokens = req.MaxCompletionTokens
	if c.maxTokens <= 0 {
		c.maxTokens = req.MaxTokens
	}
	s.serve(w, r, d, c)
}

type openaiDialect struct{}

func (openaiDialect) name() string { return "openai" }

// key reads the bearer token.
func (openaiDialect) key(r *http.Request) string {
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return key
}

func (openaiDialect) fail(w http.ResponseWriter, f failure, retryIn string) {
	status, typ, msg := http.StatusInternalServerError, "server_error", f.msg
	var code, param any
	switch f.kind {
	case failBadRequest:
		status, typ = http.StatusBadRequest, "invalid_request_error"
	case failUnauthorized:
		status, typ, code = http.StatusUnauthorized, "invalid_request_error", "invalid_api_key"
		msg = "Incorrect API key provided (" + f.msg + "). You can find your API key at https://platform.openai.com/account/api-keys."
	case failNotFound:
		status, typ, code = http.StatusNotFound, "invalid_request_error", "not_found"
	case failRateLimited:
		status, typ, code = http.StatusTooManyRequests, f.limit, "rate_limit_exceeded"
		if f.limit == "quota" {
			typ = "requests"
		}
		msg = "Rate limit reached: " + f.msg + "."
		if retryIn != "header" {
			msg += fmt.Sprintf(" Please try again in %s.", seconds(f.wait))
		}
		if retryIn != "body" {
			retryHeader(w, f.wait)
			w.Header().Set("Retry-After-Ms", fmt.Sprint(f.wait/time.Millisecond))
		}
	case failServer:
		msg = "The server had an error while processing your request. Sorry about that! (" + f.msg + ")"
	case failTimeout:
		status, code = http.StatusGatewayTimeout, "timeout"
	case failSchema:
		status, typ, param = http.StatusBadRequest, "invalid_request_error", "response_format"
		msg = "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model (fake-llm injected)."
	case failClosed:
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": param, "code": code}})
}

func (openaiDialect) ok(w http.ResponseWriter, c *call, a answer) {
	finish := "stop"
	if a.truncated {
		finish = "length"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":      fmt.Sprintf("chatcmpl-fake-%d", c.id),
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   c.model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": a.text},
			"finish_reason": finish,
			"logprobs":      nil,
		}},
		"usage": map[string]any{"prompt_tokens": a.in, "completion_tokens": a.out, "total_tokens": a.in + a.out},
	})
}
