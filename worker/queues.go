package worker

import (
	"context"
	"runtime"
	"time"
)

// Queues returns the queues being consumed.
func (w *Worker) Queues() []string {
	w.queuesMu.Lock()
	defer w.queuesMu.Unlock()
	return append([]string(nil), w.queues...)
}

// addQueue starts consuming a queue (add_consumer); false if already there.
func (w *Worker) addQueue(q string) bool {
	w.queuesMu.Lock()
	for _, x := range w.queues {
		if x == q {
			w.queuesMu.Unlock()
			return false
		}
	}
	w.queues = append(w.queues, q)
	w.queuesMu.Unlock()
	if err := w.broker.Declare(context.Background(), q); err != nil {
		w.log.Warn().Err(err).Str("queue", q).Msg("could not declare the queue binding")
	}
	w.log.Info().Str("queue", q).Msg("started consuming")
	return true
}

// removeQueue stops consuming a queue (cancel_consumer).
func (w *Worker) removeQueue(q string) {
	w.queuesMu.Lock()
	defer w.queuesMu.Unlock()
	for i, x := range w.queues {
		if x == q {
			w.queues = append(w.queues[:i:i], w.queues[i+1:]...)
			w.log.Info().Str("queue", q).Msg("stopped consuming")
			return
		}
	}
}

// served moves a queue to the back of the order (kombu's round_robin).
func (w *Worker) served(q string) {
	w.queuesMu.Lock()
	defer w.queuesMu.Unlock()
	if len(w.queues) < 2 {
		return
	}
	for i, x := range w.queues {
		if x == q {
			w.queues = append(append(w.queues[:i:i], w.queues[i+1:]...), q)
			return
		}
	}
}

// setTimeLimits overrides a task's limits at run time (time_limit).
func (w *Worker) setTimeLimits(task string, hard, soft time.Duration) {
	w.limitsMu.Lock()
	defer w.limitsMu.Unlock()
	w.timeLimits[task] = [2]time.Duration{hard, soft}
}

func (w *Worker) timeLimitOverride(task string) ([2]time.Duration, bool) {
	w.limitsMu.Lock()
	defer w.limitsMu.Unlock()
	l, ok := w.timeLimits[task]
	return l, ok
}

// requestShutdown starts a warm shutdown (the shutdown command).
func (w *Worker) requestShutdown() {
	if w.stopRun != nil {
		w.stopRun()
	}
}

// terminate gives up a running task at once, as Celery's revoke with
// terminate kills the pool process: its context is cancelled, its slot
// freed, REVOKED("terminated") stored. It reports whether the task ran here.
func (w *Worker) terminate(id, signal string) bool {
	w.mu.Lock()
	var target *job
	var cancel context.CancelCauseFunc
	for j := range w.running {
		if j.msg.ID == id {
			target, cancel = j, j.cancel
			break
		}
	}
	w.mu.Unlock()
	if target == nil {
		return false
	}
	w.settling.RLock()
	defer w.settling.RUnlock()
	if !w.abandon(target, cancel, errTerminated) {
		return false
	}
	w.log.Warn().Str("task", target.msg.Task).Str("id", id).Str("signal", signal).Msg("task terminated")
	w.count(target)
	w.finishRevokedEvent(target, "terminated", signal)
	return true
}

func goVersion() string { return runtime.Version() }
