package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/internal/testenv"
)

// pyGet reads results with Celery 5.2.6's AsyncResult.get. Each argument is
// a task id; it prints one JSON object per id: the value, or the exception
// it re-raised.
const pyGet = `
import sys, json
from celery import Celery
app = Celery('interop', backend=sys.argv[1], broker='memory://')
out = []
for tid in sys.argv[2:]:
    r = app.AsyncResult(tid)
    try:
        v = r.get(timeout=10)
        out.append({'value': v, 'state': r.state})
    except Exception as e:
        out.append({'exc': type(e).__name__, 'module': type(e).__module__, 'args': list(e.args),
                    'is_value_error': isinstance(e, ValueError), 'state': r.state, 'traceback': r.traceback})
print(json.dumps(out))
`

type pyResult struct {
	Value        any    `json:"value"`
	State        string `json:"state"`
	Exc          string `json:"exc"`
	Module       string `json:"module"`
	Args         []any  `json:"args"`
	IsValueError bool   `json:"is_value_error"`
	Traceback    string `json:"traceback"`
}

func startPython(t *testing.T, script string, args ...string) (wait func() string) {
	t.Helper()
	testenv.RequirePython(t)
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(c, testenv.Python, append([]string{"-c", script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() string {
		defer cancel()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("python: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		}
		return strings.TrimSpace(stdout.String())
	}
}

func decodePy(t *testing.T, out string, n int) []pyResult {
	t.Helper()
	var res []pyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != n {
		t.Fatalf("python output %q: %v", out, err)
	}
	return res
}

// TestInteropPythonReadsStoredResults: a result stored by Store is what
// Python's AsyncResult.get() returns, and a FAILURE re-raises.
func TestInteropPythonReadsStoredResults(t *testing.T) {
	t.Parallel()
	testenv.RequirePython(t)
	e := newEnv(t, backend.Options{})
	ok, fail, custom := newID(), newID(), newID()
	e.store(
		rec(ok, "SUCCESS", `{"answer": 42, "list": [1, 2.5, "\u00e9"], "none": null}`),
		rec(fail, "FAILURE", `{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`),
		rec(custom, "FAILURE", `{"exc_type": "GoPanic", "exc_message": ["index out of range"], "exc_module": "qagen"}`),
	)
	res := decodePy(t, startPython(t, pyGet, testenv.URL(testenv.DBBackend), ok, fail, custom)(), 3)

	got, _ := json.Marshal(res[0].Value)
	if string(got) != `{"answer":42,"list":[1,2.5,"é"],"none":null}` || res[0].State != "SUCCESS" {
		t.Errorf("value = %s (%s)", got, res[0].State)
	}
	if r := res[1]; r.Exc != "ValueError" || r.Module != "builtins" || !r.IsValueError || len(r.Args) != 1 || r.Args[0] != "boom" || r.State != "FAILURE" {
		t.Errorf("FAILURE re-raised as %+v, want builtins.ValueError('boom')", r)
	} else if !strings.Contains(r.Traceback, "ValueError: boom") {
		t.Errorf("traceback %q", r.Traceback)
	}
	if r := res[2]; r.Exc != "GoPanic" || r.IsValueError || len(r.Args) != 1 || r.Args[0] != "index out of range" {
		t.Errorf("custom exception re-raised as %+v", r)
	}
}

// TestInteropPythonWaitsForPublish: a Python client already waiting (it
// relies on PUBLISH, never polls) gets the result Go stores afterwards.
func TestInteropPythonWaitsForPublish(t *testing.T) {
	t.Parallel()
	testenv.RequirePython(t)
	e := newEnv(t, backend.Options{})
	id := newID()
	seen := monitorSeen(t, e.ropts)
	wait := startPython(t, pyGet, testenv.URL(testenv.DBBackend), id)
	// Python subscribes to the result channel, then reads the key once
	// (GET or MGET); only after that do we store, so the PUBLISH must do
	// the rest.
	eventually(t, "python to subscribe and read", 30*time.Second, func() bool {
		return e.numsub(e.b.Key(id)) >= 1 && seen("GET", `"`+e.b.Key(id)+`"`)
	})
	e.store(rec(id, "STARTED", `{"pid": 1, "hostname": "w@h"}`))
	e.store(rec(id, "SUCCESS", `[1, "two"]`))
	res := decodePy(t, wait(), 1)
	if got, _ := json.Marshal(res[0].Value); string(got) != `[1,"two"]` || res[0].State != "SUCCESS" {
		t.Fatalf("python got %s (%s)", got, res[0].State)
	}
}
