package broker_test

import (
	"testing"
	"time"

	"github.com/qagen/qagen/broker"
)

// TestPopTimeoutHonoured: Pop on an empty queue returns nil after about
// its timeout. BRPOP's timeout 0 means "block forever", so a tiny timeout
// must not be sent as "0.000"; and waits over a second should not be
// rounded up to whole seconds (Redis ≥ 6 takes fractional seconds).
func TestPopTimeoutHonoured(t *testing.T) {
	e := newEnv(t, false, broker.Options{})
	for _, timeout := range []time.Duration{100 * time.Microsecond, 0, 1500 * time.Millisecond} {
		start := time.Now()
		data, err := e.b.Pop(ctx(), "empty", timeout)
		took := time.Since(start)
		if err != nil || data != nil {
			t.Errorf("Pop(%s) = %q, %v after %s; want nil, nil", timeout, data, err, took)
			continue
		}
		if took > timeout+300*time.Millisecond {
			t.Errorf("Pop(%s) took %s", timeout, took)
		}
	}
}
