package interop

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"testing"
	"time"
)

// The fleet-wide LLM rate limiter across worker processes: three Go
// workers share one budget through Redis while a Python producer sends
// Q&A tasks as a02 does. The in-process scripted LLM records when every
// request arrived, so the checks are on what the provider saw.

// rlTolerance absorbs the gap between a worker's clock at the grant and
// the server's at arrival (loopback HTTP, scheduling on 2 cores).
const rlTolerance = 150 * time.Millisecond

// checkPacing fails unless every run of requests in starts fits the
// budget: n requests within d need n <= burst + rate·(d + tolerance).
func checkPacing(t *testing.T, what string, starts []time.Time, perSecond, burst float64) {
	t.Helper()
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	for i := range starts {
		for j := i; j < len(starts); j++ {
			n := float64(j - i + 1)
			d := starts[j].Sub(starts[i]) + rlTolerance
			if n > burst+perSecond*d.Seconds() {
				t.Fatalf("%s: %d requests within %s, more than the budget (%.0f/s, burst %.0f) allows",
					what, j-i+1, starts[j].Sub(starts[i]).Round(time.Millisecond), perSecond, burst)
			}
		}
	}
	if len(starts) > 1 {
		span := starts[len(starts)-1].Sub(starts[0])
		t.Logf("%s: %d requests in %s (%.2f/s; budget %.0f/s, burst %.0f)", what, len(starts),
			span.Round(time.Millisecond), float64(len(starts)-1)/span.Seconds(), perSecond, burst)
	}
}

// requestsSince returns the scripted server's requests that started at or
// after from.
func (s *scriptedLLM) requestsSince(from time.Time) []scriptedReq {
	return s.where(func(r scriptedReq) bool { return !r.start.Before(from) })
}

func starts(reqs []scriptedReq) []time.Time {
	out := make([]time.Time, len(reqs))
	for i, r := range reqs {
		out[i] = r.start
	}
	return out
}

// ratelimitSet runs `qagen ratelimit set` against the env's Redis.
func (e *env) ratelimitSet(t *testing.T, key string, flags ...string) {
	t.Helper()
	argv := append([]string{"ratelimit", "set", key, "--broker", e.url}, flags...)
	if e.prefix != "" {
		argv = append(argv, "--key-prefix", e.prefix)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, qagenBin, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("qagen %v: %v\n%s", argv, err, out)
	}
}

func TestRateLimitFleet(t *testing.T) {
	e := setup(t, true)
	t.Parallel()
	const coolMarker = "RLCOOLMARKER"
	llmSrv := newScriptedLLM(t, map[string][]string{coolMarker: {"429"}})
	// Three processes, 18 slots, enough to send far faster than the budget;
	// --llm-rpm is the fleet's limit for the provider (gemini/*), written to
	// Redis by each worker.
	var workers []*goWorker
	for i := range 3 {
		workers = append(workers, e.startQAWorker(t, fmt.Sprintf("rl%d", i), llmEnv(llmSrv.addr()), 6, "--llm-rpm", "240"))
	}
	unified := func(name string) qaItem {
		return qaItem{Name: name, Task: "unified", Args: []any{"$chunk:en_mid", "$config:cc_news", "gemini-2.0-flash", "gemini"}}
	}
	batch := func(prefix string, n int) qaSpec {
		var spec qaSpec
		for i := range n {
			spec.Items = append(spec.Items, unified(fmt.Sprintf("%s%02d", prefix, i)))
		}
		return spec
	}
	expectAll := func(run *qaRun, n int) {
		t.Helper()
		for name, o := range run.Items {
			if o.State != "SUCCESS" {
				t.Fatalf("%s: %s %s", name, o.State, o.Result)
			}
		}
		if run.Collector.Completed != n || len(run.Collector.FailedIDs) != 0 {
			t.Fatalf("collector: %d completed, failed %v", run.Collector.Completed, run.Collector.FailedIDs)
		}
	}

	// 1. 240 requests/min (4/s, a burst of one second): 24 tasks sent at
	// once reach the provider at that pace, whichever worker runs them.
	from := time.Now()
	expectAll(e.runQA(t, 90*time.Second, batch("p1_", 24)), 24)
	reqs := llmSrv.requestsSince(from)
	if len(reqs) != 24 {
		t.Fatalf("phase 1: %d requests for 24 tasks", len(reqs))
	}
	checkPacing(t, "240/min", starts(reqs), 4, 4)
	ran := 0
	for _, w := range workers {
		if len(w.idsWith("succeeded")) > 0 {
			ran++
		}
	}
	if ran < 2 {
		t.Errorf("only %d of 3 workers ran tasks: the budget was not shared across processes", ran)
	}

	// 2. Lowered at run time with `qagen ratelimit set`, no restart: the
	// workers re-read the fleet's limits every 2 s.
	e.ratelimitSet(t, "gemini/*", "--rpm", "120")
	time.Sleep(2500 * time.Millisecond)
	from = time.Now()
	expectAll(e.runQA(t, 90*time.Second, batch("p2_", 10)), 10)
	reqs = llmSrv.requestsSince(from)
	if len(reqs) != 10 {
		t.Fatalf("phase 2: %d requests for 10 tasks", len(reqs))
	}
	checkPacing(t, "120/min after ratelimit set", starts(reqs), 2, 2)

	// 3. A 429 with Retry-After 2 s on one worker pauses every worker's
	// calls to the model: nothing reaches the provider until it has passed
	// (but for calls granted before the 429 was shared, within tolerance).
	e.ratelimitSet(t, "gemini/*", "--rpm", "600")
	time.Sleep(2500 * time.Millisecond)
	from = time.Now()
	spec := qaSpec{Items: []qaItem{{Name: "cool", Task: "unified", Args: []any{map[string]any{
		"id": "rl_cool_chunk_0", "text": coolMarker + ". The storm closed the harbour on Monday. Ferries stopped until the wind dropped.",
		"tokens": 60, "type": "paragraph", "sentences": []string{}, "doc_id": "rl_cool", "doc_idx": 0, "chunk_idx": 0,
		"dataset_type": "cc_news"}, "$config:cc_news", "gemini-2.0-flash", "gemini"}}}}
	spec.Items = append(spec.Items, batch("p3_", 12).Items...)
	expectAll(e.runQA(t, 90*time.Second, spec), 13)
	reqs = llmSrv.requestsSince(from)
	var limitedAt time.Time
	for _, r := range reqs {
		if r.status == 429 {
			if !limitedAt.IsZero() {
				t.Fatalf("a second 429: the pause did not hold")
			}
			limitedAt = r.end
		}
	}
	if limitedAt.IsZero() {
		t.Fatal("the scripted 429 was never served")
	}
	after := 0
	for _, r := range reqs {
		switch {
		case r.start.After(limitedAt.Add(rlTolerance)) && r.start.Before(limitedAt.Add(scriptedRetryAfter-rlTolerance)):
			t.Errorf("a request %s after the 429, inside the %s pause", r.start.Sub(limitedAt).Round(time.Millisecond), scriptedRetryAfter)
		case r.start.After(limitedAt):
			after++
		}
	}
	if after < 2 {
		t.Errorf("%d requests after the pause: the check saw no waiting task", after)
	}
	t.Logf("pause: 0 of %d requests inside the %s after the 429, %d after it", len(reqs), scriptedRetryAfter, after)
}
