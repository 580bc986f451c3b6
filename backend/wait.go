package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/celery"
)

// Subscription waits for results the way Celery's client does: SUBSCRIBE to
// the result channels first, then one GET for results that already exist,
// then published metas only — no polling.
type Subscription struct {
	b    *Backend
	conn redis.PubSubConn
	// owned by the caller's goroutine
	pending map[string]bool
	early   []redis.Message // published while Add awaited confirmations
}

// Subscribe opens a pub/sub connection listening for the given task ids.
// Subscribe before publishing the tasks, so no result can be missed.
func (b *Backend) Subscribe(ctx context.Context, taskIDs ...string) (*Subscription, error) {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	s := &Subscription{b: b, conn: redis.PubSubConn{Conn: conn}, pending: map[string]bool{}}
	if err := s.Add(taskIDs...); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// Add subscribes to more task ids.
func (s *Subscription) Add(taskIDs ...string) error {
	if len(taskIDs) == 0 {
		return nil
	}
	chans := make([]any, len(taskIDs))
	for i, id := range taskIDs {
		chans[i] = s.b.Key(id)
		s.pending[id] = true
	}
	if err := s.conn.Subscribe(chans...); err != nil {
		return fmt.Errorf("backend: subscribe: %w", err)
	}
	// Wait for Redis to confirm every channel: Wait's GET goes over another
	// connection, and a result stored between that GET and an unconfirmed
	// SUBSCRIBE would be missed.
	for confirmed := 0; confirmed < len(chans); {
		switch v := s.conn.ReceiveWithTimeout(30 * time.Second).(type) {
		case redis.Subscription:
			if v.Kind == "subscribe" {
				confirmed++
			}
		case redis.Message:
			s.early = append(s.early, v)
		case error:
			return fmt.Errorf("backend: subscribe: %w", v)
		}
	}
	return nil
}

// Close releases the connection.
func (s *Subscription) Close() error { return s.conn.Close() }

// Wait returns the ready result of every subscribed id, calling onUpdate (if
// non-nil) for each meta seen, ready or not. It returns early with ctx's
// error; results gathered so far are returned too.
func (s *Subscription) Wait(ctx context.Context, onUpdate func(*celery.ResultMeta)) (map[string]*celery.ResultMeta, error) {
	done := map[string]*celery.ResultMeta{}
	ids := make([]string, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	// Results stored before we subscribed.
	for start := 0; start < len(ids); start += 1000 {
		batch := ids[start:min(start+1000, len(ids))]
		metas, err := s.b.GetMany(ctx, batch)
		if err != nil {
			return done, err
		}
		for i, m := range metas {
			if m == nil {
				continue
			}
			if onUpdate != nil {
				onUpdate(m)
			}
			if m.Status.Ready() {
				done[batch[i]] = m
				delete(s.pending, batch[i])
			}
		}
	}
	if len(s.pending) == 0 {
		return done, nil
	}
	err := s.stream(ctx, func(m *celery.ResultMeta) bool {
		if s.pending[m.TaskID] {
			if onUpdate != nil {
				onUpdate(m)
			}
			if m.Status.Ready() {
				done[m.TaskID] = m
				delete(s.pending, m.TaskID)
			}
		}
		return len(s.pending) > 0
	})
	return done, err
}

// Stream hands every meta published for the subscribed ids to fn, ready
// or not, until ctx is done (it then returns ctx's error) or the connection
// fails. It does not read results stored before the subscription: callers
// that need them GET them once after subscribing (see Wait).
func (s *Subscription) Stream(ctx context.Context, fn func(*celery.ResultMeta)) error {
	return s.stream(ctx, func(m *celery.ResultMeta) bool { fn(m); return true })
}

// stream is Stream, except that it returns nil as soon as fn returns false
// (after the messages already received), without unsubscribing.
func (s *Subscription) stream(ctx context.Context, fn func(*celery.ResultMeta) bool) error {
	// Receive blocks without a timeout (a redigo read timeout breaks the
	// connection); cancellation unsubscribes, which wakes the receiver.
	// stream does not return while that UNSUBSCRIBE is still being written:
	// the caller's Close would write to the connection at the same time.
	unsubscribed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(unsubscribed)
		_ = s.conn.Unsubscribe()
	})
	defer func() {
		if !stop() {
			<-unsubscribed
		}
	}()
	more := true
	handle := func(v redis.Message) {
		if m, err := celery.ParseResult(v.Data); err == nil && !fn(m) {
			more = false
		}
	}
	for _, v := range s.early {
		handle(v)
	}
	s.early = nil
	for more {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch v := s.conn.ReceiveWithTimeout(0).(type) {
		case redis.Message:
			handle(v)
		case redis.Subscription:
			if v.Kind == "unsubscribe" && ctx.Err() != nil {
				return ctx.Err()
			}
		case error:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("backend: waiting for results: %w", v)
		}
	}
	return nil
}

// WaitFor subscribes to one task and waits for its ready result.
func (b *Backend) WaitFor(ctx context.Context, taskID string) (*celery.ResultMeta, error) {
	s, err := b.Subscribe(ctx, taskID)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	done, err := s.Wait(ctx, nil)
	if err != nil {
		return nil, err
	}
	return done[taskID], nil
}
