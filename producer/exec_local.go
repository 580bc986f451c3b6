package producer

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/qagen/qagen/tasks"
	"github.com/qagen/qagen/worker"
)

// LocalExecutor runs the Q&A tasks in this process on a bounded pool of
// goroutines — no broker needed. Retries follow the tasks' own schedule,
// and so do snoozes (the rate limiter's "come back later", not counted as
// attempts): a unit waiting for either holds no slot.
type LocalExecutor struct {
	QA          *tasks.QA
	Concurrency int
	Model       string
	Provider    string
	Progress    func(u *Unit)
	Log         zerolog.Logger
}

type attempt struct {
	u       *Unit
	retries int
}

// Run implements Executor.
func (e *LocalExecutor) Run(ctx context.Context, units []*Unit, done func(*Unit)) error {
	if len(units) == 0 {
		return nil // nothing would ever close finished
	}
	n := max(e.Concurrency, 1)
	work := make(chan attempt, len(units))
	for _, u := range units {
		if u.TaskID == "" {
			u.TaskID = uuid.NewString()
		}
		u.State = StatePending
		work <- attempt{u: u}
	}
	var mu sync.Mutex // serialises done and the pending count
	pending := len(units)
	finished := make(chan struct{})
	finish := func(u *Unit) {
		mu.Lock()
		defer mu.Unlock()
		done(u)
		if pending--; pending == 0 {
			close(finished)
		}
	}
	var timers sync.WaitGroup
	var timerMu sync.Mutex
	var waiting []*time.Timer // retries waiting for their countdown
	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-runCtx.Done():
					return
				case a := <-work:
					res, err := e.run(runCtx, a)
					var retry *worker.RetryError
					switch {
					case errors.As(err, &retry):
						if runCtx.Err() != nil {
							return
						}
						next := attempt{u: a.u, retries: a.retries}
						if !worker.IsSnooze(err) { // a snooze waits for budget: not an attempt
							next.retries++
							a.u.Attempts++
							if e.Progress != nil {
								e.Progress(a.u)
							}
						}
						timers.Add(1)
						t := time.AfterFunc(retry.Countdown, func() {
							defer timers.Done()
							select {
							case work <- next:
							case <-runCtx.Done():
							}
						})
						timerMu.Lock()
						waiting = append(waiting, t)
						timerMu.Unlock()
					case err != nil:
						if runCtx.Err() != nil {
							return
						}
						a.u.State, a.u.Error = StateFailed, err.Error()
						finish(a.u)
					default:
						a.u.apply(&res)
						finish(a.u)
					}
				}
			}
		}()
	}
	select {
	case <-finished:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	timerMu.Lock()
	for _, t := range waiting {
		if t.Stop() {
			timers.Done()
		}
	}
	timerMu.Unlock()
	timers.Wait()
	return ctx.Err()
}

func (e *LocalExecutor) run(ctx context.Context, a attempt) (tasks.QAResult, error) {
	ctx = worker.WithRequest(ctx, &worker.Request{ID: a.u.TaskID, Retries: a.retries, Hostname: "local"})
	if a.u.Batch() {
		list, err := json.Marshal(a.u.Chunks)
		if err != nil {
			return tasks.QAResult{}, err
		}
		return e.QA.Batch(ctx, list, a.u.Config, e.Model, e.Provider)
	}
	return e.QA.Chunk(ctx, a.u.Chunks[0], a.u.Config, e.Model, e.Provider)
}
