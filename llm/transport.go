package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Error classification, shared by the Gemini and OpenAI providers:
//
//   - the caller's context ending (cancellation or its own deadline): the
//     context's error itself, unwrapped, so the worker sees it;
//   - the per-call timeout (config Timeout) firing: KindTransient;
//   - HTTP 429 or a RESOURCE_EXHAUSTED status: KindRateLimited, RetryAfter
//     from the Retry-After header (seconds or HTTP date; Retry-After-Ms as a
//     fallback), Gemini's google.rpc.RetryInfo retryDelay (the longer of
//     the two wins) or OpenAI's "try again in Ns" message;
//   - 408, 5xx, broken connections, a 2xx body that does not decode:
//     KindTransient;
//   - a 400 (or 422) to a structured request whose message mentions the
//     schema / response_format / json_schema / MIME type: KindUnsupported,
//     so the caller asks again in plain text;
//   - other 4xx, and requests the SDK refuses before sending: KindPermanent;
//   - an answer with no candidates / choices, an empty text, a refusal, or
//     a blocked or length-truncated finish: KindBadOutput.
//
// A structured answer that is not valid JSON is NOT an error here: Generate
// returns its text (and usage) and the caller's ExtractJSONObject /
// ParseQAPairs reject it. Error texts never contain the API key (it is
// replaced by [REDACTED] if a server echoes it).

// DefaultTimeout bounds one Generate call when the provider's config says
// nothing. It stays below the Q&A tasks' soft time limit so that a hung
// call is retried by the task instead of killing it.
const DefaultTimeout = 90 * time.Second

// The SDKs return errors without the HTTP response headers, so a
// RoundTripper installed on their http.Client records what the
// classification needs (the status and Retry-After of an error answer) in a
// holder the Generate call puts in the request context: both SDKs build
// their requests with the caller's context.

type callInfoKey struct{}

// callInfo is what the transport saw of one Generate call's HTTP exchange.
type callInfo struct {
	mu         sync.Mutex
	status     int
	retryAfter time.Duration
}

func (c *callInfo) record(resp *http.Response, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = resp.StatusCode
	if resp.StatusCode >= 400 {
		c.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
		if c.retryAfter == 0 {
			// OpenAI and Azure also send milliseconds.
			if ms, err := strconv.ParseFloat(strings.TrimSpace(resp.Header.Get("Retry-After-Ms")), 64); err == nil && ms > 0 && ms < 1e9 {
				c.retryAfter = time.Duration(ms * float64(time.Millisecond))
			}
		}
	}
}

func (c *callInfo) get() (status int, retryAfter time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.retryAfter
}

func withCallInfo(ctx context.Context) (context.Context, *callInfo) {
	info := &callInfo{}
	return context.WithValue(ctx, callInfoKey{}, info), info
}

// recordingTransport records the status and Retry-After of each response
// in the request context's callInfo, if any.
type recordingTransport struct {
	base http.RoundTripper
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if resp != nil {
		if info, ok := req.Context().Value(callInfoKey{}).(*callInfo); ok {
			info.record(resp, time.Now())
		}
	}
	return resp, err
}

// recordingClient returns a copy of c (or of a new default client) whose
// transport records error answers. The caller's client is not modified.
func recordingClient(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	base := out.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out.Transport = &recordingTransport{base: base}
	return &out
}

// parseRetryAfter reads an HTTP Retry-After value: delay seconds (integer
// or, leniently, fractional) or an HTTP date. Unparsable or past values
// give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || secs > 1e6 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// tryAgainRE matches OpenAI's "Please try again in 20s" / "in 1.5s" / "in
// 120ms" rate-limit messages.
var tryAgainRE = regexp.MustCompile(`(?i)try again in ([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\b`)

func retryAfterFromMessage(msg string) time.Duration {
	m := tryAgainRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil || f <= 0 {
		return 0
	}
	if strings.EqualFold(m[2], "ms") {
		return time.Duration(f * float64(time.Millisecond))
	}
	return time.Duration(f * float64(time.Second))
}

// isNetworkError reports transport-level failures: timeouts, refused or
// reset connections, truncated bodies.
func isNetworkError(err error) bool {
	var ne net.Error // *url.Error and *net.OpError among them
	return errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded)
}

// schemaRejectionWords are what servers say when they refuse structured
// output (Gemini: response_schema / responseMimeType; OpenAI-compatible
// servers: response_format / json_schema).
var schemaRejectionWords = []string{
	"schema", "response_format", "responseformat", "response format",
	"mime", "json mode", "json_object", "structured output", "structured_output", "guided",
}

func mentionsSchema(msg string) bool {
	return containsAny(strings.ToLower(msg), schemaRejectionWords...)
}

// kindOfStatus classifies an HTTP error status. structured says whether
// the request asked for structured output (only then can a 400 mean
// "structured output unsupported").
func kindOfStatus(status int, msg string, structured bool) Kind {
	switch {
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status == http.StatusRequestTimeout || status >= 500:
		return KindTransient
	case (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity) && structured && mentionsSchema(msg):
		return KindUnsupported
	case status >= 400:
		return KindPermanent
	}
	return KindTransient
}

// redactedError hides a secret in an error's text; errors.Is/As still see
// the original through Unwrap.
type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string { return redact(e.err.Error(), e.secret) }
func (e *redactedError) Unwrap() error { return e.err }

func redactErr(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{err: err, secret: secret}
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[REDACTED]")
}

// doCall makes one SDK call under the per-call timeout, with a callInfo in
// its context for the transport to fill, and turns its error into what
// Generate and Embed return: the caller's own context error as is
// (cancellation and its deadline belong to the caller), the per-call
// timeout as transient, everything else through classify. The response
// must be complete when call returns: the call's context ends with doCall.
func doCall[T any](ctx context.Context, provider string, timeout time.Duration,
	call func(context.Context) (T, error), classify func(error, *callInfo) *Error) (T, error) {
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	callCtx, info := withCallInfo(callCtx)
	resp, err := call(callCtx)
	if err == nil {
		return resp, nil
	}
	var zero T
	if cerr := ctx.Err(); cerr != nil {
		return zero, cerr
	}
	if callCtx.Err() != nil {
		return zero, &Error{Provider: provider, Kind: KindTransient, Err: errors.New("no answer within the per-call timeout of " + timeout.String())}
	}
	return zero, classify(err, info)
}

// badOutput is a KindBadOutput error: an answer the caller cannot use.
func badOutput(provider, format string, args ...any) *Error {
	return &Error{Provider: provider, Kind: KindBadOutput, Err: fmt.Errorf(format, args...)}
}

func envFirst(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(os.Getenv(n)); v != "" {
			return v
		}
	}
	return ""
}
