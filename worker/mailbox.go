package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
)

// mailbox answers Celery's remote-control commands (the pidbox): it
// listens on the celery.pidbox fanout channel, runs the commands addressed
// to this worker and LPUSHes replies to the client's reply queue through
// the reply.celery.pidbox bindings, as a Python worker does.
type mailbox struct {
	w   *Worker
	log zerolog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{}
}

func (m *mailbox) start() error {
	w := m.w
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.ready = make(chan struct{})
	if err := w.broker.Bind(ctx, celery.PidboxExchange, "", celery.MailboxQueue(w.cfg.Hostname)); err != nil {
		cancel()
		return fmt.Errorf("worker: declare the pidbox binding: %w", err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.broker.Listen(ctx, broker.Listener{
			Patterns: []string{w.broker.Channel(celery.PidboxExchange, "")},
			Ready:    func() { close(m.ready) }, // called once, on the first connection
			Handle:   m.handle,
			OnError: func(err error) {
				m.log.Warn().Err(err).Msg("remote-control connection lost; reconnecting")
			},
		})
	}()
	select {
	case <-m.ready:
	case <-time.After(5 * time.Second):
		m.log.Warn().Msg("remote-control subscription not confirmed yet")
	}
	return nil
}

func (m *mailbox) shutdown() {
	m.cancel()
	m.wg.Wait()
	w := m.w
	if err := w.broker.Unbind(context.Background(), celery.PidboxExchange, "", celery.MailboxQueue(w.cfg.Hostname)); err != nil {
		m.log.Warn().Err(err).Msg("could not remove the pidbox binding")
	}
}

// handle runs on the listener goroutine; commands are quick, except
// shutdown, which only triggers it.
func (m *mailbox) handle(_ string, payload []byte) {
	w := m.w
	req, err := celery.DecodeControlRequest(payload)
	if err != nil {
		m.log.Warn().Err(err).Msg("ignoring an unreadable remote-control message")
		return
	}
	if !req.Matches(w.cfg.Hostname) {
		return
	}
	w.lamport.Add(1)
	reply, send := w.control(req)
	m.log.Debug().Str("method", req.Method).Bool("reply", send && req.ReplyTo != nil).Msg("remote control")
	if !send || req.ReplyTo == nil || req.ReplyTo.RoutingKey == "" {
		return
	}
	env := celery.EncodeControlReply(w.cfg.Hostname, reply, req.Ticket, w.lamport.Add(1), req.ReplyTo.RoutingKey)
	exchange := req.ReplyTo.Exchange
	if exchange == "" {
		exchange = celery.ReplyExchange
	}
	if _, err := w.broker.PublishDirect(context.Background(), exchange, req.ReplyTo.RoutingKey, env); err != nil {
		m.log.Warn().Err(err).Str("method", req.Method).Msg("could not send a remote-control reply")
	}
}

// control runs one command. send is false for commands that never reply
// (shutdown) and for casts.
func (w *Worker) control(req *celery.ControlRequest) (reply json.RawMessage, send bool) {
	h, ok := controlCommands[req.Method]
	if !ok {
		return celery.ControlError("KeyError(%s)", celery.PyRepr(req.Method)), true
	}
	defer func() {
		if r := recover(); r != nil {
			reply, send = celery.ControlError("RuntimeError(%s)", celery.PyRepr(fmt.Sprint(r))), true
		}
	}()
	out, err := h(w, req.Arguments)
	if err != nil {
		return celery.ControlError("%s", err.Error()), true
	}
	if out == nil {
		return json.RawMessage("null"), req.Method != "shutdown"
	}
	b, err := json.Marshal(out)
	if err != nil {
		return celery.ControlError("EncodeError(%s)", celery.PyRepr(err.Error())), true
	}
	return b, true
}
