package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/worker"
)

// scripted is a provider that answers from a script, to drive the task
// through every outcome (the real SDK paths are tested in llm/ against the
// fake LLM server).
type scripted struct {
	mu    sync.Mutex
	steps []step
	calls []llm.Request
}

type step struct {
	text string
	err  error
}

func (s *scripted) Name() string         { return "gemini" }
func (s *scripted) DefaultModel() string { return "gemini-2.0-flash" }
func (s *scripted) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, req)
	if len(s.steps) == 0 {
		return nil, errors.New("script exhausted")
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	if st.err != nil {
		return nil, st.err
	}
	return &llm.Response{Text: st.text, Usage: llm.Usage{Provider: "gemini", InputTokens: 100, OutputTokens: 50, Latency: time.Millisecond, Structured: req.Schema != nil}}, nil
}

func newQA(p llm.Provider, mutate func(*QAConfig)) *QA {
	cfg := QAConfig{
		Provider: func(_ context.Context, name string) (llm.Provider, error) {
			if name == "offline" {
				return llm.Offline{}, nil
			}
			if name != "gemini" && name != "openai" {
				return nil, errors.New("unknown provider")
			}
			return p, nil
		},
		Logger: zerolog.Nop(), Jitter: func() float64 { return 0.5 },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return NewQA(cfg)
}

func ctxRetries(n int) context.Context {
	return worker.WithRequest(context.Background(), &worker.Request{ID: "task-1", Retries: n})
}

const (
	chunkEN  = `{"id": "cc_news_1_chunk_0", "text": "Celery is a task queue. It distributes work because one machine is not enough. Workers are used to run tasks.", "tokens": 120, "type": "paragraph", "sentences": [], "doc_id": "cc_news_1", "doc_idx": 1, "chunk_idx": 0, "dataset_type": "cc_news"}`
	configEN = `{"name": "CC-News", "lang": "en", "qa_per_chunk": 5, "chunk_size": 300, "title_column": "title", "hf_config": null}`
	goodJSON = `{"qa_pairs": [{"question": "What is Celery?", "answer": "A task queue.", "question_type": "fact"}, {"question": "Why distribute?", "answer": "One machine is not enough.", "question_type": "reason"}]}`
)

func run(t *testing.T, q *QA, retries int, chunk, config string, model, provider *string) (QAResult, error) {
	t.Helper()
	return q.unified(ctxRetries(retries), UnifiedArgs{Chunk: json.RawMessage(chunk), Config: json.RawMessage(config), Model: model, Provider: provider})
}

func sp(s string) *string { return &s }

func TestPairsFor(t *testing.T) {
	// The Python worker's determine_qa_count.
	for _, tc := range []struct{ tokens, base, want int }{
		{10, 5, 4}, {49, 1, 1}, {50, 5, 5}, {150, 5, 5}, {151, 5, 6}, {400, 2, 3}, {0, 3, 2},
	} {
		if got := pairsFor(tc.tokens, tc.base); got != tc.want {
			t.Errorf("pairsFor(%d, %d) = %d, want %d", tc.tokens, tc.base, got, tc.want)
		}
	}
}

func TestSuccessContract(t *testing.T) {
	p := &scripted{steps: []step{{text: goodJSON}}}
	res, err := run(t, newQA(p, nil), 0, chunkEN, configEN, nil, sp("gemini"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(res)
	// Keys in the Python contract's order first.
	if !strings.HasPrefix(string(out), `{"success":true,"chunk_id":"cc_news_1_chunk_0","qa_pairs":[{"question":"What is Celery?","answer":"A task queue.","question_type":"fact","source_chunk_id":"cc_news_1_chunk_0","doc_id":"cc_news_1","dataset_type":"cc_news","chunk_idx":0,"provider":"gemini"},`) ||
		!strings.Contains(string(out), `"provider":"gemini","error":null,"model":"gemini-2.0-flash"`) {
		t.Fatalf("result %s", out)
	}
	if len(p.calls) != 1 {
		t.Fatalf("%d calls", len(p.calls))
	}
	c := p.calls[0]
	if c.Schema != llm.QASchema || !strings.Contains(c.System, "exactly 5 question-answer pairs") || !strings.Contains(c.Prompt, "Text:\nCelery is a task queue.") {
		t.Fatalf("request: schema %v system %q prompt %q", c.Schema, c.System, c.Prompt)
	}
	for _, w := range []string{"fact", "reason", "comparison", "application", "concise", "English"} {
		if !strings.Contains(c.System, w) {
			t.Errorf("system instruction lacks %q", w)
		}
	}
}

func TestJapanesePromptAndMergedChunkIdx(t *testing.T) {
	p := &scripted{steps: []step{{text: goodJSON}}}
	chunk := `{"id": "wiki_3_chunk_1", "text": "東京は日本の首都です。", "tokens": 30, "doc_id": "wiki_3", "dataset_type": "wikipedia_ja", "chunk_idx": "1-2", "merged": true}`
	res, err := run(t, newQA(p, nil), 0, chunk, `{"lang": "ja", "qa_per_chunk": 3}`, nil, nil)
	if err != nil || !res.Success {
		t.Fatalf("%+v %v", res, err)
	}
	if string(res.QAPairs[0].ChunkIdx) != `"1-2"` {
		t.Fatalf("chunk_idx %s", res.QAPairs[0].ChunkIdx)
	}
	c := p.calls[0]
	if !strings.Contains(c.System, "ちょうど2個") || !strings.Contains(c.Prompt, "本文:\n東京は日本の首都です。") || !strings.Contains(c.System, "日本語") {
		t.Fatalf("japanese prompt: %q / %q", c.System, c.Prompt)
	}
}

func TestBadInputFailsFastWithoutCalls(t *testing.T) {
	for name, tc := range map[string]struct{ chunk, config, want string }{
		"no text":          {`{"id": "c1"}`, configEN, `has no "text"`},
		"text not string":  {`{"id": "c1", "text": 5}`, configEN, "text must be a string, got a number"},
		"empty text":       {`{"id": "c1", "text": "  "}`, configEN, "text is empty"},
		"no id":            {`{"text": "x."}`, configEN, `has no "id"`},
		"chunk not object": {`["x"]`, configEN, "must be an object"},
		"tokens string":    {`{"id": "c1", "text": "x.", "tokens": "many"}`, configEN, "tokens must be a non-negative integer"},
		"no lang":          {chunkEN, `{"qa_per_chunk": 2}`, `config has no "lang"`},
		"lang number":      {chunkEN, `{"lang": 1}`, "lang must be a string"},
		"config list":      {chunkEN, `[]`, "config must be an object"},
		"bad qa_per_chunk": {chunkEN, `{"lang": "en", "qa_per_chunk": 0}`, "qa_per_chunk must be an integer"},
	} {
		p := &scripted{}
		res, err := run(t, newQA(p, nil), 0, tc.chunk, tc.config, nil, nil)
		if err != nil || res.Success || res.Error == nil || !strings.Contains(*res.Error, tc.want) {
			t.Errorf("%s: %+v %v", name, res, err)
		}
		if len(p.calls) != 0 {
			t.Errorf("%s: %d LLM calls for bad input", name, len(p.calls))
		}
		if res.QAPairs == nil {
			t.Errorf("%s: qa_pairs must be [] not null", name)
		}
	}
	res, _ := run(t, newQA(&scripted{}, nil), 0, `{"id": "c9", "text": 1}`, configEN, nil, nil)
	if res.ChunkID != "c9" {
		t.Errorf("the chunk id should still be reported: %q", res.ChunkID)
	}
	res, _ = run(t, newQA(&scripted{}, nil), 0, chunkEN, configEN, nil, sp("anthropic"))
	if res.Success || !strings.Contains(*res.Error, `provider "anthropic"`) {
		t.Errorf("unknown provider: %+v", res)
	}
}

func TestSilentFailuresAreRetried(t *testing.T) {
	for name, text := range map[string]string{
		"no qa_pairs":     `{"pairs": []}`,
		"empty list":      `{"qa_pairs": []}`,
		"empty answer":    `{"qa_pairs": [{"question": "Q?", "answer": " ", "question_type": "fact"}]}`,
		"not json at all": `I cannot help with that.`,
	} {
		// Structured and plain-text fallback both fail: a retry, not an
		// empty success.
		p := &scripted{steps: []step{{text: text}, {text: text}}}
		res, err := run(t, newQA(p, nil), 0, chunkEN, configEN, nil, nil)
		var r *worker.RetryError
		if !errors.As(err, &r) || res.Success {
			t.Errorf("%s: want a retry, got %+v %v", name, res, err)
			continue
		}
		if len(p.calls) != 2 || p.calls[1].Schema != nil {
			t.Errorf("%s: expected a plain-text fallback call", name)
		}
	}
}

func TestPlainTextFallback(t *testing.T) {
	unsupported := &llm.Error{Provider: "gemini", Kind: llm.KindUnsupported, Status: 400, Err: errors.New("responseSchema not supported")}
	p := &scripted{steps: []step{{err: unsupported}, {text: "Sure! Here they are:\n```json\n" + goodJSON + "\n```\nHope it helps {:}"}}}
	res, err := run(t, newQA(p, nil), 0, chunkEN, configEN, nil, nil)
	if err != nil || !res.Success || len(res.QAPairs) != 2 || res.Usage.Calls != 1 || res.Usage.Structured {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestRetryBackoffAndRetryAfter(t *testing.T) {
	transient := &llm.Error{Provider: "gemini", Kind: llm.KindTransient, Status: 500}
	for retries, want := range map[int]time.Duration{0: 2500 * time.Millisecond, 1: 4500 * time.Millisecond, 2: 8500 * time.Millisecond} {
		res, err := run(t, newQA(&scripted{steps: []step{{err: transient}}}, nil), retries, chunkEN, configEN, nil, nil)
		var r *worker.RetryError
		if !errors.As(err, &r) || r.Countdown != want || res.Success {
			t.Errorf("retry %d: countdown %v (want %v), %v", retries, r, want, err)
		}
	}
	// A 429 with Retry-After is retried no earlier than the provider said.
	limited := &llm.Error{Provider: "gemini", Kind: llm.KindRateLimited, Status: 429, RetryAfter: 40 * time.Second}
	_, err := run(t, newQA(&scripted{steps: []step{{err: limited}}}, nil), 0, chunkEN, configEN, nil, nil)
	var r *worker.RetryError
	if !errors.As(err, &r) || r.Countdown < 40*time.Second || r.Countdown > 41*time.Second {
		t.Fatalf("429: %v", err)
	}
	// Retries used up: the failed contract, state SUCCESS, with the error.
	res, err := run(t, newQA(&scripted{steps: []step{{err: limited}}}, nil), 3, chunkEN, configEN, nil, nil)
	if err != nil || res.Success || res.ChunkID != "cc_news_1_chunk_0" || len(res.QAPairs) != 0 || !strings.Contains(*res.Error, "rate limited") {
		t.Fatalf("exhausted: %+v %v", res, err)
	}
	// Permanent errors are not retried.
	perm := &llm.Error{Provider: "gemini", Kind: llm.KindPermanent, Status: 401, Err: errors.New("API key not valid")}
	res, err = run(t, newQA(&scripted{steps: []step{{err: perm}}}, nil), 0, chunkEN, configEN, nil, nil)
	if err != nil || res.Success {
		t.Fatalf("permanent: %+v %v", res, err)
	}
}

func TestModelAndProviderChoice(t *testing.T) {
	p := &scripted{steps: []step{{text: goodJSON}, {text: goodJSON}, {text: goodJSON}}}
	q := newQA(p, nil)
	run(t, q, 0, chunkEN, configEN, sp("gpt-4o-mini"), sp("gemini"))
	run(t, q, 0, chunkEN, configEN, sp("gemini-2.5-flash"), nil)
	run(t, q, 0, chunkEN, configEN, sp("gpt-4o"), sp("openai"))
	if p.calls[0].Model != "gemini-2.0-flash" || p.calls[1].Model != "gemini-2.5-flash" || p.calls[2].Model != "gpt-4o" {
		t.Fatalf("models %q %q %q", p.calls[0].Model, p.calls[1].Model, p.calls[2].Model)
	}
	// A worker forced to the offline provider labels its answers so.
	q = newQA(p, func(c *QAConfig) { c.ForceProvider = "offline" })
	res, err := run(t, q, 0, chunkEN, configEN, nil, sp("gemini"))
	if err != nil || !res.Success || res.Provider != llm.OfflineName || res.QAPairs[0].Provider != llm.OfflineName {
		t.Fatalf("offline: %+v %v", res, err)
	}
	if len(res.QAPairs) != 3 { // 3 sentences: at most one pair each
		t.Fatalf("offline pairs %d", len(res.QAPairs))
	}
	for _, pair := range res.QAPairs {
		if !strings.Contains(`Celery is a task queue. It distributes work because one machine is not enough. Workers are used to run tasks.`, pair.Answer) {
			t.Errorf("offline answer not quoted from the chunk: %q", pair.Answer)
		}
	}
}

func TestBatchAttribution(t *testing.T) {
	batchJSON := `{"qa_pairs": [{"chunk_index": 1, "question": "Q1?", "answer": "A1.", "question_type": "fact"}, {"chunk_index": 0, "question": "Q0?", "answer": "A0.", "question_type": "reason"}]}`
	chunks := `[{"id": "d_chunk_0", "text": "First text.", "tokens": 10, "doc_id": "d", "chunk_idx": 0}, {"id": "d_chunk_1", "text": "Second text.", "tokens": 200, "doc_id": "d", "chunk_idx": 1}]`
	p := &scripted{steps: []step{{text: batchJSON}}}
	q := newQA(p, nil)
	res, err := q.batch(ctxRetries(0), BatchArgs{Chunks: json.RawMessage(chunks), Config: json.RawMessage(configEN)})
	if err != nil || !res.Success || strings.Join(res.ChunkIDs, ",") != "d_chunk_0,d_chunk_1" {
		t.Fatalf("%+v %v", res, err)
	}
	if res.QAPairs[0].SourceChunkID != "d_chunk_1" || res.QAPairs[1].SourceChunkID != "d_chunk_0" {
		t.Fatalf("attribution %+v", res.QAPairs)
	}
	c := p.calls[0]
	if c.Schema != llm.BatchQASchema || !strings.Contains(c.Prompt, "[0] (4 pairs)") || !strings.Contains(c.Prompt, "[1] (6 pairs)") {
		t.Fatalf("batch prompt %q", c.Prompt)
	}
	// A pair naming no chunk of the request, or a chunk left without pairs,
	// is bad output (retried).
	for _, bad := range []string{
		`{"qa_pairs": [{"chunk_index": 5, "question": "Q?", "answer": "A.", "question_type": "fact"}]}`,
		`{"qa_pairs": [{"chunk_index": 0, "question": "Q?", "answer": "A.", "question_type": "fact"}]}`,
	} {
		p := &scripted{steps: []step{{text: bad}, {text: bad}}}
		_, err := newQA(p, nil).batch(ctxRetries(0), BatchArgs{Chunks: json.RawMessage(chunks), Config: json.RawMessage(configEN)})
		var r *worker.RetryError
		if !errors.As(err, &r) {
			t.Errorf("bad batch answer %s: %v", bad, err)
		}
	}
	res, _ = q.batch(ctxRetries(0), BatchArgs{Chunks: json.RawMessage(`[]`), Config: json.RawMessage(configEN)})
	if res.Success {
		t.Fatal("empty batch accepted")
	}
}
