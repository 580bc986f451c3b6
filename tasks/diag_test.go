package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/worker"
)

func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		x, y json.Number
		want string
	}{
		{"2", "3", "5"},
		{"-7", "7", "0"},
		{"1180591620717411303424", "1", "1180591620717411303425"}, // 2**70 + 1, exact
		{"1.5", "2", "3.5"},
		{"1e3", "1", "1001"},
	} {
		got, err := add(context.Background(), AddArgs{X: tc.x, Y: tc.y})
		if err != nil || string(got) != tc.want {
			t.Errorf("add(%s, %s) = %s, %v; want %s", tc.x, tc.y, got, err, tc.want)
		}
	}
	if _, err := add(context.Background(), AddArgs{X: "1e308", Y: "1e308"}); err == nil {
		t.Error("an infinite sum must fail, never be written as Infinity")
	}
}

func TestSleepHonoursCancellation(t *testing.T) {
	res, err := sleep(context.Background(), SleepArgs{MS: 1, Size: 4})
	if err != nil || res.SleptMS != 1 || res.Pad != "xxxx" {
		t.Fatalf("%+v %v", res, err)
	}
	cause := errors.New("soft limit")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	start := time.Now()
	if _, err := sleep(ctx, SleepArgs{MS: 60_000}); !errors.Is(err, cause) {
		t.Fatalf("err %v, want the cancellation cause", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("sleep ignored cancellation")
	}
	if _, err := sleep(context.Background(), SleepArgs{MS: -1}); err == nil {
		t.Fatal("negative sleep accepted")
	}
}

func TestFailRaisesValueError(t *testing.T) {
	_, err := fail(context.Background(), FailArgs{Message: "boom"})
	var exc *celery.Exception
	if !errors.As(err, &exc) || exc.Type != "ValueError" || exc.Module != "builtins" || exc.Message() != "boom" {
		t.Fatalf("%#v", err)
	}
}

func TestFlakyRetriesThenSucceeds(t *testing.T) {
	for retries := 0; retries <= 2; retries++ {
		ctx := worker.WithRequest(context.Background(), &worker.Request{ID: "x", Retries: retries})
		res, err := flaky(ctx, FlakyArgs{Failures: 2, Countdown: 0.5})
		if retries < 2 {
			var r *worker.RetryError
			if !errors.As(err, &r) || r.Countdown != 500*time.Millisecond || !strings.Contains(err.Error(), "flaky failure") {
				t.Fatalf("retries=%d: %v", retries, err)
			}
			continue
		}
		if err != nil || res["attempts"] != 3 {
			t.Fatalf("final: %v %v", res, err)
		}
	}
}

func TestRegisterDiagnostics(t *testing.T) {
	reg := worker.NewRegistry()
	RegisterDiagnostics(reg)
	want := "qagen.add qagen.echo qagen.fail qagen.flaky qagen.sleep"
	if got := strings.Join(reg.Names(), " "); got != want {
		t.Fatalf("registered %q, want %q", got, want)
	}
}
