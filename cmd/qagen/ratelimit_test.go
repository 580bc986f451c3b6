package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/ratelimit"
)

// TestRatelimitCommand: set, show and unset the fleet's limits under a key
// prefix, and the budget state of the models in use.
func TestRatelimitCommand(t *testing.T) {
	pool, _ := testenv.Redis(t, testenv.DBCommand)
	url, prefix := testenv.URL(testenv.DBCommand), testenv.Prefix(t)
	run := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		app := &cli.App{Name: "qagen", Writer: &out, ErrWriter: &out, Commands: []*cli.Command{ratelimitCommand()}}
		err := app.Run(interspersed(app, append([]string{"qagen", "ratelimit"}, append(args, "--broker", url, "--key-prefix", prefix)...)))
		return out.String(), err
	}
	out, err := run("set", "gemini/gemini-2.0-flash", "--rpm", "120", "--tpm", "90000")
	if err != nil || !strings.Contains(out, "gemini/gemini-2.0-flash: 120 requests/min, 90000 tokens/min") {
		t.Fatalf("set: %q %v", out, err)
	}
	// What workers read: the store under the broker's key prefix.
	store := ratelimit.NewRedisStore(pool, broker.New(pool, broker.Options{KeyPrefix: prefix}).Key(ratelimit.DefaultPrefix))
	ctx := context.Background()
	if tab, err := store.Limits(ctx); err != nil || tab[ratelimit.Key{Provider: "gemini", Model: "gemini-2.0-flash"}] != (ratelimit.Limit{RPM: 120, TPM: 90000, BurstSeconds: 1}) {
		t.Fatalf("stored limits %v %v", tab, err)
	}
	// A model in use and one paused after a 429.
	flash := ratelimit.Key{Provider: "gemini", Model: "gemini-2.0-flash"}
	if _, _, err := store.Take(ctx, flash, ratelimit.Limit{RPM: 120}, 0, time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	mini := ratelimit.Key{Provider: "openai", Model: "gpt-4o-mini"}
	if err := store.Cooldown(ctx, mini, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	out, err = run("show")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"gemini/gemini-2.0-flash              120 requests/min, 90000 tokens/min",
		"in use (models called in the last hour):",
		"openai/gpt-4o-mini                   PAUSED for 1m0s after a 429",
		"defaults (first paid tier):",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "gemini/gemini-2.0-flash              budget in use: requests ") {
		t.Errorf("show lacks the budget in use:\n%s", out)
	}
	out, err = run("unset", "gemini/gemini-2.0-flash")
	if err != nil || !strings.Contains(out, "fleet-wide limit removed") {
		t.Fatalf("unset: %q %v", out, err)
	}
	if tab, _ := store.Limits(ctx); len(tab) != 0 {
		t.Errorf("after unset: %v", tab)
	}
	for _, bad := range [][]string{{"set", "no-slash", "--rpm", "1"}, {"set"}, {"set", "gemini/x", "--rpm", "-1"}} {
		if _, err := run(bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
