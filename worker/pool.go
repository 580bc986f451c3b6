package worker

import (
	"context"
	"sync"
)

// pool runs jobs on at most `slots` goroutines, first come first served.
// Runner goroutines stay parked between jobs, so a busy worker does not
// start a goroutine per task. A job that passes its hard time limit is
// detached: its slot goes to the next job at once, and the stuck goroutine
// exits when the body returns.
type pool struct {
	exec    func(*job) (detached bool)
	handoff chan *job // to parked runners; closed by stop

	mu      sync.Mutex // guards the fields below
	slots   int
	busy    int // runners holding a slot
	parked  int // runners waiting on handoff
	queue   []*job
	idle    chan struct{} // closed and replaced when busy drops to 0
	stopped bool
}

func newPool(slots int, exec func(*job) bool) *pool {
	return &pool{slots: slots, exec: exec, handoff: make(chan *job), idle: make(chan struct{})}
}

func (p *pool) submit(j *job) {
	p.mu.Lock()
	if p.stopped {
		// Only an ETA timer racing with shutdown gets here; the shutdown
		// has already given the job up and restored its message.
		p.mu.Unlock()
		return
	}
	if p.busy >= p.slots {
		p.queue = append(p.queue, j)
		p.mu.Unlock()
		return
	}
	p.busy++
	if p.parked > 0 {
		// A parked runner is waiting on handoff (it counted itself under mu
		// before receiving), so this send completes at once. Sending under
		// mu keeps stop from closing the channel in between.
		p.parked--
		p.handoff <- j
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	go p.runner(j)
}

func (p *pool) runner(j *job) {
	for {
		if p.exec(j) {
			return // detached: handOver gave the slot away
		}
		var park bool
		if j, park = p.next(); park {
			var ok bool
			if j, ok = <-p.handoff; !ok {
				return
			}
		} else if j == nil {
			return
		}
	}
}

// next returns the next queued job for a runner whose job finished. With
// none, the runner gives up its slot and parks (park=true), or exits when
// the pool has shrunk below its runners.
func (p *pool) next() (j *job, park bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) > 0 && p.busy <= p.slots {
		j = p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		return j, false
	}
	p.release()
	if p.parked+p.busy >= p.slots {
		return nil, false
	}
	p.parked++
	return nil, true
}

// release gives up a slot. Caller holds mu.
func (p *pool) release() {
	p.busy--
	if p.busy == 0 {
		close(p.idle)
		p.idle = make(chan struct{})
	}
}

// handOver gives the slot of a detached job to the next queued one.
func (p *pool) handOver() {
	p.mu.Lock()
	if len(p.queue) > 0 {
		j := p.queue[0]
		p.queue = p.queue[1:]
		p.mu.Unlock()
		go p.runner(j)
		return
	}
	p.release()
	p.mu.Unlock()
}

// resize changes the number of slots; queued jobs start if there is room.
func (p *pool) resize(slots int) {
	p.mu.Lock()
	p.slots = max(slots, 1)
	var start []*job
	for p.busy < p.slots && len(p.queue) > 0 {
		start = append(start, p.queue[0])
		p.queue = p.queue[1:]
		p.busy++
	}
	p.mu.Unlock()
	for _, j := range start {
		go p.runner(j)
	}
}

// size returns slots, running jobs and queued jobs.
func (p *pool) size() (slots, running, queued int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.slots, p.busy, len(p.queue)
}

// takeQueued removes and returns every job that has not started.
func (p *pool) takeQueued() []*job {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue = nil
	return q
}

// queued returns a snapshot of the jobs waiting for a slot.
func (p *pool) queued() []*job {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*job(nil), p.queue...)
}

// wait blocks until no job runs or ctx is done; it reports whether the
// pool went idle.
func (p *pool) wait(ctx context.Context) bool {
	for {
		p.mu.Lock()
		if p.busy == 0 {
			p.mu.Unlock()
			return true
		}
		idle := p.idle
		p.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return false
		}
	}
}

// stop ends the parked runners; later submissions are dropped.
func (p *pool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	close(p.handoff)
}
