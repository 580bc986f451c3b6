package fakellm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/llm/fakellm"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func start(t *testing.T, cfg fakellm.Config) (*fakellm.Server, string) {
	t.Helper()
	fake := fakellm.New(cfg)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	t.Cleanup(fake.Close)
	return fake, srv.URL
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func post(t *testing.T, url string, header map[string]string, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

const geminiPrompt = "Write 2 question-answer pairs.\nText:\nThe sky is blue. Grass is green. Snow is white."

const geminiBody = `{"contents": [{"role": "user", "parts": [{"text": "Write 2 question-answer pairs.\nText:\nThe sky is blue. Grass is green. Snow is white."}]}],
	"generationConfig": {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT"}}}`

const openaiBody = `{"model": "m", "messages": [{"role": "user", "content": "Write 2 question-answer pairs.\nText:\nThe sky is blue. Grass is green. Snow is white."}],
	"response_format": {"type": "json_object"}}`

func geminiText(t *testing.T, r reply) string {
	t.Helper()
	cands, _ := r.body["candidates"].([]any)
	if r.status != 200 || len(cands) != 1 {
		t.Fatalf("reply %d %s", r.status, r.raw)
	}
	parts := cands[0].(map[string]any)["content"].(map[string]any)["parts"].([]any)
	return parts[0].(map[string]any)["text"].(string)
}

func TestGeminiWire(t *testing.T) {
	_, url := start(t, fakellm.Config{APIKey: "k"})
	gen := url + "/v1beta/models/gemini-2.0-flash:generateContent"

	// The key in the query, snake_case fields.
	r := post(t, gen+"?key=k", nil, `{"contents": [{"parts": [{"text": "Text:\nOne. Two. Three. Four."}]}],
		"system_instruction": {"parts": [{"text": "write 4 pairs"}]}, "generation_config": {"response_mime_type": "application/json"}}`)
	pairs, err := llm.ParseQAPairs(json.RawMessage(geminiText(t, r)))
	if err != nil || len(pairs) != 4 {
		t.Fatalf("%v %+v", err, pairs)
	}
	usage := r.body["usageMetadata"].(map[string]any)
	if usage["promptTokenCount"].(float64) <= 0 || usage["candidatesTokenCount"].(float64) <= 0 || r.body["modelVersion"] != "gemini-2.0-flash" {
		t.Fatalf("reply %s", r.raw)
	}

	// Plain text: prose around the JSON.
	r = post(t, gen, map[string]string{"x-goog-api-key": "k"}, `{"contents": [{"parts": [{"text": "Write 1 pair. Text:\nA cat. A dog."}]}]}`)
	text := geminiText(t, r)
	if !strings.HasPrefix(text, "Here are") || !strings.Contains(text, "```json\n{") {
		t.Fatalf("plain text %q", text)
	}

	for _, tc := range []struct {
		name, url, key, body string
		status               int
		errStatus            string
	}{
		{"wrong key", gen, "nope", geminiBody, 401, "UNAUTHENTICATED"},
		{"no key", gen, "", geminiBody, 401, "UNAUTHENTICATED"},
		{"bad JSON", gen, "k", `{"contents": [`, 400, "INVALID_ARGUMENT"},
		{"no contents", gen, "k", `{}`, 400, "INVALID_ARGUMENT"},
		{"other method", url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent", "k", geminiBody, 404, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, tc.url, map[string]string{"x-goog-api-key": tc.key}, tc.body)
			e, _ := r.body["error"].(map[string]any)
			if r.status != tc.status || e["status"] != tc.errStatus || e["code"] != float64(tc.status) {
				t.Fatalf("reply %d %s", r.status, r.raw)
			}
		})
	}
}

func TestOpenAIWire(t *testing.T) {
	fake, url := start(t, fakellm.Config{APIKey: "k"})
	auth := map[string]string{"Authorization": "Bearer k"}
	for _, path := range []string{"/v1/chat/completions", "/chat/completions"} {
		r := post(t, url+path, auth, openaiBody)
		choices, _ := r.body["choices"].([]any)
		if r.status != 200 || len(choices) != 1 {
			t.Fatalf("%s: %d %s", path, r.status, r.raw)
		}
		ch := choices[0].(map[string]any)
		content := ch["message"].(map[string]any)["content"].(string)
		if pairs, err := llm.ParseQAPairs(json.RawMessage(content)); err != nil || len(pairs) != 2 || ch["finish_reason"] != "stop" {
			t.Fatalf("%v %s", err, r.raw)
		}
		if u := r.body["usage"].(map[string]any); u["total_tokens"].(float64) != u["prompt_tokens"].(float64)+u["completion_tokens"].(float64) {
			t.Fatalf("usage %v", u)
		}
	}
	// Content as an array of parts; a system message asking for batches.
	r := post(t, url+"/v1/chat/completions", auth, `{"model": "m", "messages": [
		{"role": "system", "content": "Answer with chunk_index."},
		{"role": "user", "content": [{"type": "text", "text": "[0] (1 pairs)\nText:\nA. B.\n[1] (1 pairs)\nText:\nC. D."}]}]}`)
	content := r.body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	raw, err := llm.ExtractJSONObject(content)
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := llm.ParseQAPairs(raw)
	if err != nil || len(pairs) != 2 || pairs[1].ChunkIndex == nil || *pairs[1].ChunkIndex != 1 {
		t.Fatalf("%v %s", err, content)
	}

	for _, tc := range []struct {
		name, auth, body string
		status           int
		typ, code        any
	}{
		{"wrong key", "Bearer x", openaiBody, 401, "invalid_request_error", "invalid_api_key"},
		{"stream", "Bearer k", `{"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}`, 400, "invalid_request_error", nil},
		{"no messages", "Bearer k", `{"model": "m", "messages": []}`, 400, "invalid_request_error", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, url+"/v1/chat/completions", map[string]string{"Authorization": tc.auth}, tc.body)
			e, _ := r.body["error"].(map[string]any)
			if r.status != tc.status || e["type"] != tc.typ || e["code"] != tc.code || e["message"] == "" {
				t.Fatalf("reply %d %s", r.status, r.raw)
			}
		})
	}
	st := fake.Stats()
	if st.Requests["openai"] != 6 || st.Errors["unauthorized"] != 1 || st.Errors["bad_request"] != 2 || st.Pairs != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRateLimitWire(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	fake, url := start(t, fakellm.Config{RPM: 2, Now: clk.Now})
	gen := url + "/v1beta/models/m:generateContent"
	if r := post(t, gen, nil, geminiBody); r.status != 200 {
		t.Fatal(r.raw)
	}
	clk.Advance(30 * time.Second)
	if r := post(t, gen, nil, geminiBody); r.status != 200 {
		t.Fatal(r.raw)
	}
	clk.Advance(29500 * time.Millisecond)
	// Gemini: Retry-After rounded up, RetryInfo exact.
	r := post(t, gen, nil, geminiBody)
	e, _ := r.body["error"].(map[string]any)
	details, _ := e["details"].([]any)
	var delay any
	for _, d := range details {
		if m := d.(map[string]any); m["@type"] == "type.googleapis.com/google.rpc.RetryInfo" {
			delay = m["retryDelay"]
		}
	}
	if r.status != 429 || e["status"] != "RESOURCE_EXHAUSTED" || r.header.Get("Retry-After") != "1" || delay != "0.5s" {
		t.Fatalf("reply %d %v %s", r.status, r.header, r.raw)
	}
	// OpenAI shares the window.
	r = post(t, url+"/v1/chat/completions", nil, openaiBody)
	e, _ = r.body["error"].(map[string]any)
	if r.status != 429 || e["code"] != "rate_limit_exceeded" || e["type"] != "requests" || !strings.Contains(e["message"].(string), "try again in 0.5s") {
		t.Fatalf("reply %d %s", r.status, r.raw)
	}
	clk.Advance(500 * time.Millisecond) // the first request leaves the window
	if r := post(t, url+"/v1/chat/completions", nil, openaiBody); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := post(t, gen, nil, geminiBody); r.status != 429 {
		t.Fatal("the window did not slide by one request")
	}
	if st := fake.Stats(); st.RateLimited != 3 || st.Answers != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTokenLimitWire(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	_, url := start(t, fakellm.Config{TPM: 1000, Now: clk.Now})
	gen := url + "/v1beta/models/m:generateContent"
	used := 0
	for i := 0; ; i++ {
		r := post(t, gen, nil, geminiBody)
		if r.status == 429 {
			if in := fakellm.Tokens(geminiPrompt); used+in <= 1000 {
				t.Fatalf("refused with %d+%d tokens", used, in)
			}
			e := r.body["error"].(map[string]any)
			if !strings.Contains(e["message"].(string), "tokens per minute") {
				t.Fatalf("reply %s", r.raw)
			}
			break
		}
		u := r.body["usageMetadata"].(map[string]any)
		used += int(u["totalTokenCount"].(float64))
		clk.Advance(time.Second)
		if i > 100 {
			t.Fatal("never limited")
		}
	}
	if used > 1000 {
		t.Fatalf("admitted %d tokens in a minute", used)
	}
}

func TestFaultsAreDeterministic(t *testing.T) {
	probs, _ := fakellm.SpreadFailRate(0.5, []fakellm.Fault{fakellm.FaultServerError, fakellm.FaultEmpty, fakellm.FaultMalformed})
	run := func(seed uint64) string {
		_, url := start(t, fakellm.Config{Seed: seed, Faults: probs})
		var b strings.Builder
		for i := 0; i < 40; i++ {
			r := post(t, url+"/v1/chat/completions", nil, openaiBody)
			switch {
			case r.status != 200:
				b.WriteString("5")
			case strings.Contains(r.raw, `"content":""`):
				b.WriteString("e")
			case json.Valid([]byte(r.body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string))):
				b.WriteString(".")
			default:
				b.WriteString("m")
			}
		}
		return b.String()
	}
	a, b, c := run(1), run(1), run(2)
	if a != b || a == c {
		t.Fatalf("seed 1: %s / %s, seed 2: %s", a, b, c)
	}
	for _, k := range []string{"5", "e", "m", "."} {
		if !strings.Contains(a, k) {
			t.Fatalf("no %q in %s", k, a)
		}
	}
}

func TestHangReleasedByClose(t *testing.T) {
	fake, url := start(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultTimeout: 1}})
	done := make(chan reply, 1)
	go func() { done <- post(t, url+"/v1/chat/completions", nil, openaiBody) }()
	for fake.Stats().Errors["timeout"] == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("answered while hanging")
	case <-time.After(20 * time.Millisecond):
	}
	fake.Close()
	if r := <-done; r.status != http.StatusServiceUnavailable {
		t.Fatalf("reply %d %s", r.status, r.raw)
	}
}

func TestStatsEndpointAndConcurrency(t *testing.T) {
	fake, url := start(t, fakellm.Config{Latency: fakellm.Latency{Max: time.Millisecond}})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i%2 == 0 {
				post(t, url+"/v1beta/models/m:generateContent", nil, geminiBody)
			} else {
				post(t, url+"/v1/chat/completions", nil, openaiBody)
			}
		}(i)
	}
	wg.Wait()
	resp, err := http.Get(url + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	body, _ := io.ReadAll(resp.Body)
	json.Unmarshal(body, &raw)
	for _, k := range []string{"requests", "rate_limited", "errors", "input_tokens", "output_tokens", "pairs", "answers"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("no %q in %s", k, body)
		}
	}
	st := fake.Stats()
	if st.Requests["gemini"] != 10 || st.Requests["openai"] != 10 || st.Pairs != 40 || st.Answers != 20 || st.InputTokens <= 0 {
		t.Fatalf("stats %s", body)
	}
	if !bytes.Contains(body, []byte(fmt.Sprintf(`"pairs":%d`, st.Pairs))) {
		t.Fatalf("stats %s", body)
	}
}
