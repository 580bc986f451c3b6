package llm

import (
	"errors"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "17": 17 * time.Second, " 2 ": 2 * time.Second, "1.5": 1500 * time.Millisecond, "0": 0, "-3": 0, "soon": 0,
		"Wed, 01 Jan 2025 00:00:30 GMT": 30 * time.Second, "Tue, 31 Dec 2024 23:59:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRetryAfterFromMessage(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"Rate limit reached. Please try again in 20s.":   20 * time.Second,
		"Please try again in 1.5s. Visit ...":            1500 * time.Millisecond,
		"Limit 200000, Used 199000. Try again in 120ms.": 120 * time.Millisecond,
		"no hint": 0,
	} {
		if got := retryAfterFromMessage(in); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

func TestRetryInfoDelay(t *testing.T) {
	info := func(v any) []map[string]any {
		return []map[string]any{{"@type": "type.googleapis.com/google.rpc.QuotaFailure"}, {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": v}}
	}
	for _, tc := range []struct {
		details []map[string]any
		want    time.Duration
	}{
		{info("17s"), 17 * time.Second},
		{info("0.250s"), 250 * time.Millisecond},
		{info(map[string]any{"seconds": float64(3), "nanos": float64(5e8)}), 3500 * time.Millisecond},
		{info("garbage"), 0},
		{nil, 0},
	} {
		if got := retryInfoDelay(tc.details); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.details, got, tc.want)
		}
	}
}

func TestKindOfStatus(t *testing.T) {
	for _, tc := range []struct {
		status     int
		msg        string
		structured bool
		want       Kind
	}{
		{429, "", false, KindRateLimited},
		{500, "", true, KindTransient},
		{503, "", false, KindTransient},
		{408, "", false, KindTransient},
		{400, "response_schema is not supported", true, KindUnsupported},
		{400, "Invalid parameter: 'response_format'", true, KindUnsupported},
		{400, "responseMimeType must be text/plain", true, KindUnsupported},
		{400, "json_schema not supported", true, KindUnsupported},
		{400, "response_schema is not supported", false, KindPermanent},
		{400, "prompt too long", true, KindPermanent},
		{401, "", false, KindPermanent},
		{403, "", false, KindPermanent},
		{404, "", false, KindPermanent},
	} {
		if got := kindOfStatus(tc.status, tc.msg, tc.structured); got != tc.want {
			t.Errorf("%d %q structured=%v: %v, want %v", tc.status, tc.msg, tc.structured, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	base := errors.New("bad key sk-123 given")
	err := redactErr(base, "sk-123")
	if err.Error() != "bad key [REDACTED] given" || !errors.Is(err, base) {
		t.Fatalf("%v", err)
	}
	if redactErr(base, "") != base || redactErr(base, "other") != base || redactErr(nil, "x") != nil {
		t.Fatal("redactErr wrapped needlessly")
	}
}
