package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/qagen/qagen/internal/testenv"
)

// TestStartCeleryScript runs scripts/test_start_celery.sh: start_celery.sh
// start/status/stop/restart against real Redis (database testenv.DBScript,
// under a key prefix of the run; not flushed, so a test binary starting in
// parallel cannot wipe a running test's messages), with a freshly built
// qagen, a temporary pid file and log directory. It fails when Redis, bash,
// redis-cli or setsid is missing.
func TestStartCeleryScript(t *testing.T) {
	testenv.RequireRedis(t, testenv.DBScript)
	testenv.RequireCommands(t, "bash", "redis-cli", "setsid", "go")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "qagen")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "test_start_celery.sh"))
	cmd.Env = append(os.Environ(),
		"QAGEN_BIN="+bin,
		"QAGEN_TEST_REDIS_URL="+testenv.URL(testenv.DBScript),
		"TMPDIR="+t.TempDir(),
	)
	// The workers the script starts write to files, never to this pipe; if
	// one kept it open, WaitDelay stops the wait instead of hanging.
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("scripts/test_start_celery.sh:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/test_start_celery.sh: %v", err)
	}
}
