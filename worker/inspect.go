package worker

import (
	"encoding/json"
	"time"

	"github.com/qagen/qagen/celery"
)

// TaskInfo describes a task the worker holds, shaped like the request info
// of Celery's inspect replies.
type TaskInfo struct {
	ID           string
	Name         string
	Args         json.RawMessage
	Kwargs       json.RawMessage
	ArgsRepr     string
	KwargsRepr   string
	ETA          *time.Time
	Started      time.Time // zero unless running
	Acknowledged bool
	DeliveryInfo celery.DeliveryInfo
	Priority     int
	Redelivered  bool
}

func (j *job) info() TaskInfo {
	m := j.msg
	return TaskInfo{
		ID: m.ID, Name: m.Name(), Args: m.Args, Kwargs: m.Kwargs, ArgsRepr: m.ArgsRepr, KwargsRepr: m.KwargsRepr,
		ETA: m.ETA, Started: j.started, Acknowledged: j.acked.Load(), DeliveryInfo: m.DeliveryInfo,
		Priority: m.Priority, Redelivered: m.Redelivered,
	}
}

// Active lists the tasks running now.
func (w *Worker) Active() []TaskInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []TaskInfo
	for j := range w.running {
		out = append(out, j.info())
	}
	return out
}

// Reserved lists tasks taken from the queue that wait for a free slot or
// for their rate limit (ETA tasks are listed by Scheduled).
func (w *Worker) Reserved() []TaskInfo {
	var out []TaskInfo
	for _, j := range w.pool.queued() {
		out = append(out, j.info())
	}
	for _, j := range w.scheduler.snapshot() {
		if !isETAHold(j) {
			out = append(out, j.info())
		}
	}
	return out
}

// Scheduled lists the ETA tasks held until they are due, earliest first.
func (w *Worker) Scheduled() []TaskInfo {
	var out []TaskInfo
	for _, j := range w.scheduler.snapshot() {
		if isETAHold(j) {
			out = append(out, j.info())
		}
	}
	return out
}

func isETAHold(j *job) bool { return j.msg.ETA != nil && j.due.Equal(*j.msg.ETA) }

// Totals returns how many tasks of each name finished since start.
func (w *Worker) Totals() map[string]int64 {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	out := make(map[string]int64, len(w.totals))
	for k, v := range w.totals {
		out[k] = v
	}
	return out
}

// SetConcurrency changes how many tasks run at once, and the prefetch
// window with it (Celery's pool_grow/pool_shrink).
func (w *Worker) SetConcurrency(n int) {
	n = max(n, 1)
	w.pool.resize(n)
	w.credits.resize(n * w.cfg.PrefetchMultiplier)
}

// PoolSize reports the pool's slots, the tasks running and the tasks
// waiting for a slot.
func (w *Worker) PoolSize() (slots, running, queued int) { return w.pool.size() }
