package worker

import (
	"context"
	"sync"
)

// pool runs jobs on at most `slots` goroutines, first come first served.
// A runner goroutine keeps taking queued jobs until the queue is empty. A job
// that passes its hard time limit is detached: its slot is handed to the
// next job at once, and the stuck goroutine exits when the body returns.
type pool struct {
	exec func(*job) (detached bool)

	mu      sync.Mutex // guards the fields below
	slots   int
	running int
	queue   []*job
	idle    chan struct{} // closed and replaced when running drops to 0
}

func newPool(slots int, exec func(*job) bool) *pool {
	return &pool{slots: slots, exec: exec, idle: make(chan struct{})}
}

func (p *pool) submit(j *job) {
	p.mu.Lock()
	if p.running < p.slots {
		p.running++
		p.mu.Unlock()
		go p.runner(j)
		return
	}
	p.queue = append(p.queue, j)
	p.mu.Unlock()
}

func (p *pool) runner(j *job) {
	for j != nil {
		if p.exec(j) {
			return // detached: handOver already gave the slot away
		}
		j = p.next()
	}
}

// next returns the next queued job, or releases the caller's slot.
func (p *pool) next() *job {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) > 0 && p.running <= p.slots {
		j := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		return j
	}
	p.running--
	if p.running == 0 {
		close(p.idle)
		p.idle = make(chan struct{})
	}
	return nil
}

// handOver gives the slot of a detached job to the next one.
func (p *pool) handOver() {
	if j := p.next(); j != nil {
		go p.runner(j)
	}
}

// resize changes the number of slots; extra queued jobs start at once.
func (p *pool) resize(slots int) {
	p.mu.Lock()
	p.slots = max(slots, 1)
	var start []*job
	for p.running < p.slots && len(p.queue) > 0 {
		start = append(start, p.queue[0])
		p.queue = p.queue[1:]
		p.running++
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
	return p.slots, p.running, len(p.queue)
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
		if p.running == 0 {
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
