package llm_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/llm/fakellm"
)

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func norm(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

const (
	teaChunk = "Green tea begins as a shrub, not a drink. On the hillside farms around Shizuoka, growers prune " +
		"Camellia sinensis into long, rounded hedges. The first harvest of the year, in late April and May, is prized for its sweetness."
	teaPair   = "When is the first harvest prized? The first harvest of the year, in late April and May, is prized for its sweetness."
	railChunk = "Sleeper services that many rail companies cut in the 2000s are returning on a few routes. " +
		"Operators say the demand comes from travellers who want to avoid airports."
	jaChunk = "東京は日本の首都であり、世界有数の大都市である。人口は約1400万人で、政治と経済の中心となっている。"
	jaPair  = "本文によると、東京の人口は何ですか？ 人口は約1400万人で、政治と経済の中心となっている。"
	jaOther = "富士山は静岡県と山梨県にまたがる活火山で、標高は3776メートルである。"
)

func TestOfflineEmbedder(t *testing.T) {
	ctx := context.Background()
	e := llm.NewOfflineEmbedder(0)
	if e.Name() != llm.OfflineEmbedName || e.Model() != llm.OfflineEmbeddingModel {
		t.Fatalf("labels %s %s", e.Name(), e.Model())
	}
	texts := []string{teaChunk, teaPair, railChunk, jaChunk, jaPair, jaOther, "!!! ??? ...", "ab"}
	v1, err := e.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := e.Embed(ctx, texts)
	for i := range texts {
		if len(v1[i]) != llm.OfflineEmbeddingDimensions || math.Abs(norm(v1[i])-1) > 1e-5 {
			t.Errorf("text %d: %d dimensions, norm %v", i, len(v1[i]), norm(v1[i]))
		}
		for k := range v1[i] {
			if v1[i][k] != v2[i][k] {
				t.Fatalf("text %d: not deterministic", i)
			}
		}
	}
	if h := llm.HashEmbedding(teaChunk, 0); cosine(h, v1[0]) < 0.999999 {
		t.Error("HashEmbedding differs from Embed")
	}
	// Similar texts are closer than unrelated ones, in both languages.
	if tea, rail := cosine(v1[0], v1[1]), cosine(v1[2], v1[1]); !(tea > 0.3 && tea > rail+0.15) {
		t.Errorf("en: pair vs its chunk %.3f, vs another chunk %.3f", tea, rail)
	}
	if ja, other := cosine(v1[3], v1[4]), cosine(v1[5], v1[4]); !(ja > 0.4 && ja > other+0.3) {
		t.Errorf("ja: pair vs its chunk %.3f, vs another chunk %.3f", ja, other)
	}
	if c := cosine(v1[0], v1[0]); math.Abs(c-1) > 1e-6 {
		t.Errorf("self similarity %v", c)
	}
	// Other dimensions; an empty text is an error, not a zero vector.
	if v := llm.NewOfflineEmbedder(64); len(must(v.Embed(ctx, []string{"x"}))[0]) != 64 {
		t.Error("dimension 64")
	}
	if _, err := e.Embed(ctx, []string{"fine", "  "}); err == nil || !strings.Contains(err.Error(), "text 2 of 2 is empty") {
		t.Errorf("blank text: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Embed(cctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// embedderFor builds the named network embedder against the fake.
func embedderFor(t *testing.T, api string, f *fixture, cfg llm.EmbedConfig) llm.Embedder {
	t.Helper()
	cfg.APIKey = testKey
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = time.Millisecond
	}
	switch api {
	case "gemini":
		cfg.BaseURL = f.srv.URL
	case "openai":
		cfg.BaseURL = f.srv.URL + "/v1"
	}
	e, err := llm.NewEmbedder(context.Background(), api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEmbedders: the Gemini and OpenAI embedders through the real SDKs
// against the fake: batching, order, dimensions, the fake's offline
// vectors, its counters.
func TestEmbedders(t *testing.T) {
	for _, c := range []struct {
		api, model string
		dims       int
	}{{"gemini", "gemini-embedding-001", 3072}, {"openai", "text-embedding-3-small", 1536}} {
		t.Run(c.api, func(t *testing.T) {
			f := startFake(t, fakellm.Config{})
			e := embedderFor(t, c.api, f, llm.EmbedConfig{BatchSize: 4, Concurrency: 3})
			if e.Name() != c.api || e.Model() != c.model {
				t.Fatalf("labels %s %s", e.Name(), e.Model())
			}
			texts := make([]string, 10)
			for i := range texts {
				texts[i] = fmt.Sprintf("text number %d about %s", i, []string{"tea", "trains", "rivers"}[i%3])
			}
			texts[7] = jaChunk
			vecs, err := e.Embed(context.Background(), texts)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vecs {
				want := llm.HashEmbedding(texts[i], c.dims)
				if len(v) != c.dims || cosine(v, want) < 0.99999 {
					t.Fatalf("vector %d: %d dimensions, cosine with the offline vector %v", i, len(v), cosine(v, want))
				}
			}
			st := f.fake.Stats()
			if st.EmbedRequests[c.api] != 3 || st.EmbeddedTexts != 10 || st.EmbedInputTokens <= 0 || st.Requests[c.api] != 0 {
				t.Errorf("stats %+v", st)
			}
			// Asked-for dimensions.
			e = embedderFor(t, c.api, f, llm.EmbedConfig{Dimensions: 256})
			if v, err := e.Embed(context.Background(), []string{"x y z"}); err != nil || len(v[0]) != 256 {
				t.Errorf("256 dimensions: %v", err)
			}
			if v, err := e.Embed(context.Background(), nil); err != nil || len(v) != 0 {
				t.Errorf("no texts: %v %v", v, err)
			}
		})
	}
}

// TestEmbedRequestShapes: the endpoints and bodies the SDKs send.
func TestEmbedRequestShapes(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]map[string]any{}
	f := recordingFake(t, func(r *http.Request, body map[string]any) {
		mu.Lock()
		paths[r.URL.Path] = body
		mu.Unlock()
	})
	for _, api := range []string{"gemini", "openai"} {
		if _, err := embedderFor(t, api, f, llm.EmbedConfig{}).Embed(context.Background(), []string{"a b c", "d e f"}); err != nil {
			t.Fatal(err)
		}
	}
	g := paths["/v1beta/models/gemini-embedding-001:batchEmbedContents"]
	reqs, _ := g["requests"].([]any)
	if len(reqs) != 2 {
		t.Fatalf("gemini body %v (paths %v)", g, paths)
	}
	r0, _ := reqs[0].(map[string]any)
	if r0["outputDimensionality"] != 3072.0 || r0["model"] != "models/gemini-embedding-001" || r0["taskType"] != nil {
		t.Errorf("gemini request %v", r0)
	}
	o := paths["/v1/embeddings"]
	if o["model"] != "text-embedding-3-small" || o["dimensions"] != nil || len(o["input"].([]any)) != 2 {
		t.Errorf("openai body %v", o)
	}
}

// TestEmbedErrors: failures are clear errors after the retries, never
// zero vectors.
func TestEmbedErrors(t *testing.T) {
	ctx := context.Background()
	for _, api := range []string{"gemini", "openai"} {
		t.Run(api, func(t *testing.T) {
			// 500 on every request: retried, then an error naming the texts.
			f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultServerError: 1}})
			e := embedderFor(t, api, f, llm.EmbedConfig{Retries: 2, BatchSize: 2})
			_, err := e.Embed(ctx, []string{"one", "two", "three"})
			le := wantKind(t, err, llm.KindTransient, 500)
			if !strings.Contains(err.Error(), "gave up after 3 attempts") || !strings.Contains(err.Error(), "embedding texts") || le.Provider != api {
				t.Errorf("error %v", err)
			}
			if n := f.fake.Stats().Errors["500"]; n < 3 || n > 6 {
				t.Errorf("%d requests answered 500, want 3 attempts of the first request (and at most one more batch)", n)
			}

			// Malformed and empty answers are bad output.
			for _, fault := range []fakellm.Fault{fakellm.FaultMalformed, fakellm.FaultEmpty} {
				f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fault: 1}})
				_, err := embedderFor(t, api, f, llm.EmbedConfig{Retries: -1}).Embed(ctx, []string{"one"})
				if err == nil {
					t.Fatalf("%s: no error", fault)
				}
				if fault == fakellm.FaultEmpty {
					wantKind(t, err, llm.KindBadOutput, 0)
				}
			}

			// A wrong key is permanent: no retry.
			f = startFake(t, fakellm.Config{APIKey: "another-key"})
			_, err = embedderFor(t, api, f, llm.EmbedConfig{}).Embed(ctx, []string{"one"})
			wantKind(t, err, llm.KindPermanent, 401)
			if n := f.fake.Stats().EmbedRequests[api]; n != 1 {
				t.Errorf("%d requests for a permanent error", n)
			}

			// A 429 with a short Retry-After is waited out and succeeds.
			clk := newClock()
			f = startFake(t, fakellm.Config{RPM: 1, Now: clk.Now})
			e = embedderFor(t, api, f, llm.EmbedConfig{Retries: 1000, MaxRetryWait: 20 * time.Millisecond})
			if _, err := e.Embed(ctx, []string{"first"}); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := e.Embed(ctx, []string{"second"}); done <- err }()
			deadline := time.Now().Add(5 * time.Second)
			for f.fake.Stats().RateLimited == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			clk.Advance(time.Minute)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("after the 429: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer after the rate-limit wait")
			}
		})
	}
}

// TestEmbedTimeoutAndCancel: a hung request times out (transient); a
// cancelled context is returned as is.
func TestEmbedTimeoutAndCancel(t *testing.T) {
	f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultTimeout: 1}})
	e := embedderFor(t, "gemini", f, llm.EmbedConfig{Timeout: 100 * time.Millisecond, Retries: -1})
	_, err := e.Embed(context.Background(), []string{"one"})
	if llm.KindOf(err) != llm.KindTransient || !strings.Contains(err.Error(), "per-call timeout") {
		t.Errorf("timeout: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	e = embedderFor(t, "openai", f, llm.EmbedConfig{})
	if _, err := e.Embed(ctx, []string{"one"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller's deadline: %v", err)
	}
}

func TestNewEmbedder(t *testing.T) {
	ctx := context.Background()
	for _, env := range []string{llm.EnvGoogleAPIKey, llm.EnvGeminiAPIKey, llm.EnvOpenAIAPIKey, llm.EnvGeminiBaseURL, llm.EnvOpenAIBaseURL} {
		t.Setenv(env, "")
	}
	for _, name := range []string{"gemini", "openai"} {
		if _, err := llm.NewEmbedder(ctx, name, llm.EmbedConfig{}); !errors.Is(err, llm.ErrNoAPIKey) || llm.KindOf(err) != llm.KindPermanent {
			t.Errorf("%s without a key: %v", name, err)
		}
		if llm.HasAPIKey(name) {
			t.Errorf("%s has a key", name)
		}
	}
	if _, err := llm.NewEmbedder(ctx, "claude", llm.EmbedConfig{}); err == nil {
		t.Error("unknown provider accepted")
	}
	if e, err := llm.NewEmbedder(ctx, " Offline ", llm.EmbedConfig{}); err != nil || e.Name() != llm.OfflineEmbedName {
		t.Errorf("offline: %v", err)
	}
	if _, err := llm.NewEmbedder(ctx, "offline", llm.EmbedConfig{Model: "gemini-embedding-001"}); err == nil {
		t.Error("offline with a model accepted")
	}

	// Keys and base URLs from the environment, as the generation providers.
	f := startFake(t, fakellm.Config{})
	t.Setenv(llm.EnvGeminiAPIKey, testKey)
	t.Setenv(llm.EnvGeminiBaseURL, f.srv.URL)
	t.Setenv(llm.EnvOpenAIBaseURL, f.srv.URL+"/v1")
	for _, name := range []string{"gemini", "openai"} {
		if !llm.HasAPIKey(name) {
			t.Errorf("%s: no key seen", name)
		}
		e, err := llm.NewEmbedder(ctx, name, llm.EmbedConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Embed(ctx, []string{"hello"}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if st := f.fake.Stats(); st.EmbedRequests["gemini"] != 1 || st.EmbedRequests["openai"] != 1 {
		t.Errorf("stats %+v", st)
	}
}
