package worker

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/clock"
)

// EventPublisher is what the worker needs to send events.
type EventPublisher interface {
	PublishFanout(ctx context.Context, msgs ...broker.FanoutMessage) error
}

// SoftwareIdent is the sw_ident of qagen's events (Python sends
// "py-celery"; monitors only display it).
const SoftwareIdent = "qagen"

// dispatcher sends events on the celeryev fanout exchange: worker events
// always (online, heartbeat, offline), task events while enabled (-E, or
// the enable_events command). Events are queued and published in
// pipelined batches by one goroutine; a full queue drops task events
// rather than slow tasks down (events are best effort in Celery too).
type dispatcher struct {
	pub      EventPublisher
	clock    clock.Clock
	hostname string
	pid      int
	lamport  *atomic.Int64
	log      zerolog.Logger

	taskEvents atomic.Bool
	in         chan broker.FanoutMessage
	done       chan struct{}
	dropped    atomic.Int64
	closeOnce  sync.Once
}

func newDispatcher(pub EventPublisher, c clock.Clock, hostname string, lamport *atomic.Int64, log zerolog.Logger) *dispatcher {
	return &dispatcher{pub: pub, clock: c, hostname: hostname, pid: os.Getpid(), lamport: lamport, log: log,
		in: make(chan broker.FanoutMessage, 4096), done: make(chan struct{})}
}

func (d *dispatcher) start() { go d.run() }

func (d *dispatcher) run() {
	defer close(d.done)
	batch := make([]broker.FanoutMessage, 0, 256)
	for m := range d.in {
		batch = append(batch[:0], m)
	drain:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-d.in:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		if err := d.pub.PublishFanout(context.Background(), batch...); err != nil {
			d.log.Warn().Err(err).Int("events", len(batch)).Msg("could not publish events")
		}
	}
}

// shutdown sends what is queued and stops.
func (d *dispatcher) shutdown() {
	d.closeOnce.Do(func() { close(d.in) })
	<-d.done
	if n := d.dropped.Load(); n > 0 {
		d.log.Warn().Int64("events", n).Msg("task events dropped because the event queue was full")
	}
}

// send publishes one event of the given type; fields, a map of the
// caller's own, is completed with the common fields and encoded. Worker
// events wait for room in the queue; task events are dropped when it is full.
func (d *dispatcher) send(eventType string, fields map[string]any, mustSend bool) {
	now := d.clock.Now()
	fields["hostname"] = d.hostname
	fields["utcoffset"] = celery.UTCOffset(now)
	fields["pid"] = d.pid
	fields["clock"] = d.lamport.Add(1)
	fields["timestamp"] = float64(now.UnixMicro()) / 1e6
	fields["type"] = eventType
	body, err := json.Marshal(fields)
	if err != nil {
		d.log.Error().Err(err).Str("event", eventType).Msg("cannot encode event")
		return
	}
	rk := celery.EventRoutingKey(eventType)
	m := broker.FanoutMessage{Exchange: celery.EventExchange, RoutingKey: rk, Body: celery.EncodeEvent(d.hostname, rk, body)}
	defer func() { _ = recover() }() // the queue closed under a late event
	if mustSend {
		d.in <- m
		return
	}
	select {
	case d.in <- m:
	default:
		d.dropped.Add(1)
	}
}

// task sends a task event when task events are enabled. fields is only
// called then: without -E, running a task builds no event (a result's
// repr, a traceback).
func (d *dispatcher) task(eventType string, fields func() map[string]any) {
	if d.taskEvents.Load() {
		d.send(eventType, fields(), false)
	}
}

// workerFields are the fields of worker-online/heartbeat/offline.
func (w *Worker) workerFields(freq float64) map[string]any {
	_, running, _ := w.pool.size()
	return map[string]any{
		// A float on the wire, as Python sends it (2.0, not 2).
		"freq": json.Number(strconv.FormatFloat(freq, 'f', -1, 64) + floatSuffix(freq)), "active": running, "processed": w.processed.Load(),
		"loadavg": loadavg(), "sw_ident": SoftwareIdent, "sw_ver": w.cfg.Version, "sw_sys": sysName(),
	}
}

// heartbeater sends worker-online at start, worker-heartbeat every
// interval (Celery: 2 s; monitors count a worker alive for 2×freq) and
// worker-offline at shutdown.
type heartbeater struct {
	w        *Worker
	interval time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup
}

func (h *heartbeater) start() {
	h.w.events.send("worker-online", h.w.workerFields(h.interval.Seconds()), true)
	h.stop = make(chan struct{})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		every(h.w.clock, h.interval, h.stop, func() {
			h.w.events.send("worker-heartbeat", h.w.workerFields(h.interval.Seconds()), true)
		})
	}()
}

func (h *heartbeater) shutdown() {
	close(h.stop)
	h.wg.Wait()
	h.w.events.send("worker-offline", h.w.workerFields(h.interval.Seconds()), true)
}

// loadavg reads /proc/loadavg, rounded to two decimals like Celery.
func loadavg() []float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return []float64{0, 0, 0}
	}
	f := strings.Fields(string(data))
	out := make([]float64, 3)
	for i := 0; i < 3 && i < len(f); i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		out[i] = float64(int(v*100+0.5)) / 100
	}
	return out
}

func sysName() string {
	switch runtime.GOOS {
	case "linux":
		return "Linux"
	case "darwin":
		return "Darwin"
	case "windows":
		return "Windows"
	}
	return runtime.GOOS
}

func floatSuffix(f float64) string {
	if f == float64(int64(f)) {
		return ".0"
	}
	return ""
}
