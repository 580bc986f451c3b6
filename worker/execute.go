package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
)

var (
	errSoftTimeLimit = errors.New("soft time limit exceeded")
	errHardTimeLimit = errors.New("hard time limit exceeded")
	errTerminated    = errors.New("terminated by remote control")
)

// limits returns the hard and soft limits for a job: the message header
// wins over the task's options, which win over the worker defaults.
func (w *Worker) limits(j *job) (hard, soft time.Duration) {
	hard, soft = w.cfg.TimeLimit, w.cfg.SoftTimeLimit
	if j.def.opts.TimeLimit > 0 {
		hard = j.def.opts.TimeLimit
	}
	if j.def.opts.SoftTimeLimit > 0 {
		soft = j.def.opts.SoftTimeLimit
	}
	if o, ok := w.timeLimitOverride(j.msg.Task); ok {
		if o[0] > 0 {
			hard = o[0]
		}
		if o[1] > 0 {
			soft = o[1]
		}
	}
	if h := j.msg.TimeLimit[0]; h != nil {
		hard = seconds(*h)
	}
	if s := j.msg.TimeLimit[1]; s != nil {
		soft = seconds(*s)
	}
	return hard, soft
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func (w *Worker) acksLate(j *job) bool {
	if j.def.opts.AcksLate != nil {
		return *j.def.opts.AcksLate
	}
	return w.cfg.AcksLate
}

// execute runs one job on a pool goroutine. It reports whether the job was
// given up while running (hard time limit, cold shutdown); its slot has
// then been handed over already, or no longer matters.
func (w *Worker) execute(j *job) bool {
	ctx, cancel := context.WithCancelCause(w.taskCtx)
	defer cancel(nil)
	hard, soft, ok := w.start(j, cancel)
	if !ok {
		return false
	}
	defer func() {
		w.mu.Lock()
		delete(w.running, j)
		w.mu.Unlock()
	}()
	if j.state.Load() != jobActive {
		return true // terminated before its body started
	}
	ctx = WithRequest(ctx, j.req)
	timer := w.armLimits(j, cancel, hard, soft)
	res, err := w.call(ctx, j)
	if timer != nil {
		timer.Stop()
	}
	w.settling.RLock()
	defer w.settling.RUnlock()
	if !j.state.CompareAndSwap(jobActive, jobDone) {
		return true
	}
	var retry *RetryError
	if err != nil && !errors.As(err, &retry) && errors.Is(context.Cause(ctx), errSoftTimeLimit) && isCancellation(err) {
		// A task that asked for a retry on its soft limit gets it, as a
		// Python task catching SoftTimeLimitExceeded does.
		err = celery.ErrSoftTimeLimit()
	}
	w.finish(j, res, err)
	return false
}

// start moves a job from reserved to active, registers it as running with
// the cancel of its context, and hands its start-time writes (early ack,
// STARTED) to the completer. It reports false when the job was given up by
// a shutdown, or had expired or been revoked (REVOKED is then stored).
func (w *Worker) start(j *job, cancel context.CancelCauseFunc) (hard, soft time.Duration, ok bool) {
	w.settling.RLock()
	defer w.settling.RUnlock()
	msg := j.msg
	now := w.clock.Now()
	if msg.Expires != nil && !now.Before(*msg.Expires) {
		if j.state.CompareAndSwap(jobReserved, jobDone) {
			w.finishRevoked(j, "expired")
		}
		return 0, 0, false
	}
	if w.revoked.has(now, msg.ID) {
		if j.state.CompareAndSwap(jobReserved, jobDone) {
			w.finishRevoked(j, "revoked")
		}
		return 0, 0, false
	}
	if !j.state.CompareAndSwap(jobReserved, jobActive) {
		return 0, 0, false // restored by a shutdown before it started
	}
	j.started = now
	w.events.task("task-started", func() map[string]any { return map[string]any{"uuid": msg.ID} })
	hard, soft = w.limits(j)
	j.req = &Request{
		ID: msg.ID, Task: msg.Task, Args: msg.Args, Kwargs: msg.Kwargs, Retries: msg.Retries,
		ETA: msg.ETA, Expires: msg.Expires, RootID: msg.RootID, ParentID: msg.ParentID, GroupID: msg.Group,
		Hostname: w.cfg.Hostname, DeliveryInfo: msg.DeliveryInfo, Priority: msg.Priority,
		Redelivered: msg.Redelivered, TimeLimit: hard, SoftTimeLimit: soft, msg: msg,
	}
	w.mu.Lock()
	j.cancel = cancel
	w.running[j] = struct{}{}
	w.mu.Unlock()
	if !w.acksLate(j) {
		// Early ack, when the task starts (Celery acks when a pool process
		// accepts the task).
		j.acked.Store(true)
		w.completer.submit(persist{settle: &broker.Settlement{Tag: j.d.Tag}, after: w.settled(j)})
	}
	if w.cfg.TrackStarted && !msg.IgnoreResult && !j.def.opts.IgnoreResult {
		started, _ := json.Marshal(map[string]any{"pid": w.pid, "hostname": w.cfg.Hostname})
		meta := &celery.ResultMeta{Status: celery.StateStarted, Result: started, TaskID: msg.ID,
			GroupID: msg.Group, ParentID: msg.ParentID, Extended: w.extended(j)}
		w.completer.submit(persist{result: &backend.Record{TaskID: msg.ID, Meta: meta.AppendJSON(nil)}})
	}
	return hard, soft, true
}

// armLimits schedules the soft limit (cancel the context with
// SoftTimeLimitExceeded) and the hard limit (give the job up, free its slot
// and store TimeLimitExceeded) on one timer.
func (w *Worker) armLimits(j *job, cancel context.CancelCauseFunc, hard, soft time.Duration) interface{ Stop() bool } {
	onHard := func() {
		w.settling.RLock()
		defer w.settling.RUnlock()
		if !w.abandon(j, cancel, errHardTimeLimit) {
			return
		}
		w.log.Error().Str("task", j.msg.Task).Str("id", j.msg.ID).Dur("limit", hard).
			Msg("hard time limit exceeded; the task's slot is freed and its result discarded")
		exc := celery.ErrTimeLimit(hard.Seconds())
		w.finishFailure(j, exc, "")
	}
	switch {
	case soft > 0 && (hard <= 0 || soft < hard):
		t := &limitTimer{}
		t.set(w.clock.AfterFunc(soft, func() {
			cancel(errSoftTimeLimit)
			if hard > 0 {
				t.set(w.clock.AfterFunc(hard-soft, onHard))
			}
		}))
		return t
	case hard > 0:
		return w.clock.AfterFunc(hard, onHard)
	}
	return nil
}

// abandon gives up a running job (hard time limit, terminate): its
// context is cancelled with cause and its slot handed to the next job; its
// body's outcome will be ignored. It reports false when the job had
// finished or been given up already. The caller holds settling (read) until
// it has handed the job's writes to the completer.
func (w *Worker) abandon(j *job, cancel context.CancelCauseFunc, cause error) bool {
	if !j.state.CompareAndSwap(jobActive, jobAbandoned) {
		return false
	}
	cancel(cause)
	w.mu.Lock()
	delete(w.running, j)
	w.mu.Unlock()
	w.pool.handOver()
	return true
}

// call runs the task body, turning a panic into an error with its stack.
func (w *Worker) call(ctx context.Context, j *job) (res json.RawMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &celery.Exception{Type: "RuntimeError", Module: celery.ModuleBuiltins,
				Args: []any{fmt.Sprintf("panic: %v", r)}, Traceback: goTraceback(j, fmt.Sprintf("panic: %v", r), debug.Stack())}
		}
	}()
	return j.def.run(ctx, j.msg.Args, j.msg.Kwargs)
}

func isCancellation(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errSoftTimeLimit)
}

// finish writes the outcome of a job that ran.
func (w *Worker) finish(j *job, res json.RawMessage, err error) {
	msg := j.msg
	var retry *RetryError
	var reject *RejectError
	var argErr *ArgumentError
	switch {
	case errors.As(err, &argErr):
		w.count(j)
		w.reject(j, msg.ID, msg.Task, argErr.Exc, "arguments do not match the task")
	case err == nil:
		w.count(j)
		runtime := w.clock.Now().Sub(j.started)
		w.log.Info().Str("task", msg.Task).Str("id", msg.ID).Float64("runtime_s", runtime.Seconds()).Msg("succeeded")
		w.events.task("task-succeeded", func() map[string]any {
			return map[string]any{"uuid": msg.ID, "result": reprResult(res), "runtime": runtime.Seconds()}
		})
		p := persist{publish: w.followUps(j, res)}
		if !msg.IgnoreResult && !j.def.opts.IgnoreResult {
			meta := w.meta(j, celery.StateSuccess, res, "")
			meta.Children = w.children(p.publish)
			p.result = &backend.Record{TaskID: msg.ID, Meta: meta.AppendJSON(nil)}
		}
		w.finishPart(j, p, celery.StateSuccess, res)
	case errors.As(err, &retry):
		w.retry(j, retry)
	case errors.As(err, &reject):
		w.count(j)
		w.log.Warn().Str("task", msg.Task).Str("id", msg.ID).Bool("requeue", reject.Requeue).Str("reason", reject.Reason).Msg("task rejected itself")
		requeue := reject.Requeue && !j.acked.Load()
		w.events.task("task-rejected", func() map[string]any { return map[string]any{"uuid": msg.ID, "requeue": requeue} })
		if requeue {
			j.acked.Store(true)
			w.completer.submit(persist{requeue: j.d.Tag, after: w.settled(j)})
			return
		}
		w.settleWith(j, persist{})
	case errors.Is(err, ErrIgnore):
		w.count(j)
		w.settleWith(j, persist{})
	default:
		w.count(j)
		exc := exceptionOf(err)
		if exc.Traceback == "" {
			exc.Traceback = goTraceback(j, exc.Error(), nil)
		}
		w.finishFailure(j, exc, exc.Traceback)
	}
}

func (w *Worker) count(j *job) {
	w.processed.Add(1)
	w.statsMu.Lock()
	w.totals[j.msg.Task]++
	w.statsMu.Unlock()
}

// settleWith adds the late ack (if the job was not acked early) to p and
// submits it.
func (w *Worker) settleWith(j *job, p persist) {
	if j.acked.CompareAndSwap(false, true) {
		p.settle = &broker.Settlement{Tag: j.d.Tag}
		p.after = w.settled(j)
	}
	w.completer.submit(p)
}

// finishFailure stores FAILURE (always, even with ignore_result, as Celery
// does) and acks (task_acks_on_failure_or_timeout).
func (w *Worker) finishFailure(j *job, exc *celery.Exception, traceback string) {
	w.log.Error().Str("task", j.msg.Task).Str("id", j.msg.ID).Str("error", exc.Error()).Msg("failed")
	w.events.task("task-failed", func() map[string]any {
		return map[string]any{"uuid": j.msg.ID, "exception": exc.Repr(), "traceback": traceback}
	})
	result, _ := exc.MarshalJSON()
	meta := w.meta(j, celery.StateFailure, result, traceback)
	msgs, others := w.failureFollowUps(j, meta)
	p := persist{publish: msgs, result: &backend.Record{TaskID: j.msg.ID, Meta: meta.AppendJSON(nil)}}
	w.finishPart(j, p, celery.StateFailure, result)
	for _, m := range others {
		w.completer.submit(persist{result: &backend.Record{TaskID: m.TaskID, Meta: m.AppendJSON(nil)}})
	}
}

// finishRevoked stores REVOKED with TaskRevokedError(reason) and acks.
func (w *Worker) finishRevoked(j *job, reason string) { w.finishRevokedEvent(j, reason, "") }

func (w *Worker) finishRevokedEvent(j *job, reason, signal string) {
	w.events.task("task-revoked", func() map[string]any {
		return map[string]any{"uuid": j.msg.ID, "terminated": reason == "terminated",
			"signum": signalNumber(signal), "expired": reason == "expired"}
	})
	result, _ := celery.ErrRevoked(reason).MarshalJSON()
	meta := w.meta(j, celery.StateRevoked, result, "")
	j.state.Store(jobDone)
	w.finishPart(j, persist{result: &backend.Record{TaskID: j.msg.ID, Meta: meta.AppendJSON(nil)}}, celery.StateRevoked, result)
}

// retry re-publishes the task as Celery's Task.retry does, or fails it when
// its retries are used up.
func (w *Worker) retry(j *job, r *RetryError) {
	msg := j.msg
	maxRetries := j.def.opts.MaxRetries
	if r.MaxRetries != nil {
		maxRetries = *r.MaxRetries
	}
	if !r.snooze && maxRetries >= 0 && msg.Retries >= maxRetries {
		w.count(j)
		var exc *celery.Exception
		if r.Err != nil {
			exc = exceptionOf(r.Err)
		} else {
			exc = celery.ErrMaxRetriesExceeded(msg.Task, msg.ID, msg.Args, msg.Kwargs)
		}
		if exc.Traceback == "" {
			exc.Traceback = goTraceback(j, exc.Error(), nil)
		}
		w.finishFailure(j, exc, exc.Traceback)
		return
	}
	now := w.clock.Now()
	eta := r.ETA
	if eta.IsZero() {
		countdown := r.Countdown
		if !r.countdownSet && countdown == 0 {
			countdown = j.def.opts.RetryDelay
		}
		eta = now.Add(countdown)
	}
	eta = eta.In(w.cfg.Location)
	next := *msg
	next.Headers = msg.RawHeaders()
	next.ETA = &eta
	if !r.snooze {
		next.Retries = msg.Retries + 1
		next.ParentID = msg.ID
	}
	next.DeliveryTag = ""
	next.Redelivered = false
	next.Origin = fmt.Sprintf("gen%d@%s", w.pid, hostPart(w.cfg.Hostname))
	next.DeliveryInfo = celery.DeliveryInfo{RoutingKey: j.d.Queue}
	body, err := celery.EncodeTask(&next, celery.EncodeOptions{})
	if err != nil {
		w.finishFailure(j, celery.NewException("EncodeError", celery.ModuleKombu, "cannot re-publish the retry: "+err.Error()), "")
		return
	}
	if r.snooze {
		w.log.Debug().Str("task", msg.Task).Str("id", msg.ID).Time("eta", eta).Msg("snoozed")
		w.settleWith(j, persist{publish: []broker.Message{{Queue: j.d.Queue, Priority: msg.Priority, Body: body}}})
		return
	}
	var exc json.RawMessage
	reason := "Retry in " + eta.Sub(now).Round(time.Millisecond).String()
	if r.Err != nil {
		e := exceptionOf(r.Err)
		exc, _ = e.MarshalJSON()
		reason = e.Error()
	}
	w.log.Warn().Str("task", msg.Task).Str("id", msg.ID).Int("retries", next.Retries).Time("eta", eta).Str("reason", reason).Msg("retry")
	w.events.task("task-retried", func() map[string]any {
		return map[string]any{"uuid": msg.ID, "exception": retryRepr(r, reason), "traceback": goTraceback(j, reason, nil)}
	})
	meta := w.meta(j, celery.StateRetry, exc, goTraceback(j, "celery.exceptions.Retry: "+reason, nil))
	meta.DateDone = nil
	meta.Children = json.RawMessage("[" + string(celery.ResultTuple(msg.ID)) + "]")
	w.settleWith(j, persist{
		publish: []broker.Message{{Queue: j.d.Queue, Priority: msg.Priority, Body: body}},
		result:  &backend.Record{TaskID: msg.ID, Meta: meta.AppendJSON(nil)},
	})
}

// meta builds a result meta for the job's task.
func (w *Worker) meta(j *job, state celery.State, result json.RawMessage, traceback string) *celery.ResultMeta {
	return &celery.ResultMeta{
		Status: state, Result: result, Traceback: traceback, DateDone: w.now(),
		GroupID: j.msg.Group, ParentID: j.msg.ParentID, Extended: w.extended(j), TaskID: j.msg.ID,
	}
}

func (w *Worker) extended(j *job) *celery.Extended {
	if !w.cfg.ResultExtended {
		return nil
	}
	return &celery.Extended{Name: j.msg.Name(), Args: j.msg.Args, Kwargs: j.msg.Kwargs,
		Worker: w.cfg.Hostname, Retries: j.msg.Retries, Queue: j.msg.DeliveryInfo.RoutingKey}
}

// children lists the follow-up messages as result tuples.
func (w *Worker) children(msgs []broker.Message) json.RawMessage {
	if len(msgs) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		id := taskIDOf(m.Body)
		b.Write(celery.ResultTuple(id))
	}
	b.WriteByte(']')
	return json.RawMessage(b.String())
}

func taskIDOf(envelope []byte) string {
	var e struct {
		Properties struct {
			CorrelationID string `json:"correlation_id"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(envelope, &e)
	return e.Properties.CorrelationID
}

// exceptionOf maps a task error to the Python exception stored for it.
func exceptionOf(err error) *celery.Exception {
	var exc *celery.Exception
	if errors.As(err, &exc) {
		cp := *exc
		return &cp
	}
	if errors.Is(err, errSoftTimeLimit) {
		return celery.ErrSoftTimeLimit()
	}
	return celery.NewException("Exception", celery.ModuleBuiltins, err.Error())
}

// goTraceback renders a Python-style traceback for a Go task, so tools
// that show AsyncResult.traceback have something meaningful.
func goTraceback(j *job, last string, stack []byte) string {
	var b strings.Builder
	b.WriteString("Traceback (most recent call last):\n")
	fmt.Fprintf(&b, "  Go task %s[%s]\n", j.msg.Task, j.msg.ID)
	if len(stack) > 0 {
		for _, line := range strings.Split(strings.TrimSpace(string(stack)), "\n") {
			b.WriteString("    ")
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	b.WriteString(last)
	b.WriteByte('\n')
	return b.String()
}

func hostPart(nodename string) string {
	if _, host, ok := strings.Cut(nodename, "@"); ok {
		return host
	}
	return nodename
}

// newID returns a fresh task id.
func newID() string { return uuid.NewString() }

// reprResult is the Python repr of a task's JSON result, as task-succeeded
// events carry it.
func reprResult(res json.RawMessage) string {
	if len(res) > 0 && res[0] == '[' {
		// A list, not a tuple: wrap it so ReprJSON shows the list itself.
		return trimOuterTuple(celery.ReprJSON(append(append([]byte{'['}, res...), ']'), "None"))
	}
	return celery.ReprJSON(res, "None")
}

func trimOuterTuple(s string) string {
	s = strings.TrimPrefix(s, "(")
	s = strings.TrimSuffix(s, ")")
	return strings.TrimSuffix(s, ",")
}

func retryRepr(r *RetryError, reason string) string {
	if r.Err != nil {
		return exceptionOf(r.Err).Repr()
	}
	return "Retry(" + celery.PyRepr(reason) + ")"
}

// signalNumber is the signum of a task-revoked event: the signal's number,
// as Celery sends it (SIGTERM is 15), or null.
func signalNumber(name string) any {
	if name == "" {
		return nil
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n
	}
	if n, ok := signalNumbers[strings.TrimPrefix(strings.ToUpper(name), "SIG")]; ok {
		return n
	}
	return name
}

var signalNumbers = map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ABRT": 6, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15}
