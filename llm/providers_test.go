package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// The provider tests run the real SDK clients against a fakellm server:
// nothing of the SDKs is mocked.

const testKey = "test-key-0123456789-secret"

const englishText = "Photosynthesis converts light energy into chemical energy. " +
	"Plants store that energy as glucose because they need fuel at night. " +
	"Unlike animals, plants make their own food. " +
	"Farmers can use greenhouses to extend the growing season. " +
	"Chlorophyll absorbs mostly red and blue light."

func singlePrompt(n int) (system, user string) {
	return "You write question-and-answer material. Reply with JSON only.",
		"Write " + itoa(n) + " question-answer pairs from this text.\n\nText:\n" + englishText
}

func batchPrompt() (system, user string) {
	return `Put the text's number in "chunk_index". Reply with JSON only.`,
		"Write 3 question-answer pairs in total from these 2 texts.\n" +
			"\n[0] (2 pairs)\nText:\n" + englishText + "\n" +
			"\n[1] (1 pairs)\nText:\nThe Moon orbits the Earth. It reflects sunlight.\n"
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// clock is the fake server's injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	fake *fakellm.Server
	srv  *httptest.Server
}

func startFake(t *testing.T, cfg fakellm.Config) *fixture {
	t.Helper()
	fake := fakellm.New(cfg)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	t.Cleanup(fake.Close) // runs first: releases hanging handlers
	return &fixture{fake: fake, srv: srv}
}

// recordingFake starts a fake server behind a proxy that shows record each
// request, with its JSON body decoded, before the fake answers it.
func recordingFake(t *testing.T, record func(r *http.Request, body map[string]any)) *fixture {
	t.Helper()
	fake := fakellm.New(fakellm.Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		json.Unmarshal(b, &body)
		record(r, body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &fixture{fake: fake, srv: srv}
}

// providerFor builds the named provider against the fake server.
func providerFor(t *testing.T, api string, f *fixture, key string, timeout time.Duration) llm.Provider {
	t.Helper()
	switch api {
	case "gemini":
		p, err := llm.NewGemini(context.Background(), llm.GeminiConfig{APIKey: key, BaseURL: f.srv.URL, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		return p
	case "openai":
		p, err := llm.NewOpenAI(llm.OpenAIConfig{APIKey: key, BaseURL: f.srv.URL + "/v1", Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Fatalf("unknown api %q", api)
	return nil
}

func structuredRequest(n int) llm.Request {
	system, user := singlePrompt(n)
	return llm.Request{System: system, Prompt: user, Schema: llm.QASchema}
}

// wantKind checks a classified error.
func wantKind(t *testing.T, err error, kind llm.Kind, status int) *llm.Error {
	t.Helper()
	var e *llm.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *llm.Error", err, err)
	}
	if e.Kind != kind {
		t.Fatalf("kind %v, want %v (%v)", e.Kind, kind, err)
	}
	if status != 0 && e.Status != status {
		t.Fatalf("status %d, want %d (%v)", e.Status, status, err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Fatalf("the error shows the API key: %v", err)
	}
	return e
}

// providerCases are the behaviours both providers share.
func runProviderCases(t *testing.T, api string) {
	defaultModel := map[string]string{"gemini": llm.GeminiDefaultModel, "openai": llm.OpenAIDefaultModel}[api]
	ctx := context.Background()

	t.Run("structured", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Latency: fakellm.Latency{Min: time.Millisecond, Max: 2 * time.Millisecond}})
		p := providerFor(t, api, f, testKey, 0)
		resp, err := p.Generate(ctx, structuredRequest(2))
		if err != nil {
			t.Fatal(err)
		}
		pairs, err := llm.ParseQAPairs(json.RawMessage(resp.Text))
		if err != nil {
			t.Fatalf("%v in %s", err, resp.Text)
		}
		if len(pairs) != 2 || !strings.Contains(englishText, pairs[0].Answer) {
			t.Fatalf("pairs %+v", pairs)
		}
		u := resp.Usage
		if u.Provider != api || u.Model != defaultModel || !u.Structured || u.InputTokens <= 0 || u.OutputTokens <= 0 || u.Latency < time.Millisecond {
			t.Fatalf("usage %+v", u)
		}
		st := f.fake.Stats()
		if st.Requests[api] != 1 || st.Structured != 1 || st.Pairs != 2 || st.InputTokens != int64(u.InputTokens) || st.OutputTokens != int64(u.OutputTokens) {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("batch", func(t *testing.T) {
		f := startFake(t, fakellm.Config{})
		p := providerFor(t, api, f, testKey, 0)
		system, user := batchPrompt()
		resp, err := p.Generate(ctx, llm.Request{System: system, Prompt: user, Schema: llm.BatchQASchema, Model: "custom-model"})
		if err != nil {
			t.Fatal(err)
		}
		pairs, err := llm.ParseQAPairs(json.RawMessage(resp.Text))
		if err != nil {
			t.Fatal(err)
		}
		per := map[int]int{}
		for _, p := range pairs {
			if p.ChunkIndex == nil {
				t.Fatalf("pair without chunk_index: %+v", p)
			}
			per[*p.ChunkIndex]++
		}
		if per[0] != 2 || per[1] != 1 || resp.Usage.Model != "custom-model" {
			t.Fatalf("pairs per chunk %v, model %q", per, resp.Usage.Model)
		}
	})

	t.Run("plain text", func(t *testing.T) {
		f := startFake(t, fakellm.Config{})
		p := providerFor(t, api, f, testKey, 0)
		req := structuredRequest(3)
		req.Schema = nil
		resp, err := p.Generate(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if json.Valid([]byte(resp.Text)) || resp.Usage.Structured {
			t.Fatalf("plain answer %q, usage %+v", resp.Text, resp.Usage)
		}
		raw, err := llm.ExtractJSONObject(resp.Text)
		if err != nil {
			t.Fatal(err)
		}
		if pairs, err := llm.ParseQAPairs(raw); err != nil || len(pairs) != 3 {
			t.Fatalf("%d pairs, %v", len(pairs), err)
		}
		if st := f.fake.Stats(); st.Plain != 1 || st.Structured != 0 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("rpm limit with Retry-After", func(t *testing.T) {
		clk := newClock()
		f := startFake(t, fakellm.Config{RPM: 2, Now: clk.Now})
		p := providerFor(t, api, f, testKey, 0)
		for i := 0; i < 2; i++ {
			if _, err := p.Generate(ctx, structuredRequest(1)); err != nil {
				t.Fatal(err)
			}
			clk.Advance(10 * time.Second)
		}
		// Requests at 0s and 10s; now 20s: the first leaves the window at 60s.
		_, err := p.Generate(ctx, structuredRequest(1))
		e := wantKind(t, err, llm.KindRateLimited, http.StatusTooManyRequests)
		if e.RetryAfter != 40*time.Second || llm.RetryAfter(err) != 40*time.Second {
			t.Fatalf("retry after %v, want 40s", e.RetryAfter)
		}
		clk.Advance(40 * time.Second)
		if _, err := p.Generate(ctx, structuredRequest(1)); err != nil {
			t.Fatalf("after the wait: %v", err)
		}
		if st := f.fake.Stats(); st.RateLimited != 1 || st.Requests[api] != 4 || st.Answers != 3 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("tpm limit", func(t *testing.T) {
		clk := newClock()
		f := startFake(t, fakellm.Config{TPM: 200, Now: clk.Now})
		p := providerFor(t, api, f, testKey, 0)
		// The first request is admitted even though it uses most of the budget.
		if _, err := p.Generate(ctx, structuredRequest(3)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(15 * time.Second)
		_, err := p.Generate(ctx, structuredRequest(3))
		e := wantKind(t, err, llm.KindRateLimited, http.StatusTooManyRequests)
		if e.RetryAfter != 45*time.Second {
			t.Fatalf("retry after %v, want 45s", e.RetryAfter)
		}
		clk.Advance(45 * time.Second)
		if _, err := p.Generate(ctx, structuredRequest(3)); err != nil {
			t.Fatalf("after the wait: %v", err)
		}
	})

	t.Run("injected 429 header only", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultRateLimit: 1}, InjectedWait: 7 * time.Second, RetryAfterIn: "header"})
		p := providerFor(t, api, f, testKey, 0)
		_, err := p.Generate(ctx, structuredRequest(1))
		if e := wantKind(t, err, llm.KindRateLimited, 429); e.RetryAfter != 7*time.Second {
			t.Fatalf("retry after %v, want 7s", e.RetryAfter)
		}
	})

	t.Run("injected 429 body only", func(t *testing.T) {
		// Gemini: google.rpc.RetryInfo; OpenAI: "Please try again in 2.5s."
		f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultRateLimit: 1}, InjectedWait: 2500 * time.Millisecond, RetryAfterIn: "body"})
		p := providerFor(t, api, f, testKey, 0)
		_, err := p.Generate(ctx, structuredRequest(1))
		if e := wantKind(t, err, llm.KindRateLimited, 429); e.RetryAfter != 2500*time.Millisecond {
			t.Fatalf("retry after %v, want 2.5s", e.RetryAfter)
		}
	})

	faultCases := []struct {
		name   string
		fault  fakellm.Fault
		kind   llm.Kind
		status int
	}{
		{"500 is transient", fakellm.FaultServerError, llm.KindTransient, 500},
		{"empty answer is bad output", fakellm.FaultEmpty, llm.KindBadOutput, 0},
		{"schema rejection is unsupported", fakellm.FaultSchema, llm.KindUnsupported, 400},
	}
	for _, tc := range faultCases {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{tc.fault: 1}})
			p := providerFor(t, api, f, testKey, 0)
			_, err := p.Generate(ctx, structuredRequest(2))
			wantKind(t, err, tc.kind, tc.status)
			if n := f.fake.Stats().Errors[string(tc.fault)]; n != 1 {
				t.Fatalf("stats count %d %s errors", n, tc.fault)
			}
		})
	}

	t.Run("schema rejection spares plain text", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultSchema: 1}})
		p := providerFor(t, api, f, testKey, 0)
		req := structuredRequest(2)
		req.Schema = nil
		if _, err := p.Generate(ctx, req); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("malformed JSON is returned for the caller to reject", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultMalformed: 1}})
		p := providerFor(t, api, f, testKey, 0)
		resp, err := p.Generate(ctx, structuredRequest(2))
		if err != nil {
			t.Fatal(err)
		}
		if json.Valid([]byte(resp.Text)) || resp.Usage.OutputTokens == 0 {
			t.Fatalf("answer %q usage %+v", resp.Text, resp.Usage)
		}
		if _, err := llm.ParseQAPairs(json.RawMessage(resp.Text)); !errors.Is(err, llm.ErrBadPairs) {
			t.Fatalf("ParseQAPairs: %v", err)
		}
	})

	t.Run("output token limit is bad output", func(t *testing.T) {
		f := startFake(t, fakellm.Config{})
		p := providerFor(t, api, f, testKey, 0)
		req := structuredRequest(3)
		req.MaxOutputTokens = 10
		_, err := p.Generate(ctx, req)
		wantKind(t, err, llm.KindBadOutput, 0)
		if st := f.fake.Stats(); st.Truncated != 1 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("timeout is transient", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultTimeout: 1}})
		p := providerFor(t, api, f, testKey, 100*time.Millisecond)
		start := time.Now()
		_, err := p.Generate(ctx, structuredRequest(2))
		wantKind(t, err, llm.KindTransient, 0)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
	})

	t.Run("gateway timeout after a hang is transient", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultTimeout: 1}, HangFor: 20 * time.Millisecond})
		p := providerFor(t, api, f, testKey, 0)
		_, err := p.Generate(ctx, structuredRequest(2))
		wantKind(t, err, llm.KindTransient, http.StatusGatewayTimeout)
	})

	t.Run("connection refused is transient", func(t *testing.T) {
		f := startFake(t, fakellm.Config{})
		p := providerFor(t, api, f, testKey, 0)
		f.srv.Close()
		_, err := p.Generate(ctx, structuredRequest(2))
		wantKind(t, err, llm.KindTransient, 0)
	})

	t.Run("bad key is permanent and redacted", func(t *testing.T) {
		f := startFake(t, fakellm.Config{APIKey: "the-right-key"})
		p := providerFor(t, api, f, testKey, 0)
		_, err := p.Generate(ctx, structuredRequest(2))
		e := wantKind(t, err, llm.KindPermanent, http.StatusUnauthorized)
		if !strings.Contains(e.Error(), "[REDACTED]") {
			t.Fatalf("the fake echoes the key, so the error should show [REDACTED]: %v", e)
		}
		if f.fake.Stats().Errors["unauthorized"] != 1 {
			t.Fatalf("stats %+v", f.fake.Stats())
		}
	})

	t.Run("caller cancellation is returned as is", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Latency: fakellm.Latency{Min: 10 * time.Second, Max: 10 * time.Second}})
		p := providerFor(t, api, f, testKey, 0)
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(30*time.Millisecond, cancel)
		_, err := p.Generate(cctx, structuredRequest(2))
		if err != context.Canceled {
			t.Fatalf("got %v (%T), want context.Canceled itself", err, err)
		}
		// Already cancelled: no request at all.
		before := f.fake.Stats().Requests[api]
		if _, err := p.Generate(cctx, structuredRequest(2)); err != context.Canceled {
			t.Fatalf("got %v", err)
		}
		if f.fake.Stats().Requests[api] != before {
			t.Fatal("a cancelled context still sent a request")
		}
	})

	t.Run("caller deadline is returned as is", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Faults: map[fakellm.Fault]float64{fakellm.FaultTimeout: 1}})
		p := providerFor(t, api, f, testKey, time.Minute)
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := p.Generate(dctx, structuredRequest(2)); err != context.DeadlineExceeded {
			t.Fatalf("got %v (%T), want context.DeadlineExceeded itself", err, err)
		}
	})

	t.Run("stats endpoint", func(t *testing.T) {
		f := startFake(t, fakellm.Config{Seed: 7, Faults: map[fakellm.Fault]float64{fakellm.FaultServerError: 0.5}})
		p := providerFor(t, api, f, testKey, 0)
		var ok, failed int
		for i := 0; i < 8; i++ {
			if _, err := p.Generate(ctx, structuredRequest(2)); err != nil {
				wantKind(t, err, llm.KindTransient, 500)
				failed++
			} else {
				ok++
			}
		}
		resp, err := http.Get(f.srv.URL + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st fakellm.Stats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		if st.Requests[api] != 8 || st.Errors["500"] != int64(failed) || st.Answers != int64(ok) || st.Pairs != int64(2*ok) || ok == 0 || failed == 0 {
			t.Fatalf("ok %d failed %d, stats %+v", ok, failed, st)
		}
	})
}

func TestResolveName(t *testing.T) {
	for _, tc := range []struct{ arg, env, want string }{
		{"", "", "gemini"},
		{"", " OpenAI ", "openai"},
		{" Offline", "openai", "offline"},
		{"GEMINI", "", "gemini"},
	} {
		t.Setenv(llm.EnvProvider, tc.env)
		if got := llm.ResolveName(tc.arg); got != tc.want {
			t.Errorf("ResolveName(%q) with %s=%q: %q, want %q", tc.arg, llm.EnvProvider, tc.env, got, tc.want)
		}
	}
}

func TestIsOpenAIModel(t *testing.T) {
	for model, want := range map[string]bool{
		"gpt-4o-mini": true, "GPT-4.1": true, "o1-preview": true, "o3-mini": true, "o4-mini": true, "chatgpt-4o-latest": true,
		"gemini-2.0-flash": false, "gemini-1.5-pro-002": false, "": false, "llama3.1:8b": false,
	} {
		if got := llm.IsOpenAIModel(model); got != want {
			t.Errorf("IsOpenAIModel(%q) = %v", model, got)
		}
	}
}

func TestNewFromEnvironment(t *testing.T) {
	ctx := context.Background()
	f := startFake(t, fakellm.Config{})
	for _, env := range []string{llm.EnvGoogleAPIKey, llm.EnvGeminiAPIKey, llm.EnvOpenAIAPIKey, llm.EnvGeminiBaseURL, llm.EnvOpenAIBaseURL} {
		t.Setenv(env, "")
	}

	// No keys: clear, permanent errors naming the variables.
	for name, envVar := range map[string]string{"gemini": llm.EnvGoogleAPIKey, "openai": llm.EnvOpenAIAPIKey} {
		_, err := llm.New(ctx, name)
		if !errors.Is(err, llm.ErrNoAPIKey) || llm.KindOf(err) != llm.KindPermanent || !strings.Contains(err.Error(), envVar) {
			t.Errorf("%s without a key: %v", name, err)
		}
	}
	if _, err := llm.New(ctx, "claude"); err == nil || llm.KindOf(err) != llm.KindPermanent {
		t.Errorf("unknown provider: %v", err)
	}
	if p, err := llm.New(ctx, " Offline "); err != nil || p.Name() != llm.OfflineName {
		t.Errorf("offline: %v %v", p, err)
	}

	// GEMINI_API_KEY is accepted; base URLs from the environment.
	t.Setenv(llm.EnvGeminiAPIKey, testKey)
	t.Setenv(llm.EnvGeminiBaseURL, f.srv.URL)
	t.Setenv(llm.EnvOpenAIBaseURL, f.srv.URL+"/v1") // a local server: no key needed
	for _, name := range []string{"gemini", "openai"} {
		p, err := llm.New(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := p.Generate(ctx, structuredRequest(1)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if st := f.fake.Stats(); st.Requests["gemini"] != 1 || st.Requests["openai"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCache(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	c := &llm.Cache{NewFunc: func(ctx context.Context, name string) (llm.Provider, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if name == "broken" {
			return nil, errors.New("no")
		}
		return llm.Offline{}, nil
	}}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Get(context.Background(), " OFFLINE"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if calls != 1 {
		t.Fatalf("%d constructions, want 1", calls)
	}
	for i := 0; i < 2; i++ {
		if _, err := c.Get(context.Background(), "broken"); err == nil {
			t.Fatal("no error")
		}
	}
	if calls != 3 {
		t.Fatalf("failed constructions are cached: %d calls", calls)
	}
	c.Reset()
	c.Get(context.Background(), "offline")
	if calls != 4 {
		t.Fatalf("%d calls after Reset", calls)
	}
}
