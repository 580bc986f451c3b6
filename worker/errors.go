package worker

import (
	"errors"
	"time"
)

// RetryError asks the worker to run the task again later, as Celery's
// Task.retry does: the same task id is re-published with retries+1 and an
// ETA, RETRY is stored, and the slot is free while the task waits.
type RetryError struct {
	// Err is the reason; it is stored with RETRY and, once retries are
	// exhausted, as the final FAILURE. Nil gives MaxRetriesExceededError.
	Err error
	// Countdown or ETA; neither means the task's RetryDelay.
	Countdown time.Duration
	ETA       time.Time
	// countdownSet distinguishes Countdown(0) from no countdown.
	countdownSet bool
	// snooze re-schedules without counting a retry (see Snooze).
	snooze bool
	// MaxRetries overrides the task's max_retries when non-nil.
	MaxRetries *int
}

func (e *RetryError) Error() string {
	if e.Err != nil {
		return "retry: " + e.Err.Error()
	}
	return "retry"
}

func (e *RetryError) Unwrap() error { return e.Err }

// RetryOption adjusts a retry.
type RetryOption func(*RetryError)

// Countdown sets the delay before the retry runs.
func Countdown(d time.Duration) RetryOption {
	return func(e *RetryError) { e.Countdown, e.countdownSet = d, true }
}

// At sets the time of the retry.
func At(t time.Time) RetryOption { return func(e *RetryError) { e.ETA = t } }

// MaxRetries overrides the task's retry limit for this retry.
func MaxRetries(n int) RetryOption { return func(e *RetryError) { e.MaxRetries = &n } }

// Retry returns an error that makes the worker retry the task.
func Retry(err error, opts ...RetryOption) error {
	e := &RetryError{Err: err}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Snooze re-schedules the task after d without counting a retry: the same
// message goes back to its queue with an ETA and unchanged retries, and no
// state is stored — for waits that are not failures, such as a rate limit
// with no budget left. The slot is free meanwhile.
func Snooze(d time.Duration) error {
	return &RetryError{Countdown: d, countdownSet: true, snooze: true}
}

// IsSnooze reports whether err is a Snooze.
func IsSnooze(err error) bool {
	var r *RetryError
	return errors.As(err, &r) && r.snooze
}

// RejectError is Celery's Reject: the message is rejected, and requeued
// (to the back of its queue) when Requeue is set. No result is stored.
type RejectError struct {
	Reason  string
	Requeue bool
}

func (e *RejectError) Error() string { return "reject: " + e.Reason }

// Reject returns a RejectError.
func Reject(reason string, requeue bool) error { return &RejectError{Reason: reason, Requeue: requeue} }

// ErrIgnore is Celery's Ignore: the message is acked and no state is stored.
var ErrIgnore = errors.New("ignore")
