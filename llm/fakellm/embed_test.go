package fakellm_test

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/llm/fakellm"
)

func floats(t *testing.T, v any) []float32 {
	t.Helper()
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("not a vector: %v", v)
	}
	out := make([]float32, len(l))
	for i, x := range l {
		out[i] = float32(x.(float64))
	}
	return out
}

func sameVector(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			return false
		}
	}
	return true
}

func TestGeminiEmbedWire(t *testing.T) {
	fake, url := start(t, fakellm.Config{})
	key := map[string]string{"x-goog-api-key": "k"}
	r := post(t, url+"/v1beta/models/gemini-embedding-001:batchEmbedContents", key, `{"requests": [
		{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "green tea"}]}, "outputDimensionality": 8},
		{"model": "models/gemini-embedding-001", "content": {"role": "user", "parts": [{"text": "東京の人口"}]}, "outputDimensionality": 8}]}`)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	embs := r.body["embeddings"].([]any)
	if len(embs) != 2 || !sameVector(floats(t, embs[1].(map[string]any)["values"]), llm.HashEmbedding("東京の人口", 8)) {
		t.Fatalf("answer %s", r.raw)
	}
	// Default dimensions: 3072 for gemini-embedding-*; embedContent.
	r = post(t, url+"/v1beta/models/gemini-embedding-001:embedContent", key, `{"content": {"parts": [{"text": "one"}]}}`)
	if v := floats(t, r.body["embedding"].(map[string]any)["values"]); r.status != 200 || len(v) != 3072 {
		t.Fatalf("embedContent %d %d", r.status, len(v))
	}
	r = post(t, url+"/v1beta/models/text-embedding-004:batchEmbedContents", key, `{"requests": [{"content": {"parts": [{"text": "one"}]}}]}`)
	if v := floats(t, r.body["embeddings"].([]any)[0].(map[string]any)["values"]); len(v) != 768 {
		t.Fatalf("text-embedding-004: %d dimensions", len(v))
	}
	// Bad requests.
	many := make([]string, 101)
	for i := range many {
		many[i] = `{"content": {"parts": [{"text": "x"}]}}`
	}
	for body, want := range map[string]string{
		`{"requests": []}`: "not specified",
		`{"requests": [` + strings.Join(many, ",") + `]}`:                                       "at most 100",
		`{"requests": [{"content": {"parts": []}}]}`:                                            "non-empty text",
		`{"requests": [{"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 9000}]}`: "not supported",
		`{"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}`:      "differs",
		`not json`: "Invalid JSON",
	} {
		r := post(t, url+"/v1beta/models/gemini-embedding-001:batchEmbedContents", key, body)
		if r.status != http.StatusBadRequest || !strings.Contains(r.raw, want) {
			t.Errorf("%.60s: %d %s", body, r.status, r.raw)
		}
	}
	st := fake.Stats()
	if st.EmbedRequests["gemini"] != 9 || st.EmbeddedTexts != 4 || st.Errors["bad_request"] != 6 || st.Requests["gemini"] != 0 || st.Answers != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestOpenAIEmbedWire(t *testing.T) {
	fake, url := start(t, fakellm.Config{})
	auth := map[string]string{"Authorization": "Bearer k"}
	r := post(t, url+"/v1/embeddings", auth, `{"model": "text-embedding-3-small", "input": ["a b", "c d"], "dimensions": 4}`)
	data, _ := r.body["data"].([]any)
	if r.status != 200 || len(data) != 2 || r.body["object"] != "list" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	d1 := data[1].(map[string]any)
	if d1["index"] != 1.0 || !sameVector(floats(t, d1["embedding"]), llm.HashEmbedding("c d", 4)) {
		t.Errorf("data %v", d1)
	}
	if u := r.body["usage"].(map[string]any); u["prompt_tokens"].(float64) <= 0 {
		t.Errorf("usage %v", u)
	}
	// One string, the model's size, base64.
	r = post(t, url+"/embeddings", auth, `{"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"}`)
	b, err := base64.StdEncoding.DecodeString(r.body["data"].([]any)[0].(map[string]any)["embedding"].(string))
	if err != nil || len(b) != 4*1536 {
		t.Fatalf("base64: %v %d", err, len(b))
	}
	v := make([]float32, 1536)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	if !sameVector(v, llm.HashEmbedding("hello", 1536)) {
		t.Error("base64 vector differs")
	}
	for body, want := range map[string]string{
		`{"model": "m", "input": []}`:                             "must not be empty",
		`{"model": "m", "input": [[1, 2]]}`:                       "token arrays",
		`{"input": ["x"]}`:                                        "model",
		`{"model": "m", "input": ["x", " "]}`:                     "input[1]",
		`{"model": "m", "input": "x", "encoding_format": "int8"}`: "encoding_format",
	} {
		r := post(t, url+"/v1/embeddings", auth, body)
		if r.status != http.StatusBadRequest || !strings.Contains(r.raw, want) {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	if st := fake.Stats(); st.EmbedRequests["openai"] != 7 || st.EmbeddedTexts != 3 || st.Requests["openai"] != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestEmbedLimitsAndFaults: embeddings count against the RPM limit and
// take injected faults.
func TestEmbedLimitsAndFaults(t *testing.T) {
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, url := start(t, fakellm.Config{RPM: 2, Now: clk.Now})
	body := `{"model": "text-embedding-3-small", "input": ["x"]}`
	for i := 0; i < 2; i++ {
		if r := post(t, url+"/v1/embeddings", nil, body); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := post(t, url+"/v1/embeddings", nil, body)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d %v", r.status, r.header)
	}
	clk.Advance(time.Minute)
	if r := post(t, url+"/v1/embeddings", nil, body); r.status != 200 {
		t.Fatalf("after a minute: %d", r.status)
	}

	for fault, check := range map[fakellm.Fault]func(reply) bool{
		fakellm.FaultServerError: func(r reply) bool { return r.status == 500 },
		fakellm.FaultMalformed:   func(r reply) bool { return r.status == 200 && r.body == nil },
		fakellm.FaultEmpty: func(r reply) bool {
			e, ok := r.body["embeddings"].([]any)
			return r.status == 200 && ok && len(e) == 0
		},
		fakellm.FaultSchema: func(r reply) bool { return r.status == 200 }, // not for embeddings
	} {
		fake, url := start(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fault: 1}})
		r := post(t, url+"/v1beta/models/gemini-embedding-001:batchEmbedContents", nil, `{"requests": [{"content": {"parts": [{"text": "x"}]}}]}`)
		if !check(r) {
			t.Errorf("%s: %d %s", fault, r.status, r.raw)
		}
		if st := fake.Stats(); fault != fakellm.FaultSchema && st.Errors[string(fault)] != 1 {
			t.Errorf("%s: stats %+v", fault, st)
		}
	}
}
