package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
)

// signatureOptions are the send options a signature may carry.
type signatureOptions struct {
	TaskID        string            `json:"task_id"`
	Queue         json.RawMessage   `json:"queue"` // a name, or a kombu Queue dict
	RoutingKey    string            `json:"routing_key"`
	Priority      *int              `json:"priority"`
	Countdown     *float64          `json:"countdown"`
	ETA           json.RawMessage   `json:"eta"`
	Expires       json.RawMessage   `json:"expires"`
	TimeLimit     *float64          `json:"time_limit"`
	SoftTimeLimit *float64          `json:"soft_time_limit"`
	Link          json.RawMessage   `json:"link"`
	LinkError     json.RawMessage   `json:"link_error"`
	GroupID       string            `json:"group_id"`
	GroupIndex    *int              `json:"group_index"`
	Chord         *celery.Signature `json:"chord"`
	Headers       json.RawMessage   `json:"headers"`
	Shadow        string            `json:"shadow"`
	ReplyTo       string            `json:"reply_to"`
}

// followUps builds the messages a successful task sends: its link
// callbacks, then the next step of its chain (the last element of the
// reversed chain list), each with the result in front of its args.
func (w *Worker) followUps(j *job, result json.RawMessage) []broker.Message {
	e := j.msg.Embed
	var out []broker.Message
	for _, sig := range e.Callbacks {
		out = append(out, w.expandSignature(j, sig, result, nil)...)
	}
	if n := len(e.Chain); n > 0 {
		rest := append([]celery.Signature{}, e.Chain[:n-1]...)
		out = append(out, w.expandSignature(j, e.Chain[n-1], result, rest)...)
	}
	return out
}

// expandSignature turns a signature (plain, group or chain) into messages.
// prepend is the parent's result (nil for errbacks, which get the failed
// task's id instead, passed in as prepend too).
func (w *Worker) expandSignature(j *job, sig celery.Signature, prepend json.RawMessage, chain []celery.Signature) []broker.Message {
	kind := ""
	if sig.SubtaskType != nil {
		kind = *sig.SubtaskType
	}
	switch kind {
	case "":
		m, err := w.signatureMessage(j, sig, prepend, chain)
		if err != nil {
			w.log.Error().Err(err).Str("task", sig.Task).Msg("cannot send a follow-up task")
			return nil
		}
		return []broker.Message{m}
	case "group", "chain":
		var kw struct {
			Tasks []celery.Signature `json:"tasks"`
		}
		if err := celery.Unmarshal(sig.Kwargs, &kw); err != nil || len(kw.Tasks) == 0 {
			w.log.Error().Str("kind", kind).Msg("follow-up canvas has no tasks")
			return nil
		}
		if kind == "group" {
			var out []broker.Message
			for _, t := range kw.Tasks {
				out = append(out, w.expandSignature(j, t, prepend, chain)...)
			}
			return out
		}
		// A chain runs its first task with the rest, reversed, as its chain.
		rest := append([]celery.Signature{}, chain...)
		for i := len(kw.Tasks) - 1; i >= 1; i-- {
			rest = append(rest, kw.Tasks[i])
		}
		return w.expandSignature(j, kw.Tasks[0], prepend, rest)
	default:
		w.log.Error().Str("kind", kind).Str("task", sig.Task).Msg("follow-up canvas type not supported by qagen; not sent")
		return nil
	}
}

func (w *Worker) signatureMessage(j *job, sig celery.Signature, prepend json.RawMessage, chain []celery.Signature) (broker.Message, error) {
	var o signatureOptions
	if len(sig.Options) > 0 {
		if err := celery.Unmarshal(sig.Options, &o); err != nil {
			return broker.Message{}, fmt.Errorf("signature options: %w", err)
		}
	}
	m := &celery.TaskMessage{
		ID: o.TaskID, Task: sig.Task, Shadow: o.Shadow,
		Args: sig.Args, Kwargs: sig.Kwargs,
		RootID: j.msg.RootID, ParentID: j.msg.ID,
		Group: o.GroupID, GroupIndex: o.GroupIndex,
		ReplyTo: o.ReplyTo, Headers: o.Headers,
		Origin: fmt.Sprintf("gen%d@%s", w.pid, hostPart(w.cfg.Hostname)),
	}
	if m.ID == "" {
		m.ID = newID()
	}
	if !sig.Immutable && prepend != nil {
		m.Args = prependArg(prepend, sig.Args)
	}
	m.Embed.Chain = chain
	m.Embed.Chord = o.Chord
	m.Embed.Callbacks = signatureList(o.Link)
	m.Embed.Errbacks = signatureList(o.LinkError)
	m.TimeLimit = celery.TimeLimit{o.TimeLimit, o.SoftTimeLimit}
	now := w.clock.Now().In(w.cfg.Location)
	if o.Countdown != nil {
		t := now.Add(seconds(*o.Countdown))
		m.ETA = &t
	} else if t, ok := parseWhen(o.ETA, now); ok {
		m.ETA = &t
	}
	if t, ok := parseWhen(o.Expires, now); ok {
		m.Expires = &t
	}
	queue := queueName(o.Queue)
	if queue == "" {
		queue = o.RoutingKey
	}
	if queue == "" {
		queue = w.cfg.DefaultQueue
	}
	m.DeliveryInfo = celery.DeliveryInfo{RoutingKey: queue}
	if o.Priority != nil {
		m.Priority = *o.Priority
	}
	body, err := celery.EncodeTask(m, celery.EncodeOptions{})
	if err != nil {
		return broker.Message{}, err
	}
	return broker.Message{Queue: queue, Priority: m.Priority, Body: body}, nil
}

// parseWhen reads an eta/expires option: seconds from now, or a timestamp.
func parseWhen(raw json.RawMessage, now time.Time) (time.Time, bool) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, false
	}
	var secs float64
	if json.Unmarshal(raw, &secs) == nil {
		return now.Add(seconds(secs)), true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if t, err := celery.ParseTime(s, nil); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func queueName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var q struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(raw, &q) == nil {
		return q.Name
	}
	return ""
}

func signatureList(raw json.RawMessage) []celery.Signature {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	var list []celery.Signature
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var one celery.Signature
	if json.Unmarshal(raw, &one) == nil && one.Task != "" {
		return []celery.Signature{one}
	}
	return nil
}

// prependArg returns the JSON array [value, args...].
func prependArg(value, args json.RawMessage) json.RawMessage {
	args = bytes.TrimSpace(args)
	out := make([]byte, 0, len(value)+len(args)+2)
	out = append(out, '[')
	out = append(out, value...)
	if len(args) >= 2 && args[0] == '[' {
		inner := bytes.TrimSpace(args[1 : len(args)-1])
		if len(inner) > 0 {
			out = append(out, ',')
			out = append(out, inner...)
		}
	}
	return append(out, ']')
}

// failureFollowUps is what a failed task sends and stores besides its own
// FAILURE: the same FAILURE under the id of every remaining chain step (so a
// client waiting on the chain's end learns of it), and its errbacks
// (old-style: a message with the failed task's id as first argument; Python
// errbacks taking (request, exc, traceback) cannot run behind a Go worker).
func (w *Worker) failureFollowUps(j *job, meta *celery.ResultMeta) (msgs []broker.Message, metas []*celery.ResultMeta) {
	for _, sig := range j.msg.Embed.Chain {
		var o signatureOptions
		if celery.Unmarshal(sig.Options, &o) == nil && o.TaskID != "" {
			m := *meta
			m.TaskID, m.Extended, m.GroupID, m.ParentID = o.TaskID, nil, "", ""
			metas = append(metas, &m)
		}
	}
	id, _ := json.Marshal(j.msg.ID)
	for _, sig := range j.msg.Embed.Errbacks {
		msgs = append(msgs, w.expandSignature(j, sig, id, nil)...)
	}
	return msgs, metas
}
