package worker

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
)

// persist is the Redis work that finishes (part of) a task, in Celery's
// order: follow-up messages first, then the result, then the ack.
type persist struct {
	publish []broker.Message
	result  *backend.Record
	settle  *broker.Settlement
	requeue string // reject(requeue=True)
	after   func() // runs once the batch is written
}

// completer writes persists in batches: whatever has queued up while the
// previous batch was being written goes out in one round trip per kind, so
// a busy worker spends a few Redis round trips per batch, not per task.
type completer struct {
	broker  Broker
	results ResultStore
	log     zerolog.Logger
	in      chan persist
	done    chan struct{}
	// abort makes a failing write give up instead of retrying forever.
	abort <-chan struct{}

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
}

const maxBatch = 512

func newCompleter(b Broker, r ResultStore, log zerolog.Logger, abort <-chan struct{}) *completer {
	return &completer{broker: b, results: r, log: log, in: make(chan persist, 4*maxBatch), done: make(chan struct{}), abort: abort}
}

// submit queues work. Only writes that arrive after close (from a task the
// shutdown already gave up) are dropped, and logged.
func (c *completer) submit(p persist) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		c.log.Error().Msg("a write arrived after shutdown and was dropped")
		return
	}
	c.in <- p
}

// run writes batches until in is closed and drained. The completer
// goroutine owns batch.
func (c *completer) run() {
	defer close(c.done)
	batch := make([]persist, 0, maxBatch)
	for p := range c.in {
		batch = append(batch[:0], p)
	drain:
		for len(batch) < maxBatch {
			select {
			case p, ok := <-c.in:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		c.write(batch)
	}
}

// close stops accepting work and waits until everything queued is written.
func (c *completer) close() {
	c.mu.Lock()
	c.closed = true
	close(c.in)
	c.mu.Unlock()
	<-c.done
}

func (c *completer) write(batch []persist) {
	var msgs []broker.Message
	var recs []backend.Record
	var settles []broker.Settlement
	var requeues []string
	for _, p := range batch {
		msgs = append(msgs, p.publish...)
		if p.result != nil {
			recs = append(recs, *p.result)
		}
		if p.settle != nil {
			settles = append(settles, *p.settle)
		}
		if p.requeue != "" {
			requeues = append(requeues, p.requeue)
		}
	}
	ctx := context.Background()
	if len(msgs) > 0 {
		c.retry("publish follow-up messages", func() error { return c.broker.Publish(ctx, msgs...) })
	}
	if len(recs) > 0 {
		c.retry("store results", func() error { _, err := c.results.Store(ctx, recs...); return err })
	}
	if len(settles) > 0 {
		c.retry("ack messages", func() error { return c.broker.Settle(ctx, settles) })
	}
	if len(requeues) > 0 {
		c.retry("requeue messages", func() error { _, err := c.broker.Requeue(ctx, requeues...); return err })
	}
	for _, p := range batch {
		if p.after != nil {
			p.after()
		}
	}
}

// retry runs fn until it succeeds. Giving up would lose a result a client
// waits for, so only an abort (cold shutdown) stops it; what is then not
// written stays in unacked and is restored by a later visibility pass.
func (c *completer) retry(what string, fn func() error) {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			if attempt > 1 {
				c.log.Info().Str("op", what).Int("attempts", attempt).Msg("redis write succeeded after retries")
			}
			return
		}
		c.log.Error().Err(err).Str("op", what).Int("attempt", attempt).Msg("redis write failed; retrying")
		select {
		case <-time.After(delay):
		case <-c.abort:
			c.log.Error().Str("op", what).Msg("cold shutdown: giving up a redis write; unacked messages will be restored by the visibility timeout")
			return
		}
		delay = min(delay*2, 5*time.Second)
	}
}
