package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/tasks"
)

// Executor runs units of work and reports each unit when it reaches a
// final state. Run returns when every unit is final, or earlier when ctx is
// done or the run stalls; units still pending are then left as they are.
type Executor interface {
	Run(ctx context.Context, units []*Unit, done func(*Unit)) error
}

// redisBatch is the most tasks sent, or results read, in one pipeline.
const redisBatch = 1000

// ErrStalled ends a Celery run in which nothing finished for StallTimeout.
var ErrStalled = errors.New("no task finished for the stall timeout")

// CeleryExecutor sends units to workers as the Python producer does (one
// generate_qa_unified_async per chunk, args (chunk, config, model,
// provider), queue qa_generation) and collects their results by
// subscribing to the result channels, with a pipelined MGET sweep of what
// is still pending every SweepInterval — never one GET per task per second.
type CeleryExecutor struct {
	Client   *Client
	Queue    string
	Model    string
	Provider string
	// SweepInterval is how often pending results are read with MGET in
	// case a published result was missed (default 5 s).
	SweepInterval time.Duration
	// StallTimeout ends the run when no task has finished for that long
	// (0: wait for ever; the caller's --timeout and Ctrl-C still apply).
	StallTimeout time.Duration
	// Progress is told about retries (attempt counts) as they happen.
	Progress func(u *Unit)
	Log      zerolog.Logger
}

// taskFor is the Celery task of a unit: the Python producer's argument
// shape for single chunks; the batch task (provider only when not gemini,
// since Python's batch task takes three arguments) for several.
func (e *CeleryExecutor) taskFor(u *Unit) (Task, error) {
	var args []any
	name := tasks.TaskUnified
	model := any(nil)
	if e.Model != "" {
		model = e.Model
	}
	if u.Batch() {
		name = tasks.TaskBatch
		args = []any{u.Chunks, u.Config, model}
		if e.Provider != "" && e.Provider != "gemini" {
			args = append(args, e.Provider)
		}
	} else {
		provider := any(nil)
		if e.Provider != "" {
			provider = e.Provider
		}
		args = []any{u.Chunks[0], u.Config, model, provider}
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return Task{}, err
	}
	return Task{Name: name, Args: raw, Options: Options{ID: u.TaskID, Queue: e.Queue}}, nil
}

// Run implements Executor.
func (e *CeleryExecutor) Run(ctx context.Context, units []*Unit, done func(*Unit)) error {
	if e.SweepInterval <= 0 {
		e.SweepInterval = 5 * time.Second
	}
	byID := make(map[string]*Unit, len(units))
	ids := make([]string, 0, len(units))
	for _, u := range units {
		if u.TaskID == "" {
			u.TaskID = uuid.NewString()
		}
		u.State = StatePending
		byID[u.TaskID] = u
		ids = append(ids, u.TaskID)
	}
	// Subscribe first, so no result published after the send is missed.
	sub, err := e.Client.Backend.Subscribe(ctx, ids...)
	if err != nil {
		return fmt.Errorf("subscribe to results: %w", err)
	}
	// Closed only after the stream goroutine has stopped reading from it.
	streamDone := make(chan struct{})
	defer func() {
		<-streamDone
		sub.Close()
	}()
	metas := make(chan *celery.ResultMeta, 1024)
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	streamErr := make(chan error, 1)
	go func() {
		defer close(streamDone)
		streamErr <- sub.Stream(streamCtx, func(m *celery.ResultMeta) {
			select {
			case metas <- m:
			case <-streamCtx.Done():
			}
		})
	}()

	for start := 0; start < len(units); start += redisBatch {
		batch := make([]Task, 0, redisBatch)
		for _, u := range units[start:min(start+redisBatch, len(units))] {
			t, err := e.taskFor(u)
			if err != nil {
				return err
			}
			batch = append(batch, t)
		}
		if _, err := e.Client.Send(ctx, batch...); err != nil {
			return fmt.Errorf("send tasks: %w", err)
		}
	}
	e.Log.Info().Int("tasks", len(units)).Str("queue", e.Queue).Msg("tasks sent")

	pending := len(units)
	lastProgress := time.Now()
	// The last RETRY meta seen per task: sweeps read a stored RETRY again
	// until the next attempt ends, and it may also have been published;
	// count each retry once.
	lastRetry := map[string]string{}
	apply := func(m *celery.ResultMeta) {
		u := byID[m.TaskID]
		if u == nil || u.State != StatePending {
			return
		}
		if m.Status == celery.StateRetry {
			seen := string(m.Result) + "\x00" + m.Traceback
			if lastRetry[m.TaskID] == seen {
				return
			}
			lastRetry[m.TaskID] = seen
		}
		if u.applyMeta(m) {
			pending--
			lastProgress = time.Now()
			done(u)
		} else if m.Status == celery.StateRetry && e.Progress != nil {
			e.Progress(u) // not for STARTED (task_track_started)
		}
	}
	sweep := func() error {
		var todo []string
		for _, u := range units {
			if u.State == StatePending {
				todo = append(todo, u.TaskID)
			}
		}
		for start := 0; start < len(todo); start += redisBatch {
			batch := todo[start:min(start+redisBatch, len(todo))]
			ms, err := e.Client.Backend.GetMany(ctx, batch)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m != nil {
					apply(m)
				}
			}
		}
		return nil
	}
	// Results stored before the subscription took effect.
	if err := sweep(); err != nil {
		return err
	}
	tick := time.NewTicker(e.SweepInterval)
	defer tick.Stop()
	for pending > 0 {
		select {
		case m := <-metas:
			apply(m)
		case <-tick.C:
			if err := sweep(); err != nil {
				e.Log.Warn().Err(err).Msg("result sweep failed; retrying")
			}
			if e.StallTimeout > 0 && time.Since(lastProgress) > e.StallTimeout {
				return ErrStalled
			}
		case err := <-streamErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.Log.Warn().Err(err).Msg("result subscription lost; collecting by polling")
			streamErr = nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
