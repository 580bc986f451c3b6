// Package tasks holds the task bodies qagen workers run.
package tasks

import (
	"context"
	"encoding/json"
	"math/big"
	"strings"
	"time"

	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/worker"
)

// RegisterDiagnostics adds the built-in diagnostic tasks used by health
// checks, benchmarks and interop tests:
//
//	qagen.echo(x) -> x
//	qagen.add(x, y) -> x + y
//	qagen.sleep(ms, size=0) -> {"slept_ms": ms, "pad": "<size bytes>"}
//	qagen.fail(message) -> raises ValueError(message)
//	qagen.flaky(failures, countdown=0.1) -> retries until it has failed
//	    `failures` times, then returns {"attempts": n}
func RegisterDiagnostics(r *worker.Registry) {
	worker.Register(r, "qagen.echo", echo)
	worker.Register(r, "qagen.add", add)
	worker.Register(r, "qagen.sleep", sleep)
	worker.Register(r, "qagen.fail", fail)
	worker.Register(r, "qagen.flaky", flaky)
}

// EchoArgs are the arguments of qagen.echo.
type EchoArgs struct {
	X json.RawMessage `celery:"x"`
}

func echo(_ context.Context, a EchoArgs) (json.RawMessage, error) { return a.X, nil }

// AddArgs are the arguments of qagen.add.
type AddArgs struct {
	X json.Number `celery:"x"`
	Y json.Number `celery:"y"`
}

// add adds integers exactly (any size) and other numbers as floats.
func add(_ context.Context, a AddArgs) (json.Number, error) {
	x, okx := new(big.Int).SetString(a.X.String(), 10)
	y, oky := new(big.Int).SetString(a.Y.String(), 10)
	if okx && oky {
		return json.Number(x.Add(x, y).String()), nil
	}
	fx, err := a.X.Float64()
	if err != nil {
		return "", celery.NewException("TypeError", celery.ModuleBuiltins, "x is not a number: "+a.X.String())
	}
	fy, err := a.Y.Float64()
	if err != nil {
		return "", celery.NewException("TypeError", celery.ModuleBuiltins, "y is not a number: "+a.Y.String())
	}
	out, err := json.Marshal(fx + fy)
	if err != nil {
		return "", celery.NewException("OverflowError", celery.ModuleBuiltins, "sum is not finite")
	}
	return json.Number(out), nil
}

// SleepArgs are the arguments of qagen.sleep.
type SleepArgs struct {
	MS   float64 `celery:"ms"`
	Size int     `celery:"size,optional"`
}

// SleepResult is what qagen.sleep returns.
type SleepResult struct {
	SleptMS float64 `json:"slept_ms"`
	Pad     string  `json:"pad"`
}

// sleep waits without holding a CPU and honours cancellation (the soft time
// limit, a revoke with terminate, a cold shutdown).
func sleep(ctx context.Context, a SleepArgs) (SleepResult, error) {
	if a.MS < 0 || a.Size < 0 {
		return SleepResult{}, celery.NewException("ValueError", celery.ModuleBuiltins, "ms and size must not be negative")
	}
	t := time.NewTimer(time.Duration(a.MS * float64(time.Millisecond)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return SleepResult{}, context.Cause(ctx)
	}
	return SleepResult{SleptMS: a.MS, Pad: strings.Repeat("x", a.Size)}, nil
}

// FailArgs are the arguments of qagen.fail.
type FailArgs struct {
	Message string `celery:"message,optional"`
}

func fail(_ context.Context, a FailArgs) (struct{}, error) {
	if a.Message == "" {
		a.Message = "qagen.fail called"
	}
	return struct{}{}, celery.NewException("ValueError", celery.ModuleBuiltins, a.Message)
}

// FlakyArgs are the arguments of qagen.flaky.
type FlakyArgs struct {
	Failures  int     `celery:"failures"`
	Countdown float64 `celery:"countdown,optional"`
}

func flaky(ctx context.Context, a FlakyArgs) (map[string]int, error) {
	req := worker.RequestFrom(ctx)
	if req.Retries < a.Failures {
		countdown := a.Countdown
		if countdown == 0 {
			countdown = 0.1
		}
		return nil, worker.Retry(celery.NewException("RuntimeError", celery.ModuleBuiltins, "flaky failure"),
			worker.Countdown(time.Duration(countdown*float64(time.Second))))
	}
	return map[string]int{"attempts": req.Retries + 1}, nil
}
