// Package producer sends Celery tasks and collects their results: the Go
// counterpart of apply_async/send_task and AsyncResult.get().
package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
)

// Client publishes task messages and reads results.
type Client struct {
	Broker  *broker.Broker
	Backend *backend.Backend
	// Location is the zone eta/expires are written in (default UTC).
	Location *time.Location
	origin   string
}

// New returns a client.
func New(b *broker.Broker, r *backend.Backend) *Client {
	host, _ := os.Hostname()
	return &Client{Broker: b, Backend: r, Location: time.UTC, origin: fmt.Sprintf("gen%d@%s", os.Getpid(), host)}
}

// Task is one task to send.
type Task struct {
	Name   string
	Args   json.RawMessage // JSON array; nil means []
	Kwargs json.RawMessage // JSON object; nil means {}
	Options
}

// Options are apply_async options.
type Options struct {
	ID           string // default: a new uuid4
	Queue        string // default "celery", as Celery's task_default_queue
	Priority     int
	Countdown    time.Duration
	ETA          time.Time
	Expires      time.Time
	TimeLimit    time.Duration
	SoftLimit    time.Duration
	IgnoreResult bool
	// Headers are custom headers (a JSON object).
	Headers json.RawMessage
	// Protocol is 2 (default) or 1; Compression e.g. "gzip".
	Protocol    int
	Compression string
	// ParentID and RootID continue a workflow.
	ParentID, RootID string
}

// Message builds the task message for t without sending it.
func (c *Client) Message(t Task) (*celery.TaskMessage, celery.EncodeOptions, error) {
	if t.Name == "" {
		return nil, celery.EncodeOptions{}, errors.New("producer: task name is empty")
	}
	o := t.Options
	if o.ID == "" {
		o.ID = uuid.NewString()
	}
	if o.Queue == "" {
		o.Queue = "celery"
	}
	loc := c.Location
	if loc == nil {
		loc = time.UTC
	}
	m := &celery.TaskMessage{
		ID: o.ID, Task: t.Name, Args: t.Args, Kwargs: t.Kwargs,
		RootID: o.RootID, ParentID: o.ParentID, Origin: c.origin,
		IgnoreResult: o.IgnoreResult, Headers: o.Headers, Priority: o.Priority,
		DeliveryInfo: celery.DeliveryInfo{RoutingKey: o.Queue},
		ReplyTo:      "",
	}
	if !o.ETA.IsZero() {
		eta := o.ETA.In(loc)
		m.ETA = &eta
	} else if o.Countdown != 0 {
		eta := time.Now().Add(o.Countdown).In(loc)
		m.ETA = &eta
	}
	if !o.Expires.IsZero() {
		exp := o.Expires.In(loc)
		m.Expires = &exp
	}
	if o.TimeLimit > 0 {
		h := o.TimeLimit.Seconds()
		m.TimeLimit[0] = &h
	}
	if o.SoftLimit > 0 {
		s := o.SoftLimit.Seconds()
		m.TimeLimit[1] = &s
	}
	return m, celery.EncodeOptions{Protocol: o.Protocol, Compression: o.Compression}, nil
}

// Send publishes tasks in one round trip and returns their ids in order.
func (c *Client) Send(ctx context.Context, tasks ...Task) ([]string, error) {
	msgs := make([]broker.Message, 0, len(tasks))
	ids := make([]string, 0, len(tasks))
	for _, t := range tasks {
		m, opts, err := c.Message(t)
		if err != nil {
			return nil, err
		}
		body, err := celery.EncodeTask(m, opts)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, broker.Message{Queue: m.DeliveryInfo.RoutingKey, Priority: m.Priority, Body: body})
		ids = append(ids, m.ID)
	}
	if err := c.Broker.Publish(ctx, msgs...); err != nil {
		return nil, err
	}
	return ids, nil
}

// Call sends one task and waits for its ready result, subscribing before
// publishing as Celery's client does.
func (c *Client) Call(ctx context.Context, t Task) (*celery.ResultMeta, error) {
	if t.ID == "" {
		t.ID = uuid.NewString()
	}
	sub, err := c.Backend.Subscribe(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	if _, err := c.Send(ctx, t); err != nil {
		return nil, err
	}
	done, err := sub.Wait(ctx, nil)
	if err != nil {
		return nil, err
	}
	return done[t.ID], nil
}

// ResultError turns a FAILURE or REVOKED meta into a Go error carrying the
// Python exception; other states give nil.
func ResultError(m *celery.ResultMeta) error {
	if m == nil || (m.Status != celery.StateFailure && m.Status != celery.StateRevoked) {
		return nil
	}
	exc, err := m.Exception()
	if err != nil {
		return fmt.Errorf("task %s %s: %w", m.TaskID, m.Status, err)
	}
	return exc
}
