// Package worker runs Celery tasks from a kombu-compatible Redis broker
// with Celery's execution semantics: prefetch, early or late acks, ETA,
// expiry, soft and hard time limits, retries, and warm shutdown that puts
// every unfinished message back.
package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/clock"
)

// Broker is what the worker needs from the message broker.
type Broker interface {
	Declare(ctx context.Context, queues ...string) error
	Fetch(ctx context.Context, queues []string, max int) ([]broker.Delivery, error)
	FetchBlocking(ctx context.Context, queues []string, timeout time.Duration) (*broker.Delivery, error)
	Settle(ctx context.Context, s []broker.Settlement) error
	Publish(ctx context.Context, msgs ...broker.Message) error
	Restore(ctx context.Context, tags ...string) (int, error)
	Requeue(ctx context.Context, tags ...string) (int, error)
	Extend(ctx context.Context, tags []string) error
	RestoreVisible(ctx context.Context) (int, error)

	// Remote control and events (fanout exchanges over pub/sub).
	Channel(exchange, routingKey string) string
	Listen(ctx context.Context, l broker.Listener)
	PublishDirect(ctx context.Context, exchange, routingKey string, body []byte) (int, error)
	PublishFanout(ctx context.Context, msgs ...broker.FanoutMessage) error
	Bind(ctx context.Context, exchange, routingKey, queue string) error
	Unbind(ctx context.Context, exchange, routingKey, queue string) error
}

// BrokerInfo describes the broker connection for the stats command
// (never the password).
type BrokerInfo struct {
	Hostname         string
	Port             int
	UserID           string
	VirtualHost      string
	SSL              bool
	TransportOptions map[string]any
}

// ResultStore is what the worker needs from the result backend.
type ResultStore interface {
	Store(ctx context.Context, recs ...backend.Record) (int, error)
	JoinChord(ctx context.Context, groupID string, groupIndex *int, part backend.ChordPart) ([]backend.ChordPart, error)
}

// Config configures a worker. Zero values mean Celery's defaults, except
// where noted.
type Config struct {
	Queues []string
	// Concurrency is the number of tasks run at once (default 8).
	Concurrency int
	// PrefetchMultiplier: up to Concurrency×PrefetchMultiplier messages are
	// taken from the queue and not yet acked (default 1; held ETA tasks do
	// not count, as in Celery).
	PrefetchMultiplier int
	// Hostname is the worker's nodename (name@host).
	Hostname string
	// AcksLate acks after the task finishes instead of when it starts.
	AcksLate bool
	// TimeLimit and SoftTimeLimit are the defaults; 0 means none.
	TimeLimit     time.Duration
	SoftTimeLimit time.Duration
	// RateLimits set Celery's per-worker rate_limit of registered tasks by
	// name ("10/s", "100/m"), over what the registration says, as Celery's
	// task_annotations do.
	RateLimits map[string]string
	// VisibilityTimeout must match the broker's; it sets the lease refresh
	// interval (a quarter of it) unless LeaseInterval is given.
	VisibilityTimeout time.Duration
	LeaseInterval     time.Duration
	// RestoreInterval is how often unacked messages of dead consumers are
	// looked for (kombu: about every 100 s). Negative disables it.
	RestoreInterval time.Duration
	// ShutdownGrace bounds how long a warm shutdown waits for running tasks.
	ShutdownGrace time.Duration
	// TrackStarted stores STARTED before a task runs.
	TrackStarted bool
	// ResultExtended adds name, args, kwargs, worker, retries and queue to
	// stored results.
	ResultExtended bool
	// DefaultQueue receives follow-up messages whose options name no queue
	// (Celery's task_default_queue, "celery").
	DefaultQueue string
	// Accept lists accepted content types (default JSON only).
	Accept []string
	// Location is the zone of date_done and of the ETA of retries (the
	// Celery app's timezone); default UTC.
	Location *time.Location
	// BlockTimeout is the BRPOP timeout when the queues are empty (1 s).
	BlockTimeout time.Duration
	// TaskEvents sends task-* events (-E); enable_events turns them on later.
	TaskEvents bool
	// HeartbeatInterval is the worker-heartbeat period (Celery: 2 s);
	// negative disables worker events.
	HeartbeatInterval time.Duration
	// DisableControl turns off the remote-control mailbox.
	DisableControl bool
	// StateDB keeps revoked task ids across restarts (Celery's --statedb).
	StateDB string
	// Version is reported as sw_ver in events and stats.
	Version string
	// BrokerInfo and Conf are reported by the stats and conf commands.
	BrokerInfo BrokerInfo
	Conf       map[string]any
	Clock      clock.Clock
	Logger     zerolog.Logger
}

func (c *Config) setDefaults() error {
	if len(c.Queues) == 0 {
		return errors.New("worker: no queues to consume")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.PrefetchMultiplier <= 0 {
		c.PrefetchMultiplier = 1
	}
	if c.Hostname == "" {
		host, _ := os.Hostname()
		c.Hostname = "celery@" + host
	}
	if c.VisibilityTimeout <= 0 {
		c.VisibilityTimeout = broker.DefaultVisibilityTimeout
	}
	if c.LeaseInterval <= 0 {
		c.LeaseInterval = max(c.VisibilityTimeout/4, 100*time.Millisecond)
	}
	if c.RestoreInterval == 0 {
		c.RestoreInterval = 100 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = max(c.TimeLimit, c.SoftTimeLimit, time.Minute) + 10*time.Second
	}
	if c.DefaultQueue == "" {
		c.DefaultQueue = "celery"
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.BlockTimeout <= 0 {
		c.BlockTimeout = time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 2 * time.Second
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return nil
}

// Job states.
const (
	jobReserved  int32 = iota // taken from the queue, not started
	jobActive                 // running
	jobDone                   // finished; its outcome is being written
	jobAbandoned              // given up (hard time limit, shutdown); its outcome is ignored
)

// job is one delivered task message.
type job struct {
	d     broker.Delivery
	msg   *celery.TaskMessage
	def   *taskDef
	state atomic.Int32
	// credit is set while the job holds a prefetch credit.
	credit atomic.Bool
	// acked is set once the ack has been handed to the completer.
	acked   atomic.Bool
	started time.Time
	req     *Request
	// due is when a held job (ETA, rate limit) may run; owned by whoever
	// holds the job (consumer, then scheduler).
	due time.Time
	// rated is set once the job passed its task's rate limit.
	rated bool
	// cancel cancels the running task's context (terminate, limits).
	cancel context.CancelCauseFunc
}

// Worker consumes task messages and runs them.
type Worker struct {
	cfg      Config
	registry *Registry
	broker   Broker
	results  ResultStore
	log      zerolog.Logger
	clock    clock.Clock
	pid      int

	credits   *credits
	pool      *pool
	scheduler *scheduler
	completer *completer
	lease     *leaseKeeper
	recoverer *recoverer
	events    *dispatcher
	heart     *heartbeater
	mailbox   *mailbox
	revoked   *revokedSet
	rates     *rateLimiter
	// lamport is the logical clock of events and control replies.
	lamport atomic.Int64
	// stopRun ends Run's consuming phase (the shutdown command).
	stopRun context.CancelFunc

	queuesMu sync.Mutex // guards queues
	queues   []string   // consumed queues, in round-robin order

	limitsMu   sync.Mutex // guards timeLimits
	timeLimits map[string][2]time.Duration

	// taskCtx is the parent of every task's context; Abort cancels it.
	taskCtx    context.Context
	cancelTask context.CancelFunc
	abort      chan struct{}
	abortOnce  sync.Once

	mu      sync.Mutex      // guards held and running
	held    map[string]*job // delivery tag -> job, for messages in unacked
	running map[*job]struct{}

	// joins counts chord joins in flight; shutdown waits for them.
	joins sync.WaitGroup
	// settling is held (read-locked) from winning a job's state transition
	// until its writes are handed to the completer; shutdown write-locks it
	// once to wait for those hand-overs before closing the completer.
	settling sync.RWMutex

	processed atomic.Int64
	statsMu   sync.Mutex
	totals    map[string]int64 // task name -> count
	started   time.Time
}

// New returns a worker. Run starts it.
func New(cfg Config, reg *Registry, b Broker, results ResultStore) (*Worker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	w := &Worker{
		cfg: cfg, registry: reg, broker: b, results: results,
		log: cfg.Logger, clock: cfg.Clock, pid: os.Getpid(),
		held: map[string]*job{}, running: map[*job]struct{}{}, totals: map[string]int64{}, abort: make(chan struct{}),
	}
	w.taskCtx, w.cancelTask = context.WithCancel(context.Background())
	w.queues = append([]string(nil), cfg.Queues...)
	w.timeLimits = map[string][2]time.Duration{}
	w.rates = newRateLimiter()
	for _, name := range reg.Names() {
		if spec := reg.lookup(name).opts.RateLimit; spec != "" {
			if err := w.rates.set(name, spec); err != nil {
				return nil, fmt.Errorf("worker: task %s: %w", name, err)
			}
		}
	}
	for name, spec := range cfg.RateLimits {
		if reg.lookup(name) == nil {
			return nil, fmt.Errorf("worker: rate limit for %s: no such task is registered", name)
		}
		if err := w.rates.set(name, spec); err != nil {
			return nil, fmt.Errorf("worker: task %s: %w", name, err)
		}
	}
	revoked, err := newRevokedSet(cfg.StateDB)
	if err != nil {
		return nil, err
	}
	w.revoked = revoked
	w.credits = newCredits(cfg.Concurrency * cfg.PrefetchMultiplier)
	w.pool = newPool(cfg.Concurrency, w.execute)
	w.scheduler = newScheduler(w.clock, w.submit)
	w.completer = newCompleter(b, results, w.log, w.abort)
	w.lease = &leaseKeeper{broker: b, clock: w.clock, interval: cfg.LeaseInterval, tags: w.heldTags, log: w.log}
	w.recoverer = &recoverer{broker: b, clock: w.clock, interval: cfg.RestoreInterval, log: w.log}
	w.events = newDispatcher(b, w.clock, cfg.Hostname, &w.lamport, w.log)
	w.events.taskEvents.Store(cfg.TaskEvents)
	w.heart = &heartbeater{w: w, interval: cfg.HeartbeatInterval}
	w.mailbox = &mailbox{w: w, log: w.log}
	return w, nil
}

// Config returns the effective configuration.
func (w *Worker) Config() Config { return w.cfg }

// Abort turns a warm shutdown into a cold one: running tasks are no longer
// waited for, and every held message is restored at once.
func (w *Worker) Abort() {
	w.abortOnce.Do(func() { close(w.abort) })
}

// Run consumes until ctx is done, then shuts down warmly: it stops fetching,
// puts back the messages that have not started (and the ETA ones it holds),
// waits up to ShutdownGrace for running tasks, and restores whatever is
// still unacked. It returns after everything is written.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.broker.Declare(ctx, w.cfg.Queues...); err != nil {
		return fmt.Errorf("worker: declare queues: %w", err)
	}
	w.started = w.clock.Now()
	ctx, w.stopRun = context.WithCancel(ctx)
	defer w.stopRun()
	go w.completer.run()
	w.events.start()
	if !w.cfg.DisableControl {
		if err := w.mailbox.start(); err != nil {
			return err
		}
	}
	w.lease.start()
	if w.cfg.RestoreInterval > 0 {
		w.recoverer.start()
	}
	if w.cfg.HeartbeatInterval > 0 {
		w.heart.start()
	}
	w.log.Info().Str("hostname", w.cfg.Hostname).Strs("queues", w.cfg.Queues).
		Int("concurrency", w.cfg.Concurrency).Int("prefetch", w.credits.capacity()).
		Bool("acks_late", w.cfg.AcksLate).Strs("tasks", w.registry.Names()).Msg("worker ready")

	fetchDone := make(chan struct{})
	go func() {
		defer close(fetchDone)
		w.consume(ctx)
	}()
	select {
	case <-ctx.Done():
	case <-w.abort:
	}
	w.log.Info().Msg("warm shutdown: no new tasks are taken")
	w.credits.close()
	<-fetchDone
	return w.shutdown()
}

func (w *Worker) shutdown() error {
	// Tasks that have not started go back first, so other workers can take
	// them while this one finishes its running tasks.
	waiting := append(w.scheduler.close(), w.pool.takeQueued()...)
	w.restoreJobs(waiting, "not started")

	graceCtx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownGrace)
	go func() {
		select {
		case <-w.abort:
			cancel()
		case <-graceCtx.Done():
		}
	}()
	if !w.pool.wait(graceCtx) {
		w.log.Warn().Dur("grace", w.cfg.ShutdownGrace).Msg("running tasks did not finish in time; restoring their messages")
	}
	cancel()
	// Tasks still running now are given up: their outcome is ignored, and
	// their messages, if not acked yet, go back to the queue. They are
	// marked abandoned before their contexts are cancelled, so a task that
	// returns because of the cancellation cannot store a spurious failure.
	w.mu.Lock()
	var rest []*job
	for j := range w.running {
		rest = append(rest, j)
	}
	for _, j := range w.held {
		rest = append(rest, j)
	}
	w.mu.Unlock()
	w.restoreJobs(rest, "unfinished")
	// Wait for goroutines that won a job's outcome just before the abandon
	// to hand their writes to the completer.
	w.settling.Lock()
	w.cancelTask()
	w.settling.Unlock()
	w.joins.Wait()
	w.pool.stop()
	w.completer.close()
	w.lease.shutdown()
	if w.cfg.RestoreInterval > 0 {
		w.recoverer.shutdown()
	}
	if !w.cfg.DisableControl {
		w.mailbox.shutdown()
	}
	if w.cfg.HeartbeatInterval > 0 {
		w.heart.shutdown()
	}
	w.events.shutdown()
	if err := w.revoked.save(w.clock.Now()); err != nil {
		w.log.Error().Err(err).Msg("could not save the statedb")
	}
	w.log.Info().Int64("processed", w.processed.Load()).Msg("worker stopped")
	return nil
}

// restoreJobs gives up jobs that have not finished and puts the messages
// of those not yet acked back at the front of their queues.
func (w *Worker) restoreJobs(jobs []*job, why string) {
	var tags []string
	for _, j := range jobs {
		if !j.state.CompareAndSwap(jobReserved, jobAbandoned) && !j.state.CompareAndSwap(jobActive, jobAbandoned) {
			continue
		}
		if !j.acked.Load() {
			tags = append(tags, j.d.Tag)
		}
	}
	if len(tags) == 0 {
		return
	}
	n, err := w.broker.Restore(context.Background(), tags...)
	if err != nil {
		w.log.Error().Err(err).Int("messages", len(tags)).Msg("could not restore messages; the visibility timeout will bring them back")
	} else {
		w.log.Info().Int("messages", n).Str("which", why).Msg("restored unacknowledged messages")
	}
	w.mu.Lock()
	for _, t := range tags {
		delete(w.held, t)
	}
	w.mu.Unlock()
}

func (w *Worker) heldTags() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	tags := make([]string, 0, len(w.held))
	for t := range w.held {
		tags = append(tags, t)
	}
	return tags
}

// Processed is the number of tasks finished since start.
func (w *Worker) Processed() int64 { return w.processed.Load() }

// credits is the prefetch window: one credit per message taken from the
// queue and not yet acked.
type credits struct {
	mu     sync.Mutex
	cond   *sync.Cond
	free   int
	total  int
	closed bool
}

func newCredits(n int) *credits {
	c := &credits{free: n, total: n}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *credits) capacity() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// acquire waits for at least one credit and takes up to max; 0 after close.
func (c *credits) acquire(max int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.free <= 0 && !c.closed {
		c.cond.Wait()
	}
	if c.closed {
		return 0
	}
	n := min(c.free, max)
	c.free -= n
	return n
}

func (c *credits) release(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.free += n
	c.mu.Unlock()
	c.cond.Signal()
}

// resize changes the window (pool_grow/shrink change concurrency).
func (c *credits) resize(total int) {
	c.mu.Lock()
	c.free += total - c.total
	c.total = total
	c.mu.Unlock()
	c.cond.Broadcast()
}

func (c *credits) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cond.Broadcast()
}
