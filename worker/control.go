package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/qagen/qagen/celery"
)

// controlFunc runs a remote-control command on its JSON arguments. A nil
// result replies null; an error replies {"error": "<repr>"}.
type controlFunc func(w *Worker, args json.RawMessage) (any, error)

// controlCommands are the commands of Celery's worker/control.py that a
// Go worker can honour.
var controlCommands = map[string]controlFunc{
	"ping":          func(*Worker, json.RawMessage) (any, error) { return map[string]string{"ok": "pong"}, nil },
	"stats":         (*Worker).cmdStats,
	"active":        (*Worker).cmdActive,
	"reserved":      (*Worker).cmdReserved,
	"scheduled":     (*Worker).cmdScheduled,
	"registered":    (*Worker).cmdRegistered,
	"active_queues": (*Worker).cmdActiveQueues,
	"query_task":    (*Worker).cmdQueryTask,
	"revoked":       func(w *Worker, _ json.RawMessage) (any, error) { return w.revoked.list(w.clock.Now()), nil },
	"clock": func(w *Worker, _ json.RawMessage) (any, error) {
		return map[string]int64{"clock": w.lamport.Load()}, nil
	},
	"conf":            (*Worker).cmdConf,
	"report":          (*Worker).cmdReport,
	"revoke":          (*Worker).cmdRevoke,
	"terminate":       (*Worker).cmdTerminate,
	"rate_limit":      (*Worker).cmdRateLimit,
	"time_limit":      (*Worker).cmdTimeLimit,
	"add_consumer":    (*Worker).cmdAddConsumer,
	"cancel_consumer": (*Worker).cmdCancelConsumer,
	"pool_grow":       (*Worker).cmdPoolGrow,
	"pool_shrink":     (*Worker).cmdPoolShrink,
	"autoscale": func(*Worker, json.RawMessage) (any, error) {
		return nil, pyError("ValueError", "Autoscale not enabled")
	},
	"pool_restart": func(*Worker, json.RawMessage) (any, error) {
		return nil, pyError("ValueError", "Pool restarts not enabled")
	},
	"enable_events":  (*Worker).cmdEnableEvents,
	"disable_events": (*Worker).cmdDisableEvents,
	"heartbeat":      (*Worker).cmdHeartbeat,
	"hello":          (*Worker).cmdHello,
	"shutdown":       (*Worker).cmdShutdown,
	"election":       func(*Worker, json.RawMessage) (any, error) { return nil, nil },
	"revoke_by_stamped_headers": func(*Worker, json.RawMessage) (any, error) {
		return nil, pyError("NotImplementedError", "qagen workers do not stamp tasks")
	},
}

// pyError renders an error the way Celery's pidbox reports exceptions:
// their repr, e.g. ValueError('unknown task').
func pyError(typ, msg string) error { return errors.New(typ + "(" + celery.PyRepr(msg) + ")") }

func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := celery.Unmarshal(raw, v); err != nil {
		return pyError("TypeError", "bad arguments: "+err.Error())
	}
	return nil
}

// requestInfo is Celery's Request.info() shape used by active, reserved,
// scheduled and query_task.
func (w *Worker) requestInfo(t TaskInfo, safe bool) map[string]any {
	info := map[string]any{
		"id": t.ID, "name": t.Name, "type": t.Name, "hostname": w.cfg.Hostname,
		"args": t.Args, "kwargs": t.Kwargs,
		"time_start": nil, "acknowledged": t.Acknowledged, "worker_pid": nil,
		"delivery_info": map[string]any{"exchange": t.DeliveryInfo.Exchange, "routing_key": t.DeliveryInfo.RoutingKey,
			"priority": t.Priority, "redelivered": t.Redelivered},
	}
	if safe {
		info["args"], info["kwargs"] = t.ArgsRepr, t.KwargsRepr
	}
	if !t.Started.IsZero() {
		info["time_start"] = float64(t.Started.UnixMicro()) / 1e6
		info["worker_pid"] = w.pid
	}
	return info
}

func (w *Worker) infos(ts []TaskInfo, args json.RawMessage) []map[string]any {
	var a struct {
		Safe bool `json:"safe"`
	}
	_ = celery.Unmarshal(args, &a)
	out := make([]map[string]any, 0, len(ts))
	for _, t := range ts {
		out = append(out, w.requestInfo(t, a.Safe))
	}
	return out
}

func (w *Worker) cmdActive(args json.RawMessage) (any, error) { return w.infos(w.Active(), args), nil }
func (w *Worker) cmdReserved(args json.RawMessage) (any, error) {
	return w.infos(w.Reserved(), args), nil
}

func (w *Worker) cmdScheduled(args json.RawMessage) (any, error) {
	out := []map[string]any{}
	for _, t := range w.Scheduled() {
		eta := ""
		if t.ETA != nil {
			eta = celery.FormatTime(*t.ETA)
		}
		out = append(out, map[string]any{"eta": eta, "priority": 6, "request": w.requestInfo(t, false)})
	}
	return out, nil
}

func (w *Worker) cmdQueryTask(args json.RawMessage) (any, error) {
	var a struct {
		IDs json.RawMessage `json:"ids"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	ids := idList(a.IDs)
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]any{}
	for state, list := range map[string][]TaskInfo{"active": w.Active(), "reserved": w.Reserved(), "scheduled": w.Scheduled()} {
		for _, t := range list {
			if want[t.ID] {
				if state == "scheduled" {
					state = "reserved"
				}
				out[t.ID] = []any{state, w.requestInfo(t, false)}
			}
		}
	}
	return out, nil
}

// idList reads a task id argument: a string or a list of strings.
func idList(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil
		}
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

func (w *Worker) cmdRegistered(args json.RawMessage) (any, error) {
	var out []string
	for _, name := range w.registry.Names() {
		entry := name
		if spec := w.rates.spec(name); spec != "" {
			entry += " [rate_limit=" + spec + "]"
		}
		out = append(out, entry)
	}
	return out, nil
}

func (w *Worker) cmdActiveQueues(json.RawMessage) (any, error) {
	var out []map[string]any
	for _, q := range w.Queues() {
		out = append(out, map[string]any{
			"name": q,
			"exchange": map[string]any{"name": q, "type": "direct", "arguments": nil, "durable": true,
				"passive": false, "auto_delete": false, "delivery_mode": nil, "no_declare": false},
			"routing_key": q, "queue_arguments": nil, "binding_arguments": nil, "consumer_arguments": nil,
			"durable": true, "exclusive": false, "auto_delete": false, "no_ack": false, "alias": nil,
			"bindings": []any{}, "no_declare": nil, "expires": nil, "message_ttl": nil, "max_length": nil,
			"max_length_bytes": nil, "max_priority": nil,
		})
	}
	return out, nil
}

func (w *Worker) cmdStats(json.RawMessage) (any, error) {
	slots, _, _ := w.pool.size()
	hard, soft := w.cfg.TimeLimit.Seconds(), w.cfg.SoftTimeLimit.Seconds()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b := w.cfg.BrokerInfo
	return map[string]any{
		"total":  w.Totals(),
		"pid":    w.pid,
		"clock":  fmt.Sprint(w.lamport.Load()),
		"uptime": int(w.clock.Now().Sub(w.started).Seconds()),
		"pool": map[string]any{
			"implementation":           "qagen:goroutines",
			"max-concurrency":          slots,
			"processes":                []int{w.pid},
			"max-tasks-per-child":      "N/A",
			"put-guarded-by-semaphore": false,
			"timeouts":                 []float64{soft, hard},
		},
		"broker": map[string]any{
			"hostname": b.Hostname, "userid": nilIfEmpty(b.UserID), "virtual_host": b.VirtualHost, "port": b.Port,
			"insist": false, "ssl": b.SSL, "transport": "redis", "connect_timeout": 5,
			"transport_options": b.TransportOptions, "login_method": nil, "uri_prefix": nil, "heartbeat": 120.0,
			"failover_strategy": "round-robin", "alternates": []any{},
		},
		"prefetch_count": w.credits.capacity(),
		"rusage": map[string]any{
			"utime": tvSeconds(ru.Utime), "stime": tvSeconds(ru.Stime), "maxrss": ru.Maxrss,
			"ixrss": ru.Ixrss, "idrss": ru.Idrss, "isrss": ru.Isrss, "minflt": ru.Minflt, "majflt": ru.Majflt,
			"nswap": ru.Nswap, "inblock": ru.Inblock, "oublock": ru.Oublock, "msgsnd": ru.Msgsnd,
			"msgrcv": ru.Msgrcv, "nsignals": ru.Nsignals, "nvcsw": ru.Nvcsw, "nivcsw": ru.Nivcsw,
		},
		"sw_ident": SoftwareIdent, "sw_ver": w.cfg.Version,
	}, nil
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (w *Worker) cmdConf(json.RawMessage) (any, error) {
	conf := map[string]any{
		"worker_concurrency":         w.cfg.Concurrency,
		"worker_prefetch_multiplier": w.cfg.PrefetchMultiplier,
		"task_acks_late":             w.cfg.AcksLate,
		"task_reject_on_worker_lost": w.cfg.AcksLate,
		"task_time_limit":            durOrNil(w.cfg.TimeLimit),
		"task_soft_time_limit":       durOrNil(w.cfg.SoftTimeLimit),
		"task_track_started":         w.cfg.TrackStarted,
		"result_extended":            w.cfg.ResultExtended,
		"task_default_queue":         w.cfg.DefaultQueue,
		"worker_send_task_events":    w.events.taskEvents.Load(),
		"timezone":                   w.cfg.Location.String(),
		"accept_content":             acceptList(w.cfg.Accept),
		"task_serializer":            "json",
		"result_serializer":          "json",
		"broker_transport_options":   map[string]any{"visibility_timeout": w.cfg.VisibilityTimeout.Seconds()},
	}
	// Extra settings from the command line; URLs arrive redacted.
	for k, v := range w.cfg.Conf {
		conf[k] = v
	}
	return conf, nil
}

func durOrNil(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return d.Seconds()
}

func acceptList(a []string) []string {
	if len(a) == 0 {
		return []string{"json"}
	}
	return a
}

func (w *Worker) cmdReport(json.RawMessage) (any, error) {
	host, _ := os.Hostname()
	return map[string]string{"ok": fmt.Sprintf("software -> %s:%s (Go %s)\nplatform -> %s\nnode -> %s\nloader -> qagen\nsettings -> transport:redis results:redis\n",
		SoftwareIdent, w.cfg.Version, goVersion(), sysName(), host)}, nil
}

type revokeArgs struct {
	TaskID    json.RawMessage `json:"task_id"`
	Terminate bool            `json:"terminate"`
	Signal    string          `json:"signal"`
}

func (w *Worker) cmdRevoke(args json.RawMessage) (any, error) { return w.revokeCmd(args, false) }

// cmdTerminate is revoke with terminate set.
func (w *Worker) cmdTerminate(args json.RawMessage) (any, error) { return w.revokeCmd(args, true) }

func (w *Worker) revokeCmd(args json.RawMessage, terminate bool) (any, error) {
	var a revokeArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	a.Terminate = a.Terminate || terminate
	ids := idList(a.TaskID)
	terminated := w.Revoke(a.Terminate, a.Signal, ids...)
	if a.Terminate {
		if len(terminated) == 0 {
			return map[string]string{"ok": "terminate: tasks unknown"}, nil
		}
		return map[string]string{"ok": "terminate: " + strings.Join(terminated, ", ")}, nil
	}
	return map[string]string{"ok": fmt.Sprintf("tasks %s flagged as revoked", strings.Join(ids, ", "))}, nil
}

// Revoke flags task ids as revoked: they are not run when they arrive or
// come due (REVOKED is stored instead). With terminate, those running now
// are given up at once and stored as REVOKED('terminated'); the returned ids
// are the ones that were running here.
func (w *Worker) Revoke(terminate bool, signal string, ids ...string) (terminated []string) {
	now := w.clock.Now()
	w.revoked.add(now, ids...)
	if err := w.revoked.save(now); err != nil {
		w.log.Warn().Err(err).Msg("could not save the statedb")
	}
	w.log.Info().Strs("ids", ids).Bool("terminate", terminate).Msg("tasks revoked")
	if terminate {
		for _, id := range ids {
			if w.terminate(id, signal) {
				terminated = append(terminated, id)
			}
		}
	}
	return terminated
}

func (w *Worker) cmdRateLimit(args json.RawMessage) (any, error) {
	var a struct {
		TaskName  string          `json:"task_name"`
		RateLimit json.RawMessage `json:"rate_limit"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if w.registry.lookup(a.TaskName) == nil {
		return map[string]string{"error": "unknown task"}, nil
	}
	spec := ""
	if s, err := rawString(a.RateLimit); err == nil {
		spec = s
	}
	if err := w.rates.set(a.TaskName, spec); err != nil {
		return map[string]string{"error": "Invalid rate limit string: " + spec}, nil
	}
	if r, _ := parseRateLimit(spec); r == 0 {
		return map[string]string{"ok": "rate limit disabled successfully"}, nil
	}
	return map[string]string{"ok": "new rate limit set successfully"}, nil
}

// rawString reads a JSON string or number as text ("10/s", 10).
func rawString(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", err
	}
	return n.String(), nil
}

func (w *Worker) cmdTimeLimit(args json.RawMessage) (any, error) {
	var a struct {
		TaskName string   `json:"task_name"`
		Hard     *float64 `json:"hard"`
		Soft     *float64 `json:"soft"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if w.registry.lookup(a.TaskName) == nil {
		return map[string]string{"error": "unknown task"}, nil
	}
	var hard, soft time.Duration
	if a.Hard != nil {
		hard = seconds(*a.Hard)
	}
	if a.Soft != nil {
		soft = seconds(*a.Soft)
	}
	w.setTimeLimits(a.TaskName, hard, soft)
	w.log.Info().Str("task", a.TaskName).Dur("hard", hard).Dur("soft", soft).Msg("time limits changed")
	return map[string]string{"ok": "time limits set successfully"}, nil
}

func (w *Worker) cmdAddConsumer(args json.RawMessage) (any, error) {
	var a struct {
		Queue string `json:"queue"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Queue == "" {
		return nil, pyError("ValueError", "add_consumer needs a queue")
	}
	if !w.addQueue(a.Queue) {
		return map[string]string{"ok": "already consuming from " + celery.PyRepr(a.Queue)}, nil
	}
	return map[string]string{"ok": "add consumer " + a.Queue}, nil
}

func (w *Worker) cmdCancelConsumer(args json.RawMessage) (any, error) {
	var a struct {
		Queue string `json:"queue"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	w.removeQueue(a.Queue)
	return map[string]string{"ok": "no longer consuming from " + a.Queue}, nil
}

func (w *Worker) poolDelta(args json.RawMessage, sign int) error {
	a := struct {
		N int `json:"n"`
	}{N: 1}
	if err := decodeArgs(args, &a); err != nil {
		return err
	}
	slots, _, _ := w.pool.size()
	w.SetConcurrency(slots + sign*a.N)
	return nil
}

func (w *Worker) cmdPoolGrow(args json.RawMessage) (any, error) {
	if err := w.poolDelta(args, +1); err != nil {
		return nil, err
	}
	return map[string]string{"ok": "pool will grow"}, nil
}

func (w *Worker) cmdPoolShrink(args json.RawMessage) (any, error) {
	if err := w.poolDelta(args, -1); err != nil {
		return nil, err
	}
	return map[string]string{"ok": "pool will shrink"}, nil
}

func (w *Worker) cmdEnableEvents(json.RawMessage) (any, error) {
	if w.events.taskEvents.Swap(true) {
		return map[string]string{"ok": "task events already enabled"}, nil
	}
	w.log.Info().Msg("task events enabled")
	return map[string]string{"ok": "task events enabled"}, nil
}

func (w *Worker) cmdDisableEvents(json.RawMessage) (any, error) {
	if !w.events.taskEvents.Swap(false) {
		return map[string]string{"ok": "task events already disabled"}, nil
	}
	w.log.Info().Msg("task events disabled")
	return map[string]string{"ok": "task events disabled"}, nil
}

func (w *Worker) cmdHeartbeat(json.RawMessage) (any, error) {
	w.events.send("worker-heartbeat", w.workerFields(5), true)
	return nil, nil
}

func (w *Worker) cmdHello(args json.RawMessage) (any, error) {
	var a struct {
		FromNode string             `json:"from_node"`
		Revoked  map[string]float64 `json:"revoked"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.FromNode == w.cfg.Hostname {
		return nil, nil
	}
	now := w.clock.Now()
	w.revoked.merge(now, a.Revoked)
	return map[string]any{"revoked": w.revoked.snapshot(now), "clock": w.lamport.Load()}, nil
}

func (w *Worker) cmdShutdown(json.RawMessage) (any, error) {
	w.log.Warn().Msg("shutdown requested by remote control")
	w.requestShutdown()
	return nil, nil
}
