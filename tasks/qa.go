package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/ratelimit"
	"github.com/qagen/qagen/worker"
)

// Task names of the Python system (celery_tasks.py), kept so producers
// cannot tell a Go worker from a Python one.
const (
	TaskUnified = "celery_tasks.generate_qa_unified_async"
	TaskChunk   = "celery_tasks.generate_qa_for_chunk_async"
	TaskBatch   = "celery_tasks.generate_qa_for_batch_async"
)

// QAConfig configures the Q&A tasks.
type QAConfig struct {
	// Provider returns the provider of a name ("gemini", "openai",
	// "offline"); an llm.Cache's Get in production.
	Provider func(ctx context.Context, name string) (llm.Provider, error)
	// DefaultProvider is used when a task names none (LLM_PROVIDER, else
	// "gemini").
	DefaultProvider string
	// ForceProvider, when set, replaces whatever provider tasks name (a
	// worker pinned to one provider, or the offline demo).
	ForceProvider string
	// MaxRetries is how often a chunk is retried (3, as in Python).
	MaxRetries int
	// BaseDelay scales the exponential backoff: retry r waits
	// BaseDelay·2^r plus up to a second of jitter (Python: 2^r·2 s + U(0,1)).
	BaseDelay time.Duration
	Logger    zerolog.Logger
	// Jitter returns a value in [0, 1); injectable for tests.
	Jitter func() float64
	// Limiter paces LLM calls with the fleet's budget; nil for none.
	Limiter *ratelimit.Limiter
}

func (c *QAConfig) setDefaults() {
	if c.DefaultProvider == "" {
		c.DefaultProvider = "gemini"
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = 2 * time.Second
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
}

// QA holds the bodies of the Q&A tasks. Workers register them
// (Register); the producer runs them in-process (Chunk, Batch), with the
// retry count in the context's worker.Request.
type QA struct{ cfg QAConfig }

// NewQA returns the Q&A tasks with cfg.
func NewQA(cfg QAConfig) *QA {
	cfg.setDefaults()
	return &QA{cfg: cfg}
}

// RegisterQA adds the Q&A tasks to a worker's registry.
func RegisterQA(reg *worker.Registry, cfg QAConfig) { NewQA(cfg).Register(reg) }

// Register adds the Q&A tasks to a worker's registry.
func (q *QA) Register(reg *worker.Registry) {
	// The task manages its own retry budget: when it is used up it returns
	// {"success": false, ...} (state SUCCESS), the Python contract.
	opts := []worker.TaskOption{worker.WithMaxRetries(-1)}
	worker.Register(reg, TaskUnified, q.unified, opts...)
	worker.Register(reg, TaskChunk, q.chunk, opts...)
	worker.Register(reg, TaskBatch, q.batch, opts...)
}

// Chunk runs generate_qa_unified_async on one chunk dict. A
// *worker.RetryError asks for another attempt after its countdown.
func (q *QA) Chunk(ctx context.Context, chunk, config json.RawMessage, model, provider string) (QAResult, error) {
	return q.runSingle(ctx, chunk, config, model, provider)
}

// Batch runs generate_qa_for_batch_async on a JSON list of chunk dicts, in
// one LLM request.
func (q *QA) Batch(ctx context.Context, chunks, config json.RawMessage, model, provider string) (QAResult, error) {
	return q.runBatch(ctx, chunks, config, model, provider)
}

// UnifiedArgs are generate_qa_unified_async(chunk_data, config, model=None, provider=None).
type UnifiedArgs struct {
	Chunk    json.RawMessage `celery:"chunk_data"`
	Config   json.RawMessage `celery:"config"`
	Model    *string         `celery:"model,optional"`
	Provider *string         `celery:"provider,optional"`
}

// ChunkArgs are generate_qa_for_chunk_async(chunk_data, config, model="gemini-2.0-flash").
type ChunkArgs struct {
	Chunk  json.RawMessage `celery:"chunk_data"`
	Config json.RawMessage `celery:"config"`
	Model  *string         `celery:"model,optional"`
}

// BatchArgs are generate_qa_for_batch_async(chunks, config,
// model="gemini-2.0-flash"), plus an optional provider (Python's task has
// none and uses Gemini; qagen's producer sends one only when it differs).
type BatchArgs struct {
	Chunks   json.RawMessage `celery:"chunks"`
	Config   json.RawMessage `celery:"config"`
	Model    *string         `celery:"model,optional"`
	Provider *string         `celery:"provider,optional"`
}

// QAPair is one pair in a task result, with the keys collectors read.
type QAPair struct {
	Question      string          `json:"question"`
	Answer        string          `json:"answer"`
	QuestionType  string          `json:"question_type"`
	SourceChunkID string          `json:"source_chunk_id"`
	DocID         any             `json:"doc_id"`
	DatasetType   any             `json:"dataset_type"`
	ChunkIdx      json.RawMessage `json:"chunk_idx"`
	Provider      string          `json:"provider"`
}

// QAResult is the task's return value: the Python contract's keys first,
// in its order, then model and usage (extra keys collectors ignore). A
// single-chunk result always has "chunk_id" (null when the chunk had no
// id), a batch result "chunk_ids".
type QAResult struct {
	Success  bool     `json:"success"`
	ChunkID  string   `json:"chunk_id,omitempty"`
	ChunkIDs []string `json:"chunk_ids,omitempty"`
	QAPairs  []QAPair `json:"qa_pairs"`
	Provider string   `json:"provider"`
	Error    *string  `json:"error"`
	Model    string   `json:"model,omitempty"`
	Usage    *Usage   `json:"usage,omitempty"`
	// Batch selects the chunk_ids key; not serialised itself.
	Batch bool `json:"-"`
}

// MarshalJSON writes the contract's key order with exactly one of
// chunk_id and chunk_ids.
func (r QAResult) MarshalJSON() ([]byte, error) {
	type single struct {
		Success  bool     `json:"success"`
		ChunkID  *string  `json:"chunk_id"`
		QAPairs  []QAPair `json:"qa_pairs"`
		Provider string   `json:"provider"`
		Error    *string  `json:"error"`
		Model    string   `json:"model,omitempty"`
		Usage    *Usage   `json:"usage,omitempty"`
	}
	type batch struct {
		Success  bool     `json:"success"`
		ChunkIDs []string `json:"chunk_ids"`
		QAPairs  []QAPair `json:"qa_pairs"`
		Provider string   `json:"provider"`
		Error    *string  `json:"error"`
		Model    string   `json:"model,omitempty"`
		Usage    *Usage   `json:"usage,omitempty"`
	}
	pairs := r.QAPairs
	if pairs == nil {
		pairs = []QAPair{}
	}
	if r.Batch {
		ids := r.ChunkIDs
		if ids == nil {
			ids = []string{}
		}
		return json.Marshal(batch{r.Success, ids, pairs, r.Provider, r.Error, r.Model, r.Usage})
	}
	var id *string
	if r.ChunkID != "" {
		id = &r.ChunkID
	}
	return json.Marshal(single{r.Success, id, pairs, r.Provider, r.Error, r.Model, r.Usage})
}

// Usage is what the LLM calls of one task run cost.
type Usage struct {
	Calls        int     `json:"calls"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	LatencyMS    float64 `json:"latency_ms"`
	Structured   bool    `json:"structured"`
}

func (u *Usage) add(x llm.Usage) {
	u.Calls++
	u.InputTokens += x.InputTokens
	u.OutputTokens += x.OutputTokens
	u.LatencyMS += float64(x.Latency.Microseconds()) / 1000
	u.Structured = x.Structured
}

func (q *QA) unified(ctx context.Context, a UnifiedArgs) (QAResult, error) {
	return q.runSingle(ctx, a.Chunk, a.Config, deref(a.Model), deref(a.Provider))
}

// chunk is the legacy task: Gemini, as the Python delegate hard-codes.
func (q *QA) chunk(ctx context.Context, a ChunkArgs) (QAResult, error) {
	return q.runSingle(ctx, a.Chunk, a.Config, deref(a.Model), "gemini")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// job is one LLM request: one chunk, or several in a batch.
type job struct {
	chunks   []chunkInput
	counts   []int
	config   configInput
	provider llm.Provider
	name     string // provider label in results
	model    string
}

func (q *QA) runSingle(ctx context.Context, chunkRaw, configRaw json.RawMessage, model, provider string) (QAResult, error) {
	c, err := parseChunk(chunkRaw, "chunk_data")
	if err != nil {
		return q.failed(ctx, []string{chunkIDOf(chunkRaw)}, false, q.providerLabel(provider), err), nil
	}
	j, err := q.prepare(ctx, []chunkInput{c}, configRaw, model, provider)
	if err != nil {
		return q.failed(ctx, []string{c.ID}, false, q.providerLabel(provider), err), nil
	}
	return q.execute(ctx, j, false)
}

func (q *QA) batch(ctx context.Context, a BatchArgs) (QAResult, error) {
	provider := deref(a.Provider)
	if provider == "" {
		provider = "gemini"
	}
	return q.runBatch(ctx, a.Chunks, a.Config, deref(a.Model), provider)
}

func (q *QA) runBatch(ctx context.Context, chunksRaw, configRaw json.RawMessage, model, provider string) (QAResult, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(chunksRaw, &raws); err != nil || len(raws) == 0 {
		err := inputError("chunks must be a non-empty list of chunk dicts, got %s", jsonKind(chunksRaw))
		return q.failed(ctx, nil, true, q.providerLabel(provider), err), nil
	}
	chunks := make([]chunkInput, 0, len(raws))
	ids := make([]string, 0, len(raws))
	for i, raw := range raws {
		c, err := parseChunk(raw, fmt.Sprintf("chunks[%d]", i))
		if err != nil {
			ids = ids[:0]
			for _, r := range raws {
				ids = append(ids, chunkIDOf(r))
			}
			return q.failed(ctx, ids, true, q.providerLabel(provider), err), nil
		}
		chunks = append(chunks, c)
		ids = append(ids, c.ID)
	}
	j, err := q.prepare(ctx, chunks, configRaw, model, provider)
	if err != nil {
		return q.failed(ctx, ids, true, q.providerLabel(provider), err), nil
	}
	return q.execute(ctx, j, true)
}

// providerName is the provider a task uses: the worker's forced one, else
// the task's argument, else the default.
func (q *QA) providerName(asked string) string {
	switch {
	case q.cfg.ForceProvider != "":
		return q.cfg.ForceProvider
	case asked != "":
		return strings.ToLower(strings.TrimSpace(asked))
	}
	return q.cfg.DefaultProvider
}

// providerLabel is the provider a result names, also when no provider
// could be built (offline answers say so: offline-extractive).
func (q *QA) providerLabel(asked string) string {
	if name := q.providerName(asked); name != "offline" {
		return name
	}
	return llm.OfflineName
}

// prepare validates the config and resolves provider and model; every
// error here is permanent.
func (q *QA) prepare(ctx context.Context, chunks []chunkInput, configRaw json.RawMessage, model, provider string) (*job, error) {
	cfg, err := parseConfig(configRaw)
	if err != nil {
		return nil, err
	}
	name := q.providerName(provider)
	p, err := q.cfg.Provider(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("%w: provider %q: %v", errInput, name, err)
	}
	if model != "" && name == "gemini" && llm.IsOpenAIModel(model) {
		q.cfg.Logger.Warn().Str("model", model).Str("using", p.DefaultModel()).
			Msg("an OpenAI model name was sent with provider gemini; using the Gemini default")
		model = ""
	}
	if model == "" || p.Name() == llm.OfflineName {
		model = p.DefaultModel() // the offline provider has one model
	}
	return &job{chunks: chunks, counts: pairCounts(chunks, cfg), config: cfg, provider: p, name: p.Name(), model: model}, nil
}

// pairCounts is how many pairs each chunk asks for.
func pairCounts(chunks []chunkInput, cfg configInput) []int {
	counts := make([]int, len(chunks))
	for i, c := range chunks {
		counts[i] = pairsFor(c.Tokens, cfg.QAPerChunk)
	}
	return counts
}

// key is the rate-limit budget the job's calls spend.
func (j *job) key() ratelimit.Key { return ratelimit.Key{Provider: j.name, Model: j.model} }

// execute makes the LLM call(s) and turns the outcome into the task's
// result, a retry, or — once retries are used up — the failed contract.
func (q *QA) execute(ctx context.Context, j *job, batch bool) (QAResult, error) {
	ids := make([]string, len(j.chunks))
	for i, c := range j.chunks {
		ids[i] = c.ID
	}
	var usage Usage
	pairs, err := q.generate(ctx, j, batch, &usage)
	req := worker.RequestFrom(ctx)
	log := q.cfg.Logger.With().Str("task_id", req.ID).Strs("chunks", ids).Str("provider", j.name).Str("model", j.model).Logger()
	if err == nil {
		log.Debug().Int("pairs", len(pairs)).Int("calls", usage.Calls).Int("input_tokens", usage.InputTokens).
			Int("output_tokens", usage.OutputTokens).Float64("latency_ms", usage.LatencyMS).Msg("Q&A generated")
		res := QAResult{Success: true, QAPairs: pairs, Provider: j.name, Model: j.model, Usage: &usage, Batch: batch}
		if batch {
			res.ChunkIDs = ids
		} else {
			res.ChunkID = ids[0]
		}
		return res, nil
	}
	if w, ok := ratelimit.IsWait(err); ok {
		// No budget left for a while: give the slot back and come back
		// when there is, without spending a retry.
		log.Debug().Dur("in", w.Wait).Str("limit", w.Key.String()).Msg("rate limit: task snoozed")
		// The wait is this task's turn in the fleet's waiting line.
		return QAResult{}, worker.Snooze(w.Wait + time.Duration(q.cfg.Jitter()*float64(200*time.Millisecond)))
	}
	kind := llm.KindOf(err)
	if kind == llm.KindRateLimited {
		// The provider pushed back: pause the whole fleet on this model,
		// not just this task.
		pause := llm.RetryAfter(err)
		if pause <= 0 {
			pause = 2 * time.Second
		}
		q.cfg.Limiter.Cooldown(ctx, j.key(), pause)
	}
	if kind == llm.KindPermanent || req.Retries >= q.cfg.MaxRetries {
		log.Error().Err(err).Int("retries", req.Retries).Str("kind", kind.String()).Msg("Q&A generation failed; giving up on these chunks")
		res := q.failed(ctx, ids, batch, j.name, err)
		res.Model, res.Usage = j.model, &usage
		return res, nil
	}
	delay := q.backoff(req.Retries)
	if ra := llm.RetryAfter(err); ra > delay {
		delay = ra + time.Duration(q.cfg.Jitter()*float64(time.Second))
	}
	log.Warn().Err(err).Int("retry", req.Retries+1).Dur("in", delay).Str("kind", kind.String()).Msg("Q&A generation failed; will retry")
	return QAResult{}, worker.Retry(err, worker.Countdown(delay))
}

// backoff is BaseDelay·2^retries plus up to a second of jitter.
func (q *QA) backoff(retries int) time.Duration {
	return q.cfg.BaseDelay*time.Duration(1<<min(retries, 10)) + time.Duration(q.cfg.Jitter()*float64(time.Second))
}

// failed is the contract's result for chunks given up on.
func (q *QA) failed(ctx context.Context, ids []string, batch bool, provider string, err error) QAResult {
	msg := err.Error()
	if errors.Is(err, errInput) {
		id := ""
		if r := worker.RequestFrom(ctx); r != nil {
			id = r.ID
		}
		q.cfg.Logger.Error().Str("task_id", id).Strs("chunks", ids).Err(err).Msg("invalid task input; no LLM call made")
	}
	res := QAResult{Success: false, QAPairs: []QAPair{}, Provider: provider, Error: &msg, Batch: batch}
	if batch {
		res.ChunkIDs = ids
	} else if len(ids) > 0 {
		res.ChunkID = ids[0]
	}
	return res
}

// chunkIDOf reads an id from a chunk dict that failed validation.
func chunkIDOf(raw json.RawMessage) string {
	var c struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &c) == nil && c.ID != nil {
		return fmt.Sprint(c.ID)
	}
	return ""
}

// request builds the LLM request of a job: one chunk, or several in one
// batch prompt.
func request(chunks []chunkInput, counts []int, lang, model string, batch bool) llm.Request {
	texts := make([]string, len(chunks))
	source := make([]llm.SourceChunk, len(chunks))
	for i, c := range chunks {
		texts[i] = c.Text
		source[i] = llm.SourceChunk{ID: c.ID, Text: c.Text, Pairs: counts[i]}
	}
	var req llm.Request
	if batch {
		req.System, req.Prompt = batchPrompt(lang, texts, counts)
		req.Schema = llm.BatchQASchema
	} else {
		req.System, req.Prompt = singlePrompt(lang, texts[0], counts[0])
		req.Schema = llm.QASchema
	}
	req.Model, req.Source, req.Pairs, req.Lang = model, source, counts[0], lang
	return req
}

// EstimateTokens is what the rate limiter budgets for the request of one
// task over chunks (a batch when there are several) with a dataset
// config: the prompt's tokens plus the expected answer. The plan of
// qagen generate adds them up before anything is sent.
func EstimateTokens(chunks []json.RawMessage, config json.RawMessage) (int, error) {
	cfg, err := parseConfig(config)
	if err != nil {
		return 0, err
	}
	if len(chunks) == 0 {
		return 0, inputError("no chunks")
	}
	in := make([]chunkInput, len(chunks))
	for i, raw := range chunks {
		if in[i], err = parseChunk(raw, fmt.Sprintf("chunks[%d]", i)); err != nil {
			return 0, err
		}
	}
	return expectedTokens(request(in, pairCounts(in, cfg), cfg.Lang, "", len(in) > 1)), nil
}

// generate asks for structured output and, when the provider rejects it or
// the answer does not parse, asks again in plain text and extracts the JSON
// (the Python worker's fallback).
func (q *QA) generate(ctx context.Context, j *job, batch bool, usage *Usage) ([]QAPair, error) {
	req := request(j.chunks, j.counts, j.config.Lang, j.model, batch)
	pairs, err := q.call(ctx, j, req, batch, usage)
	if err == nil {
		return pairs, nil
	}
	if k := llm.KindOf(err); k != llm.KindUnsupported && k != llm.KindBadOutput {
		return nil, err
	}
	q.cfg.Logger.Info().Err(err).Str("provider", j.name).Msg("structured output failed; asking again in plain text")
	req.Schema = nil
	plain, perr := q.call(ctx, j, req, batch, usage)
	if perr != nil {
		return nil, perr
	}
	return plain, nil
}

func (q *QA) call(ctx context.Context, j *job, req llm.Request, batch bool, usage *Usage) ([]QAPair, error) {
	var ticket ratelimit.Ticket
	if j.name != llm.OfflineName {
		var err error
		ticket, err = q.cfg.Limiter.Acquire(ctx, j.key(), expectedTokens(req))
		if err != nil {
			return nil, err
		}
	}
	resp, err := j.provider.Generate(ctx, req)
	if err != nil {
		return nil, err
	}
	q.cfg.Limiter.Done(ctx, ticket, resp.Usage.InputTokens+resp.Usage.OutputTokens)
	usage.add(resp.Usage)
	raw := json.RawMessage(resp.Text)
	if req.Schema == nil || !json.Valid(raw) {
		if raw, err = llm.ExtractJSONObject(resp.Text); err != nil {
			return nil, &llm.Error{Provider: j.name, Kind: llm.KindBadOutput, Err: err}
		}
	}
	got, err := llm.ParseQAPairs(raw)
	if err != nil {
		return nil, &llm.Error{Provider: j.name, Kind: llm.KindBadOutput, Err: err}
	}
	return q.attribute(j, got, batch)
}

// attribute turns model pairs into result pairs with their chunk's ids;
// in a batch, a pair must name a chunk of the request.
func (q *QA) attribute(j *job, got []llm.QAPair, batch bool) ([]QAPair, error) {
	out := make([]QAPair, 0, len(got))
	covered := make([]bool, len(j.chunks))
	for _, p := range got {
		i := 0
		if batch {
			if p.ChunkIndex == nil || *p.ChunkIndex < 0 || *p.ChunkIndex >= len(j.chunks) {
				return nil, &llm.Error{Provider: j.name, Kind: llm.KindBadOutput,
					Err: fmt.Errorf("%w: a pair names no chunk of the request (chunk_index %v)", llm.ErrBadPairs, p.ChunkIndex)}
			}
			i = *p.ChunkIndex
		}
		covered[i] = true
		c := j.chunks[i]
		out = append(out, QAPair{Question: p.Question, Answer: p.Answer, QuestionType: p.QuestionType,
			SourceChunkID: c.ID, DocID: c.DocID, DatasetType: c.DatasetType, ChunkIdx: c.ChunkIdx, Provider: j.name})
	}
	for i, ok := range covered {
		if !ok {
			return nil, &llm.Error{Provider: j.name, Kind: llm.KindBadOutput,
				Err: fmt.Errorf("%w: no pairs for chunk %s", llm.ErrBadPairs, j.chunks[i].ID)}
		}
	}
	return out, nil
}

// expectedTokens is what a call is budgeted at: its prompt, plus about 80
// tokens per requested pair for the answer. The real use corrects it
// afterwards (Limiter.Done).
func expectedTokens(req llm.Request) int {
	pairs := 0
	for _, s := range req.Source {
		pairs += max(s.Pairs, 1)
	}
	return llm.EstimateTokens(req.System) + llm.EstimateTokens(req.Prompt) + 80*max(pairs, req.Pairs)
}
