package worker

import (
	"container/heap"
	"sync"
	"time"

	"github.com/qagen/qagen/internal/clock"
)

// scheduler holds jobs in memory until they are due (ETA tasks, like
// Celery's timer, and tasks waiting for their rate limit); the messages stay
// in unacked meanwhile (the lease keeper keeps them from being restored by
// another consumer).
type scheduler struct {
	clock clock.Clock
	fire  func(*job)

	mu     sync.Mutex // guards the fields below
	jobs   etaHeap
	timer  clock.Timer
	due    time.Time // when timer fires
	closed bool
}

func newScheduler(c clock.Clock, fire func(*job)) *scheduler {
	return &scheduler{clock: c, fire: fire}
}

func (s *scheduler) add(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	heap.Push(&s.jobs, j)
	s.arm()
}

// arm (re)schedules the timer for the earliest job. Caller holds mu.
func (s *scheduler) arm() {
	if len(s.jobs) == 0 {
		return
	}
	next := s.jobs[0].due
	if s.timer != nil && !s.due.After(next) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.due = next
	s.timer = s.clock.AfterFunc(max(next.Sub(s.clock.Now()), 0), s.tick)
}

func (s *scheduler) tick() {
	s.mu.Lock()
	s.timer = nil
	now := s.clock.Now()
	var ready []*job
	for len(s.jobs) > 0 && !s.jobs[0].due.After(now) {
		ready = append(ready, heap.Pop(&s.jobs).(*job))
	}
	if !s.closed {
		s.arm()
	}
	s.mu.Unlock()
	for _, j := range ready {
		s.fire(j)
	}
}

// close stops the timer and returns the jobs still waiting.
func (s *scheduler) close() []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	out := []*job(s.jobs)
	s.jobs = nil
	return out
}

// snapshot returns the waiting jobs in ETA order.
func (s *scheduler) snapshot() []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]*job(nil), s.jobs...)
	for i := 1; i < len(out); i++ { // small insertion sort: heaps are not sorted
		for k := i; k > 0 && out[k].due.Before(out[k-1].due); k-- {
			out[k], out[k-1] = out[k-1], out[k]
		}
	}
	return out
}

type etaHeap []*job

func (h etaHeap) Len() int           { return len(h) }
func (h etaHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h etaHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *etaHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *etaHeap) Pop() any {
	old := *h
	n := len(old)
	j := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return j
}
