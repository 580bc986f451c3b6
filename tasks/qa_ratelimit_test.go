package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/qagen/qagen/internal/clock"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/ratelimit"
	"github.com/qagen/qagen/worker"
)

var flash = ratelimit.Key{Provider: "gemini", Model: "gemini-2.0-flash"}

// limiterOn returns limiters ("workers") sharing one Redis store, on a
// fake clock.
func limiterOn(t *testing.T, c clock.Clock, local ratelimit.Table, n int) []*ratelimit.Limiter {
	t.Helper()
	pool, _ := testenv.Redis(t, testenv.DBTasks)
	store := ratelimit.NewRedisStore(pool, testenv.Prefix(t))
	var out []*ratelimit.Limiter
	for range n {
		out = append(out, ratelimit.New(ratelimit.Config{Store: store, Local: local, MaxInPlace: time.Second, Clock: c}))
	}
	return out
}

// TestSpentBudgetSnoozes: with the budget spent for longer than a wait in
// place, the task gives its slot back (a snooze, not a retry) and the
// provider is not called.
func TestSpentBudgetSnoozes(t *testing.T) {
	c := clock.NewFake(time.Now())
	lim := limiterOn(t, c, ratelimit.Table{flash: {RPM: 6}}, 1)[0]
	p := &scripted{steps: []step{{text: goodJSON}, {text: goodJSON}}}
	q := newQA(p, func(cfg *QAConfig) { cfg.Limiter = lim })
	if res, err := run(t, q, 0, chunkEN, configEN, nil, nil); err != nil || !res.Success {
		t.Fatalf("first call: %+v %v", res, err)
	}
	_, err := run(t, q, 3, chunkEN, configEN, nil, nil) // retries used up: a snooze still is no retry
	var r *worker.RetryError
	// 6 a minute, fitted into the sliding minute: one per 11.7 s, plus
	// up to 200 ms of jitter (0.5 here).
	if !worker.IsSnooze(err) || !errors.As(err, &r) || r.Countdown < 11800*time.Millisecond || r.Countdown > 11820*time.Millisecond {
		t.Fatalf("second call: %v, want a snooze of 11.7 s + 0.1 s", err)
	}
	if len(p.calls) != 1 {
		t.Errorf("%d provider calls, want 1", len(p.calls))
	}
	c.Advance(12 * time.Second)
	if res, err := run(t, q, 0, chunkEN, configEN, nil, nil); err != nil || !res.Success {
		t.Fatalf("after the wait: %+v %v", res, err)
	}
}

// TestProviderLimitPausesFleet: a 429 with Retry-After seen by one worker's
// task pauses the model for another worker's tasks, which snooze without
// calling the provider; the offline provider is never paced.
func TestProviderLimitPausesFleet(t *testing.T) {
	c := clock.NewFake(time.Now())
	lims := limiterOn(t, c, ratelimit.Table{flash: {RPM: 6000}}, 2)
	limited := &llm.Error{Provider: "gemini", Kind: llm.KindRateLimited, Status: 429, RetryAfter: 30 * time.Second}
	pa := &scripted{steps: []step{{err: limited}}}
	a := newQA(pa, func(cfg *QAConfig) { cfg.Limiter = lims[0] })
	_, err := run(t, a, 0, chunkEN, configEN, nil, nil)
	var r *worker.RetryError
	if !errors.As(err, &r) || worker.IsSnooze(err) || r.Countdown < 30*time.Second {
		t.Fatalf("429: %v, want a retry after 30 s", err)
	}
	pb := &scripted{steps: []step{{text: goodJSON}}}
	b := newQA(pb, func(cfg *QAConfig) { cfg.Limiter = lims[1] })
	if _, err := run(t, b, 0, chunkEN, configEN, nil, nil); !worker.IsSnooze(err) {
		t.Fatalf("other worker during the pause: %v, want a snooze", err)
	}
	if len(pb.calls) != 0 {
		t.Errorf("the provider was called during the pause")
	}
	if res, err := run(t, b, 0, chunkEN, configEN, nil, sp("offline")); err != nil || !res.Success {
		t.Errorf("offline during the pause: %+v %v", res, err)
	}
	c.Advance(30 * time.Second)
	if res, err := run(t, b, 0, chunkEN, configEN, nil, nil); err != nil || !res.Success || len(pb.calls) != 1 {
		t.Fatalf("after the pause: %+v %v", res, err)
	}
}

// TestUsageCorrectsTokenBudget: the budget is charged the call's real
// usage (100 + 50 tokens from the provider), not the estimate.
func TestUsageCorrectsTokenBudget(t *testing.T) {
	c := clock.NewFake(time.Now())
	pool, _ := testenv.Redis(t, testenv.DBTasks)
	store := ratelimit.NewRedisStore(pool, testenv.Prefix(t))
	lim := ratelimit.New(ratelimit.Config{Store: store, Local: ratelimit.Table{flash: {TPM: 6000}}, MaxInPlace: time.Minute, Clock: c})
	q := newQA(&scripted{steps: []step{{text: goodJSON}}}, func(cfg *QAConfig) { cfg.Limiter = lim })
	if res, err := run(t, q, 0, chunkEN, configEN, nil, nil); err != nil || !res.Success {
		t.Fatal(res, err)
	}
	st, err := store.State(context.Background(), flash, c.Now())
	// 150 tokens at 6000 a minute fitted into the sliding minute (98/s).
	if err != nil || st.TokensAhead < 1500*time.Millisecond || st.TokensAhead > 1550*time.Millisecond {
		t.Errorf("token budget after a 150-token call: %+v %v", st, err)
	}
}

// TestEstimateTokens: the plan's estimate is the limiter's budget of the
// task: the prompt plus the expected answer; a batch shares one prompt.
func TestEstimateTokens(t *testing.T) {
	one, err := EstimateTokens([]json.RawMessage{json.RawMessage(chunkEN)}, json.RawMessage(configEN))
	// 5 pairs expected (120 tokens, qa_per_chunk 5) at 80 tokens each, plus the prompt.
	if err != nil || one <= 400 || one > 1500 {
		t.Fatalf("one chunk: %d %v", one, err)
	}
	three, err := EstimateTokens([]json.RawMessage{json.RawMessage(chunkEN), json.RawMessage(chunkEN), json.RawMessage(chunkEN)}, json.RawMessage(configEN))
	if err != nil || three >= 3*one || three <= one {
		t.Fatalf("a batch of three: %d (one alone %d) %v", three, one, err)
	}
	if _, err := EstimateTokens([]json.RawMessage{json.RawMessage(`{"id": "x"}`)}, json.RawMessage(configEN)); err == nil {
		t.Error("a chunk without text: no error")
	}
	if _, err := EstimateTokens(nil, json.RawMessage(configEN)); err == nil {
		t.Error("no chunks: no error")
	}
}
