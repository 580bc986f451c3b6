package worker

import (
	"sync"

	"github.com/qagen/qagen/internal/clock"
)

// limitTimer is the soft-then-hard timer of one task: the soft timer
// replaces itself with the hard one when it fires.
type limitTimer struct {
	mu      sync.Mutex
	t       clock.Timer
	stopped bool
}

func (l *limitTimer) set(t clock.Timer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		t.Stop()
		return
	}
	l.t = t
}

func (l *limitTimer) Stop() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.t != nil {
		return l.t.Stop()
	}
	return false
}
