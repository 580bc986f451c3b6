package testenv

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// StartFakeLLM starts `bin fake-llm` (named fake-llm-<tag>) on a port the
// kernel picks, with JSON logs and more flags, and returns the process and
// the host:port it logged it listens on.
func StartFakeLLM(t testing.TB, tag, bin, dir string, environ []string, flags ...string) (*Proc, string) {
	t.Helper()
	argv := append([]string{bin, "fake-llm", "--addr", "127.0.0.1:0", "--log-format", "json"}, flags...)
	p := StartProc(t, "fake-llm-"+tag, dir, environ, argv...)
	line := p.WaitLog(t, `"fake LLM API listening"`, 15*time.Second)
	var l struct {
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal([]byte(line), &l); err != nil || l.Addr == "" {
		t.Fatalf("fake-llm address from %q: %v", line, err)
	}
	return p, l.Addr
}

// GetJSON decodes the body of GET url into v (a fake-llm's /stats into a
// fakellm.Stats: testenv does not import llm/fakellm, so that package's
// own tests may use testenv); an error fails the test.
func GetJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
