package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
)

// finishPart submits a finished job's writes. A chord header task first
// stores its own result, then joins the chord (Celery's Redis backend does
// the join on the worker that finishes the last header task), and only then
// is its message acked, so a crash in between redelivers it instead of
// leaving the chord waiting for ever.
func (w *Worker) finishPart(j *job, p persist, state celery.State, result json.RawMessage) {
	chord := j.msg.Embed.Chord
	if chord == nil || j.msg.Group == "" {
		w.settleWith(j, p)
		return
	}
	w.joins.Add(1)
	p.after = func() {
		go func() {
			defer w.joins.Done()
			w.joinChord(j, state, result)
		}()
	}
	w.completer.submit(p)
}

func (w *Worker) joinChord(j *job, state celery.State, result json.RawMessage) {
	msg := j.msg
	var parts []backend.ChordPart
	delay := 100 * time.Millisecond
	for {
		var err error
		parts, err = w.results.JoinChord(context.Background(), msg.Group, msg.GroupIndex,
			backend.ChordPart{TaskID: msg.ID, State: state, Result: result})
		if err == nil {
			break
		}
		w.log.Error().Err(err).Str("group", msg.Group).Str("id", msg.ID).Msg("chord join failed; retrying")
		select {
		case <-time.After(delay):
		case <-w.abort:
			return // still unacked: it will be restored and joined again
		}
		delay = min(delay*2, 5*time.Second)
	}
	var p persist
	if parts != nil {
		p = w.chordCallback(j, parts)
	}
	w.settleWith(j, p)
}

// chordCallback sends the chord body with the ordered header results, or
// fails it with ChordError when a header task failed.
func (w *Worker) chordCallback(j *job, parts []backend.ChordPart) persist {
	cb := *j.msg.Embed.Chord
	var opts signatureOptions
	_ = celery.Unmarshal(cb.Options, &opts)
	for _, part := range parts {
		if part.State == celery.StateFailure || part.State == celery.StateRevoked {
			reason := string(part.Result)
			if exc, err := celery.ExceptionFromJSON(part.Result); err == nil {
				reason = exc.Repr()
			}
			exc := celery.NewException("ChordError", celery.ModuleCelery, fmt.Sprintf("Dependency %s raised %s", part.TaskID, reason))
			w.log.Error().Str("group", j.msg.Group).Str("callback", opts.TaskID).Str("error", exc.Error()).Msg("chord failed")
			if opts.TaskID == "" {
				return persist{}
			}
			res, _ := exc.MarshalJSON()
			meta := &celery.ResultMeta{Status: celery.StateFailure, Result: res, DateDone: w.now(), TaskID: opts.TaskID}
			return persist{result: &backend.Record{TaskID: opts.TaskID, Meta: meta.AppendJSON(nil)}}
		}
	}
	results := make([]byte, 0, 64)
	results = append(results, '[')
	for i, part := range parts {
		if i > 0 {
			results = append(results, ',')
		}
		if len(part.Result) == 0 {
			results = append(results, "null"...)
		} else {
			results = append(results, part.Result...)
		}
	}
	results = append(results, ']')
	m, err := w.signatureMessage(j, cb, results, nil)
	if err != nil {
		w.log.Error().Err(err).Str("group", j.msg.Group).Msg("cannot send the chord callback")
		return persist{}
	}
	w.log.Info().Str("group", j.msg.Group).Str("callback", cb.Task).Int("parts", len(parts)).Msg("chord complete; callback sent")
	return persist{publish: []broker.Message{m}}
}
