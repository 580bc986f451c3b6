package worker

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/internal/clock"
)

// leaseKeeper refreshes the unacked_index score of every message this
// worker holds (running, waiting for a slot, or waiting for its ETA), so no
// consumer's visibility-timeout pass hands them to another worker while
// this one is alive. If the worker dies, the scores age and the messages
// come back after the visibility timeout, as with kombu.
type leaseKeeper struct {
	broker   Broker
	clock    clock.Clock
	interval time.Duration
	tags     func() []string
	log      zerolog.Logger

	stop chan struct{}
	wg   sync.WaitGroup
}

func (l *leaseKeeper) start() {
	l.stop = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		every(l.clock, l.interval, l.stop, l.refresh)
	}()
}

func (l *leaseKeeper) refresh() {
	tags := l.tags()
	for start := 0; start < len(tags); start += 1000 {
		batch := tags[start:min(start+1000, len(tags))]
		if err := l.broker.Extend(context.Background(), batch); err != nil {
			l.log.Error().Err(err).Int("messages", len(batch)).Msg("could not extend the visibility of held messages")
			return
		}
	}
	if len(tags) > 0 {
		l.log.Debug().Int("messages", len(tags)).Msg("extended visibility of held messages")
	}
}

func (l *leaseKeeper) shutdown() {
	close(l.stop)
	l.wg.Wait()
}

// recoverer runs kombu's visibility-timeout restore: at start and then every
// interval, unacked messages older than the visibility timeout (from any
// consumer that died) go back to their queues.
type recoverer struct {
	broker   Broker
	clock    clock.Clock
	interval time.Duration
	log      zerolog.Logger

	stop chan struct{}
	wg   sync.WaitGroup
}

func (r *recoverer) start() {
	r.stop = make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.restore()
		every(r.clock, r.interval, r.stop, r.restore)
	}()
}

func (r *recoverer) restore() {
	n, err := r.broker.RestoreVisible(context.Background())
	if err != nil {
		r.log.Error().Err(err).Msg("visibility-timeout restore failed")
		return
	}
	if n > 0 {
		r.log.Warn().Int("messages", n).Msg("restored unacknowledged messages older than the visibility timeout")
	}
}

func (r *recoverer) shutdown() {
	close(r.stop)
	r.wg.Wait()
}

// every calls fn on each tick of an interval ticker until stop is closed.
func every(c clock.Clock, interval time.Duration, stop <-chan struct{}, fn func()) {
	t := c.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C():
			fn()
		}
	}
}
