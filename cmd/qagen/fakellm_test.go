package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/llm/fakellm"
)

func TestFakeLLMCommand(t *testing.T) {
	ready := make(chan string, 1)
	fakeLLMReady = func(addr string) { ready <- addr }
	defer func() { fakeLLMReady = nil }()
	app := &cli.App{Name: "qagen", Commands: []*cli.Command{fakeLLMCommand()}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"qagen", "fake-llm", "--addr", "127.0.0.1:0", "--latency", "1ms±1ms",
			"--fail-rate", "1", "--fail-kinds", "500", "--seed", "3", "--api-key", "k", "--log-level", "warning"})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start")
	}

	p, err := llm.NewGemini(ctx, llm.GeminiConfig{APIKey: "k", BaseURL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Generate(ctx, llm.Request{Prompt: "Write 1 pair.\nText:\nA. B.", Schema: llm.QASchema})
	if llm.KindOf(err) != llm.KindTransient {
		t.Fatalf("--fail-rate 1 --fail-kinds 500: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st fakellm.Stats
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Requests["gemini"] != 1 || st.Errors["500"] != 1 {
		t.Fatalf("stats %+v", st)
	}

	cancel() // as SIGTERM would
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
}

func TestFakeLLMFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--latency", "fast"},
		{"--fail-kinds", "500,oops"},
		{"--fail-rate", "2"},
		{"--rpm", "-1"},
		{"--retry-after-in", "footer"},
		{"extra"},
	} {
		app := &cli.App{Name: "qagen", Commands: []*cli.Command{fakeLLMCommand()}}
		if err := app.Run(append([]string{"qagen", "fake-llm", "--addr", "127.0.0.1:0"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
