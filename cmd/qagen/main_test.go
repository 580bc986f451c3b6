package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	return &cli.App{Name: "qagen", Commands: []*cli.Command{workerCommand(), callCommand(), ratelimitCommand()}}
}

func TestInterspersedFlags(t *testing.T) {
	app := testApp()
	for _, tc := range []struct{ in, want string }{
		{"qagen call qagen.add --args [1,2] -Q q --wait", "qagen call --args [1,2] -Q q --wait -- qagen.add"},
		{"qagen call --wait qagen.add --kwargs={}", "qagen call --wait --kwargs={} -- qagen.add"},
		{"qagen call qagen.add -- --not-a-flag", "qagen call -- qagen.add --not-a-flag"},
		{"qagen worker -Q a,b -c 4", "qagen worker -Q a,b -c 4 --"},
		{"qagen unknown x --y", "qagen unknown x --y"},
		// Subcommands: flags after the positional argument, and before it.
		{"qagen ratelimit set gemini/* --rpm 120 --tpm 9000", "qagen ratelimit set --rpm 120 --tpm 9000 -- gemini/*"},
		{"qagen ratelimit show --broker redis://h/1", "qagen ratelimit show --broker redis://h/1 --"},
		{"qagen ratelimit unset --key-prefix p: openai/gpt-4o", "qagen ratelimit unset --key-prefix p: -- openai/gpt-4o"},
		{"qagen ratelimit nope --x", "qagen ratelimit nope --x"},
	} {
		if got := strings.Join(interspersed(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCallRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"qagen", "call", "t", "--args", "{not json"},
		{"qagen", "call", "t", "--args", `{"a": 1}`},
		{"qagen", "call", "t", "--kwargs", `[1]`},
		{"qagen", "call"},
		{"qagen", "call", "t", "--broker", "amqp://guest:secret@h//"},
	} {
		app := testApp()
		err := app.Run(interspersed(app, args))
		if err == nil {
			t.Errorf("%v: no error", args)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: error leaks the password: %v", args, err)
		}
	}
}

func TestPidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "w.pid")
	release, err := acquirePidFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file holds %q", data)
	}
	release()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("release left the pid file")
	}
	// A pid file naming a live process (our parent) is refused.
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.WriteFile(path, []byte(strconv.Itoa(os.Getppid())), 0o644)
	if _, err := acquirePidFile(path); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("live pid accepted: %v", err)
	}
	// A stale pid file (no such process) is taken over.
	os.WriteFile(path, []byte("999999999"), 0o644)
	release, err = acquirePidFile(path)
	if err != nil {
		t.Fatalf("stale pid file refused: %v", err)
	}
	release()
}

func TestLogger(t *testing.T) {
	var b strings.Builder
	log, err := newLogger("warn", "json", &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Str("k", "v").Msg("shown")
	if out := b.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"k":"v"`) {
		t.Fatalf("log output %q", out)
	}
	if _, err := newLogger("loud", "json", &b); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, err := newLogger("info", "xml", &b); err == nil {
		t.Fatal("bad format accepted")
	}
	if parseLevel("WARNING") != "warn" || parseLevel("critical") != "fatal" {
		t.Fatal("Celery level names not mapped")
	}
}

func TestParseTaskRateLimits(t *testing.T) {
	got, err := parseTaskRateLimits([]string{"celery_tasks.generate_qa_unified_async=50/m", " qagen.echo = 10/s "})
	if err != nil || len(got) != 2 || got["celery_tasks.generate_qa_unified_async"] != "50/m" || got["qagen.echo"] != "10/s" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"qagen.echo", "=10/s", "qagen.echo="} {
		if _, err := parseTaskRateLimits([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
