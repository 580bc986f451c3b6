package worker

import (
	"context"
	"errors"
	"time"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
)

// maxFetch bounds one non-blocking fetch.
const maxFetch = 256

// consume takes messages while the prefetch window has room: a batch
// without blocking when the queues have a backlog, one BRPOP with a timeout
// when they are empty. It returns when ctx is done.
func (w *Worker) consume(ctx context.Context) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		n := w.credits.acquire(maxFetch)
		if n == 0 {
			return // closed
		}
		queues := w.Queues()
		if len(queues) == 0 {
			// Every queue was cancelled (cancel_consumer): idle until one
			// is added or the worker stops.
			w.credits.release(n)
			select {
			case <-time.After(w.cfg.BlockTimeout):
			case <-ctx.Done():
			}
			continue
		}
		deliveries, err := w.broker.Fetch(ctx, queues, n)
		if err == nil && len(deliveries) == 0 {
			var d *broker.Delivery
			d, err = w.broker.FetchBlocking(ctx, queues, w.cfg.BlockTimeout)
			if d != nil {
				deliveries = append(deliveries, *d)
			}
		}
		w.credits.release(n - len(deliveries))
		if err != nil {
			if ctx.Err() == nil {
				backoff = min(max(backoff*2, 100*time.Millisecond), 5*time.Second)
				w.log.Error().Err(err).Dur("retry_in", backoff).Msg("cannot fetch from the broker")
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
			}
		} else {
			backoff = 0
		}
		for _, d := range deliveries {
			w.deliver(d)
		}
		if len(deliveries) > 0 {
			w.served(deliveries[len(deliveries)-1].Queue)
		}
	}
}

// deliver decides what happens to a message that holds one credit: run it,
// hold it for its ETA, or settle it at once (undecodable, unknown, expired).
func (w *Worker) deliver(d broker.Delivery) {
	if d.DeadLettered {
		w.credits.release(1)
		w.log.Error().Str("queue", d.Queue).Int("bytes", len(d.Raw)).
			Msg("unreadable message moved to the dead-letter list (no delivery tag); no task id to report to")
		return
	}
	j := &job{d: d}
	j.credit.Store(true)
	w.mu.Lock()
	w.held[d.Tag] = j
	w.mu.Unlock()

	msg, err := celery.DecodeTask(d.Raw, celery.DecodeOptions{Accept: w.cfg.Accept, NaiveLocation: w.cfg.Location})
	if err != nil {
		var me *celery.MessageError
		if !errors.As(err, &me) {
			me = &celery.MessageError{Exc: celery.NewException("DecodeError", celery.ModuleKombu, err.Error())}
		}
		w.reject(j, me.TaskID, me.Task, me.Exc, "undecodable message")
		return
	}
	j.msg = msg
	j.def = w.registry.lookup(msg.Task)
	if j.def == nil {
		w.reject(j, msg.ID, msg.Task, celery.ErrNotRegistered(msg.Task), "unregistered task")
		return
	}
	now := w.clock.Now()
	if msg.Expires != nil && !now.Before(*msg.Expires) {
		w.log.Info().Str("task", msg.Task).Str("id", msg.ID).Msg("task expired before it was received; marked revoked")
		w.finishRevoked(j, "expired")
		return
	}
	if w.revoked.has(now, msg.ID) {
		w.log.Info().Str("task", msg.Task).Str("id", msg.ID).Msg("revoked task received; not run")
		w.finishRevoked(j, "revoked")
		return
	}
	w.log.Debug().Str("task", msg.Task).Str("id", msg.ID).Msg("received")
	w.events.task("task-received", func() map[string]any {
		return map[string]any{
			"uuid": msg.ID, "name": msg.Name(), "args": msg.ArgsRepr, "kwargs": msg.KwargsRepr,
			"root_id": nilIfEmpty(msg.RootID), "parent_id": nilIfEmpty(msg.ParentID), "retries": msg.Retries,
			"eta": timeOrNil(msg.ETA), "expires": timeOrNil(msg.Expires),
		}
	})
	if msg.ETA != nil && msg.ETA.After(now) {
		// Held ETA tasks do not count against the prefetch window.
		if j.credit.CompareAndSwap(true, false) {
			w.credits.release(1)
		}
		j.due = *msg.ETA
		w.scheduler.add(j)
		return
	}
	w.submit(j)
}

// submit hands a due job to the pool, unless its task's rate limit makes
// it wait first (in the scheduler, keeping its prefetch credit).
func (w *Worker) submit(j *job) {
	if !j.rated {
		j.rated = true
		if d := w.rates.reserve(j.msg.Task, w.clock.Now()); d > 0 {
			j.due = w.clock.Now().Add(d)
			w.scheduler.add(j)
			return
		}
	}
	w.pool.submit(j)
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return celery.FormatTime(*t)
}

// reject settles a message that cannot run: FAILURE is stored when the task
// id is known, and the raw message moves to the dead-letter list in the same
// transaction as its ack, so nothing is silently lost.
func (w *Worker) reject(j *job, taskID, task string, exc *celery.Exception, why string) {
	if taskID != "" {
		w.events.task("task-failed", func() map[string]any { return map[string]any{"uuid": taskID, "exception": exc.Repr()} })
	}
	w.log.Error().Str("reason", why).Str("task", task).Str("id", taskID).Str("queue", j.d.Queue).
		Str("error", exc.Error()).Msg("message rejected; kept in the dead-letter list")
	dead := &broker.DeadRecord{
		Reason: why, Error: exc.Error(), Queue: j.d.Queue, TaskID: taskID, Task: task,
		Worker: w.cfg.Hostname, DeadAt: float64(w.clock.Now().UnixMicro()) / 1e6, Message: string(j.d.Raw),
	}
	var p persist
	if taskID != "" {
		meta := &celery.ResultMeta{Status: celery.StateFailure, TaskID: taskID, DateDone: w.now()}
		if j.msg != nil {
			meta.GroupID, meta.ParentID = j.msg.Group, j.msg.ParentID
		}
		meta.Result, _ = exc.MarshalJSON()
		p.result = &backend.Record{TaskID: taskID, Meta: meta.AppendJSON(nil)}
	}
	j.state.Store(jobDone)
	if j.acked.CompareAndSwap(false, true) {
		p.settle = &broker.Settlement{Tag: j.d.Tag, Dead: dead}
		p.after = w.settled(j)
	} else {
		p.settle = &broker.Settlement{Dead: dead} // acked early: keep the record only
	}
	w.completer.submit(p)
}

func (w *Worker) now() *time.Time {
	t := w.clock.Now().In(w.cfg.Location)
	return &t
}

// settled returns the bookkeeping to run once a job's ack is written.
func (w *Worker) settled(j *job) func() {
	return func() {
		w.mu.Lock()
		delete(w.held, j.d.Tag)
		w.mu.Unlock()
		if j.credit.CompareAndSwap(true, false) {
			w.credits.release(1)
		}
	}
}
