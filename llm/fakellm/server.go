// Package fakellm is a local stand-in for the LLM APIs qagen calls: enough
// of Gemini's generateContent and OpenAI's chat completions for the real
// SDKs (google.golang.org/genai, github.com/sashabaranov/go-openai), with
// answers built from the prompt text, token usage, latency, enforced
// request and token rate limits, and injected failures. It serves load
// tests, demos and Go tests (New returns an http.Handler for httptest).
//
// Answers. The server reads the Q&A prompt leniently: the number of pairs
// from the first "N question-answer pairs" / "N pairs" / "N個" phrase of the
// user prompt (else of the system instruction, else DefaultPairs), and the
// source text after a "Text:" / "本文:" heading line (else the whole user
// prompt). A request whose response schema has a chunk_index property (or,
// without a schema, whose prompts mention chunk_index) is a batch: its
// user prompt has numbered sections "[0] (2 pairs)" / "[0]（2個）", each with
// its own count and text, and every pair carries its section's number in
// chunk_index. Pairs come from llm.ExtractivePairs, so they are
// deterministic. A request for structured output (a response schema,
// responseMimeType application/json, or an OpenAI response_format) is
// answered with the bare JSON object {"qa_pairs": [...]}; a plain-text
// request with prose around a fenced JSON block, which exercises the
// callers' plain-text fallback.
//
// Tokens. Usage counts are estimates (see Tokens): one token per CJK
// character plus one per 4 other bytes. A request's max output tokens
// (maxOutputTokens, max_tokens, max_completion_tokens) cut the answer
// short, with finish reason MAX_TOKENS / length.
//
// Limits. RPM and TPM are enforced over a sliding 60-second window (the
// clock is Config.Now). A request is admitted when fewer than RPM requests
// were admitted in the window and the tokens of the window plus the
// request's input tokens fit in TPM (an admitted request then counts its
// input and output tokens). Refused requests get 429 with a Retry-After
// header (whole seconds, rounded up) saying when the window will have
// room; Gemini's body has status RESOURCE_EXHAUSTED and a
// google.rpc.RetryInfo detail with the exact delay, OpenAI's body is
// {"error": {"message", "type", "code"}} whose message ends "Please try
// again in Ns." (Config.RetryAfterIn chooses header, body or both.)
//
// Embeddings. Gemini's batchEmbedContents and embedContent and OpenAI's
// embeddings endpoint answer with llm.HashEmbedding of each text (the
// offline embedder's vectors, so similar texts get similar vectors) in
// the requested dimensions, else the model's usual size (3072 for
// gemini-embedding-*, 1536 for text-embedding-3-small, 768 otherwise).
// They are counted apart (Stats.EmbedRequests, EmbeddedTexts), go through
// the same key check, rate limits and latency, and take the faults that
// make sense for them: 429, 500 and timeout as for generation, malformed
// (a body cut off) and empty (no vectors).
//
// Faults. Config.Faults gives each fault an independent probability; every
// request draws all of them (the first hit, in AllFaults order, wins), so
// with a fixed Seed a sequence of requests fails the same way each run.
package fakellm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/llm"
)

// window is the span of the rate limits.
const window = time.Minute

// Config configures a Server. The zero value answers every request at once,
// without limits or faults.
type Config struct {
	// Latency delays every admitted answer.
	Latency Latency
	// RPM and TPM limit requests and tokens per sliding minute (0: no
	// limit).
	RPM, TPM int
	// Faults are independent per-request probabilities of each fault.
	Faults map[Fault]float64
	// HangFor is how long a FaultTimeout request hangs before a 504; 0
	// hangs until the client gives up or Close is called.
	HangFor time.Duration
	// InjectedWait is the wait a FaultRateLimit 429 asks for (default 1s).
	InjectedWait time.Duration
	// RetryAfterIn says where a 429 tells the wait: "both" (default),
	// "header" (Retry-After only) or "body" (Gemini's RetryInfo detail,
	// OpenAI's "try again in" message).
	RetryAfterIn string
	// APIKey, when set, is the only key accepted (401 otherwise; the
	// message quotes the key sent, as some gateways do, so clients' error
	// redaction gets exercised). Empty accepts any key.
	APIKey string
	// Seed seeds the fault and latency draws.
	Seed uint64
	// Now is the clock of the rate limits (default time.Now).
	Now func() time.Time
	// Logger logs each request at debug level (default: no logging).
	Logger *zerolog.Logger
}

// Stats are the server's counters, served as JSON by GET /stats.
type Stats struct {
	// Requests counts requests by API ("gemini", "openai").
	Requests map[string]int64 `json:"requests"`
	// RateLimited counts 429 answers (limits and injected).
	RateLimited int64 `json:"rate_limited"`
	// Errors counts failures by kind: the faults (500, timeout, schema,
	// malformed, empty) and unauthorized, bad_request, not_found.
	Errors map[string]int64 `json:"errors"`
	// Answers counts 200 answers (including malformed and empty ones);
	// Structured and Plain split them by what was asked for.
	Answers    int64 `json:"answers"`
	Structured int64 `json:"structured"`
	Plain      int64 `json:"plain"`
	// Truncated counts answers cut at the request's max output tokens.
	Truncated int64 `json:"truncated"`
	// InputTokens and OutputTokens sum the usage reported in answers.
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	// Pairs counts the pairs served in complete answers.
	Pairs int64 `json:"pairs"`
	// EmbedRequests counts embedding requests by API (they are not in
	// Requests); EmbeddedTexts the texts given a vector in complete
	// answers; EmbedInputTokens their estimated tokens. Their failures are
	// in RateLimited and Errors.
	EmbedRequests    map[string]int64 `json:"embed_requests"`
	EmbeddedTexts    int64            `json:"embedded_texts"`
	EmbedInputTokens int64            `json:"embed_input_tokens"`
}

type windowEntry struct {
	t      time.Time
	tokens int
}

// Server is the fake LLM API. It is an http.Handler.
type Server struct {
	cfg    Config
	log    zerolog.Logger
	mux    *http.ServeMux
	closed chan struct{}
	once   sync.Once
	seq    atomic.Int64

	mu  sync.Mutex
	rng *rand.Rand
	// win holds the requests admitted in the last window, oldest first:
	// win[i] is admission number winBase+i. winTokens sums their tokens,
	// so admitting a request does not add up the whole window.
	win       []windowEntry
	winBase   int64
	winTokens int
	stats     Stats
	faults    map[Fault]float64
}

// New returns a server.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.InjectedWait <= 0 {
		cfg.InjectedWait = time.Second
	}
	if cfg.RetryAfterIn == "" {
		cfg.RetryAfterIn = "both"
	}
	s := &Server{
		cfg:    cfg,
		log:    zerolog.Nop(),
		mux:    http.NewServeMux(),
		closed: make(chan struct{}),
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		stats:  Stats{Requests: map[string]int64{}, Errors: map[string]int64{}, EmbedRequests: map[string]int64{}},
		faults: map[Fault]float64{},
	}
	for f, p := range cfg.Faults {
		s.faults[f] = p
	}
	if cfg.Logger != nil {
		s.log = *cfg.Logger
	}
	s.mux.HandleFunc("POST /{version}/models/{model}", s.handleGemini)
	s.mux.HandleFunc("POST /v1/chat/completions", s.handleOpenAI)
	s.mux.HandleFunc("POST /chat/completions", s.handleOpenAI)
	s.mux.HandleFunc("POST /v1/embeddings", s.handleOpenAIEmbed)
	s.mux.HandleFunc("POST /embeddings", s.handleOpenAIEmbed)
	s.mux.HandleFunc("GET /stats", s.handleStats)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close releases hanging requests (they answer 503); call it before
// shutting the HTTP server down.
func (s *Server) Close() { s.once.Do(func() { close(s.closed) }) }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Requests = copyMap(s.stats.Requests)
	st.Errors = copyMap(s.stats.Errors)
	st.EmbedRequests = copyMap(s.stats.EmbedRequests)
	return st
}

func copyMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Stats())
}

// call is one generation request, whatever the API.
type call struct {
	id         int64
	model      string
	system     string
	prompt     string
	structured bool
	schema     any
	maxTokens  int
	// embed marks an embedding request.
	embed bool
}

// batch says whether the answer needs chunk_index.
func (c *call) batch() bool {
	if c.schema != nil {
		return hasChunkIndex(c.schema)
	}
	return strings.Contains(c.system, "chunk_index") || strings.Contains(c.prompt, "chunk_index")
}

// answer is a successful (HTTP 200) answer.
type answer struct {
	text      string
	truncated bool
	in, out   int
}

type failKind int

const (
	failBadRequest failKind = iota
	failUnauthorized
	failNotFound
	failRateLimited
	failServer
	failTimeout
	failSchema
	failClosed
)

// failure is an error answer.
type failure struct {
	kind failKind
	msg  string
	// wait is a 429's Retry-After; limit names the exhausted limit
	// ("requests", "tokens", "quota").
	wait  time.Duration
	limit string
}

// dialect reads one API's key and writes its answers.
type dialect interface {
	name() string
	key(r *http.Request) string
	fail(w http.ResponseWriter, f failure, retryIn string)
	ok(w http.ResponseWriter, c *call, a answer)
}

// serve runs one generation request: auth, limits, faults, latency,
// answer.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, d dialect, c *call) {
	in := Tokens(c.system) + Tokens(c.prompt)
	ticket, fault, ev, ok := s.gate(w, r, d, c, in)
	if !ok {
		return
	}
	pairs := pairsFor(c.system, c.prompt, c.batch())
	text := render(pairs, c.structured)
	complete := true
	switch fault {
	case FaultMalformed:
		text = text[:cutPoint(text)]
		complete = false
		s.countError(string(FaultMalformed))
	case FaultEmpty:
		text = ""
		complete = false
		s.countError(string(FaultEmpty))
	}
	out := Tokens(text)
	a := answer{text: text, in: in, out: out}
	if c.maxTokens > 0 && out > c.maxTokens {
		a.text = llm.TruncateTokens(text, c.maxTokens)
		a.out = Tokens(a.text)
		a.truncated = true
		complete = false
	}
	s.mu.Lock()
	s.addTokens(ticket, a.out)
	s.stats.Answers++
	if c.structured {
		s.stats.Structured++
	} else {
		s.stats.Plain++
	}
	if a.truncated {
		s.stats.Truncated++
	}
	s.stats.InputTokens += int64(a.in)
	s.stats.OutputTokens += int64(a.out)
	if complete {
		s.stats.Pairs += int64(len(pairs))
	}
	s.mu.Unlock()
	d.ok(w, c, a)
	what := "ok"
	if fault != "" {
		what = "injected " + string(fault)
	} else if a.truncated {
		what = "truncated"
	}
	ev(http.StatusOK, what)
}

// gate is what every request goes through before its answer: the API
// key, the rate limits (in input tokens), the injected 429s, timeouts,
// 500s and schema rejections, and the latency. When it has answered the
// request itself it returns ok false; otherwise the request's admission
// number (see addTokens), the fault left for the answer (malformed, empty,
// or none) and the request's log function.
func (s *Server) gate(w http.ResponseWriter, r *http.Request, d dialect, c *call, in int) (int64, Fault, func(int, string), bool) {
	start := time.Now()
	c.id = s.seq.Add(1)
	kind := "request"
	if c.embed {
		kind = "embed request"
	}
	ev := func(status int, what string) {
		s.log.Debug().Str("api", d.name()).Int64("id", c.id).Str("model", c.model).Int("status", status).
			Str("result", what).Bool("structured", c.structured).Dur("took", time.Since(start)).Msg(kind)
	}
	if key := d.key(r); s.cfg.APIKey != "" && key != s.cfg.APIKey {
		s.countError("unauthorized")
		d.fail(w, failure{kind: failUnauthorized, msg: "API key not valid: " + key}, s.cfg.RetryAfterIn)
		ev(http.StatusUnauthorized, "unauthorized")
		return 0, "", ev, false
	}

	s.mu.Lock()
	ticket, wait, limit := s.admit(s.cfg.Now(), in)
	var fault Fault
	var delay time.Duration
	if limit == "" {
		fault = roll(s.rng, s.faults, c.structured)
		delay = s.cfg.Latency.draw(s.rng.Float64())
	} else {
		s.stats.RateLimited++
	}
	if fault == FaultRateLimit {
		s.stats.RateLimited++
	}
	s.mu.Unlock()

	if limit != "" {
		d.fail(w, failure{kind: failRateLimited, wait: wait, limit: limit,
			msg: fmt.Sprintf("rate limit exceeded: %s per minute", limit)}, s.cfg.RetryAfterIn)
		ev(http.StatusTooManyRequests, "rate limited ("+limit+")")
		return 0, "", ev, false
	}
	switch fault {
	case FaultRateLimit:
		d.fail(w, failure{kind: failRateLimited, wait: s.cfg.InjectedWait, limit: "quota", msg: "quota exhausted (injected)"}, s.cfg.RetryAfterIn)
		ev(http.StatusTooManyRequests, "injected 429")
		return 0, "", ev, false
	case FaultTimeout:
		s.countError(string(FaultTimeout))
		if !s.wait(r.Context(), s.cfg.HangFor, s.cfg.HangFor <= 0) {
			s.closedAnswer(w, d)
			ev(0, "timeout: client gone")
			return 0, "", ev, false
		}
		d.fail(w, failure{kind: failTimeout, msg: "deadline exceeded while generating (injected timeout)"}, s.cfg.RetryAfterIn)
		ev(http.StatusGatewayTimeout, "timeout")
		return 0, "", ev, false
	}
	if !s.wait(r.Context(), delay, false) {
		s.closedAnswer(w, d)
		ev(0, "client gone")
		return 0, "", ev, false
	}
	switch fault {
	case FaultServerError:
		s.countError(string(FaultServerError))
		d.fail(w, failure{kind: failServer, msg: "internal error (injected)"}, s.cfg.RetryAfterIn)
		ev(http.StatusInternalServerError, "injected 500")
		return 0, "", ev, false
	case FaultSchema:
		s.countError(string(FaultSchema))
		d.fail(w, failure{kind: failSchema}, s.cfg.RetryAfterIn)
		ev(http.StatusBadRequest, "injected schema rejection")
		return 0, "", ev, false
	}
	return ticket, fault, ev, true
}

func (s *Server) countRequest(api string) {
	s.mu.Lock()
	s.stats.Requests[api]++
	s.mu.Unlock()
}

func (s *Server) countError(kind string) {
	s.mu.Lock()
	s.stats.Errors[kind]++
	s.mu.Unlock()
}

// badRequest answers a request the server cannot read with a 400.
func (s *Server) badRequest(w http.ResponseWriter, d dialect, msg string) {
	s.countError("bad_request")
	d.fail(w, failure{kind: failBadRequest, msg: msg}, "")
}

// closedAnswer answers a request interrupted by Close (a client that gave
// up gets nothing).
func (s *Server) closedAnswer(w http.ResponseWriter, d dialect) {
	select {
	case <-s.closed:
		d.fail(w, failure{kind: failClosed, msg: "the fake server is shutting down"}, s.cfg.RetryAfterIn)
	default:
	}
}

// wait sleeps for d (forever if d <= 0 and forever is set); false when the
// client left or the server closed first.
func (s *Server) wait(ctx context.Context, d time.Duration, forever bool) bool {
	if d <= 0 && !forever {
		return ctx.Err() == nil
	}
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	case <-timer:
		return true
	}
}

// admit applies the rate limits at now for a request of in input tokens:
// it returns the request's admission number, or the wait until the window
// has room and the limit that refused it. The caller holds s.mu.
func (s *Server) admit(now time.Time, in int) (int64, time.Duration, string) {
	cut := now.Add(-window)
	i := 0
	for i < len(s.win) && !s.win[i].t.After(cut) {
		s.winTokens -= s.win[i].tokens
		i++
	}
	s.win = s.win[i:]
	s.winBase += int64(i)
	var wait time.Duration
	limit := ""
	if s.cfg.RPM > 0 && len(s.win) >= s.cfg.RPM {
		wait = s.win[len(s.win)-s.cfg.RPM].t.Add(window).Sub(now)
		limit = "requests"
	}
	if s.cfg.TPM > 0 && len(s.win) > 0 {
		if need := s.winTokens + in - s.cfg.TPM; need > 0 {
			freed := 0
			tw := s.win[len(s.win)-1].t.Add(window).Sub(now)
			for _, e := range s.win {
				freed += e.tokens
				if freed >= need {
					tw = e.t.Add(window).Sub(now)
					break
				}
			}
			if tw > wait {
				wait, limit = tw, "tokens"
			}
		}
	}
	if limit != "" {
		return 0, max(wait, time.Millisecond), limit
	}
	s.win = append(s.win, windowEntry{t: now, tokens: in})
	s.winTokens += in
	return s.winBase + int64(len(s.win)-1), 0, ""
}

// addTokens counts n more tokens (an answer's output) for admission
// number ticket, unless it has left the window. The caller holds s.mu.
func (s *Server) addTokens(ticket int64, n int) {
	if i := ticket - s.winBase; i >= 0 {
		s.win[i].tokens += n
		s.winTokens += n
	}
}

// render writes the answer text: the bare JSON object for structured
// requests, prose around a fenced JSON block otherwise.
func render(pairs []llm.QAPair, structured bool) string {
	if structured {
		b, _ := json.Marshal(map[string]any{"qa_pairs": pairs})
		return string(b)
	}
	b, _ := json.MarshalIndent(map[string]any{"qa_pairs": pairs}, "", "  ")
	return "Here are the question-answer pairs from the text:\n\n```json\n" + string(b) + "\n```\n\nEach answer is taken from the text."
}

// cutPoint is where a malformed answer stops: a little past the middle,
// on a rune boundary, never at a closing brace.
func cutPoint(s string) int {
	i := len(s) * 3 / 5
	for i > 0 && i < len(s) && (s[i]&0xC0 == 0x80 || s[i] == '}' || s[i] == ']') {
		i++
	}
	return min(i, max(len(s)-1, 0))
}

// retryHeader sets Retry-After in whole seconds, rounded up, at least 1.
func retryHeader(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds())))))
}

// seconds formats a wait as Google's Duration JSON: "17s", "1.5s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(math.Round(d.Seconds()*1000)/1000, 'f', -1, 64) + "s"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body (at most 32 MiB).
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 32<<20))
	dec.UseNumber()
	return dec.Decode(v)
}
