package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/llm"
	"github.com/qagen/qagen/ratelimit"
	"github.com/qagen/qagen/rdb"
	"github.com/qagen/qagen/tasks"
	"github.com/qagen/qagen/worker"
)

func workerCommand() *cli.Command {
	d := config.DefaultWorker()
	return &cli.Command{
		Name:  "worker",
		Usage: "consume Celery tasks from Redis (drop-in for `celery -A celery_tasks worker`)",
		Flags: []cli.Flag{
			brokerFlag(d),
			backendFlag(d),
			&cli.StringFlag{Name: "queues", Aliases: []string{"Q"}, Usage: "comma-separated queues", Value: strings.Join(d.Queues, ",")},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Usage: "tasks run at once", Value: d.Concurrency, EnvVars: []string{"QAGEN_CONCURRENCY"}},
			&cli.StringFlag{Name: "hostname", Aliases: []string{"n"}, Usage: "nodename (%h host, %n short host, %d domain)", Value: d.Hostname},
			&cli.StringFlag{Name: "loglevel", Aliases: []string{"l"}, Usage: "debug, info, warning, error", Value: d.LogLevel},
			&cli.StringFlag{Name: "log-format", Usage: "console or json", Value: d.LogFormat, EnvVars: []string{"QAGEN_LOG_FORMAT"}},
			&cli.StringFlag{Name: "logfile", Aliases: []string{"f"}, Usage: "log file (%n name, %p nodename, %h host); default stderr"},
			&cli.StringFlag{Name: "pidfile", Usage: "pid file; refuses to start if it names a live process"},
			&cli.IntFlag{Name: "prefetch-multiplier", Usage: "messages reserved per slot", Value: d.PrefetchMultiplier},
			&cli.Float64Flag{Name: "time-limit", Usage: "hard time limit in seconds (0: none)", Value: d.TimeLimit.Seconds()},
			&cli.Float64Flag{Name: "soft-time-limit", Usage: "soft time limit in seconds (0: none)", Value: d.SoftTimeLimit.Seconds()},
			&cli.Float64Flag{Name: "visibility-timeout", Usage: "seconds before an unacked message of a dead worker is redelivered", Value: d.VisibilityTimeout.Seconds()},
			&cli.Float64Flag{Name: "restore-interval", Usage: "seconds between passes that restore unacked messages of dead workers (kombu: ~100)", Value: 100},
			&cli.BoolFlag{Name: "acks-late", Usage: "ack after the task finishes (task_acks_late)", Value: d.AcksLate},
			&cli.Float64Flag{Name: "result-expires", Usage: "result TTL in seconds (0: never expire)", Value: d.ResultExpires.Seconds()},
			&cli.BoolFlag{Name: "result-extended", Usage: "store name, args, kwargs, worker, retries and queue with results"},
			&cli.BoolFlag{Name: "track-started", Usage: "store STARTED before a task runs"},
			&cli.StringFlag{Name: "timezone", Usage: "app timezone for date_done and retry ETAs", Value: d.Timezone, EnvVars: []string{"QAGEN_TIMEZONE"}},
			keyPrefixFlag(),
			&cli.Float64Flag{Name: "shutdown-timeout", Usage: "seconds a warm shutdown waits for running tasks (0: hard time limit + 10 s)"},
			&cli.BoolFlag{Name: "events", Aliases: []string{"E"}, Usage: "send task events (celery -E)", EnvVars: []string{"QAGEN_TASK_EVENTS"}},
			&cli.Float64Flag{Name: "heartbeat-interval", Usage: "seconds between worker-heartbeat events", Value: 2},
			&cli.BoolFlag{Name: "without-heartbeat", Usage: "send no worker events (online, heartbeat, offline)"},
			&cli.BoolFlag{Name: "without-control", Usage: "do not answer remote-control commands (inspect, status, revoke)"},
			&cli.StringFlag{Name: "statedb", Usage: "file that keeps revoked task ids across restarts (%n, %p expand)"},
			&cli.StringFlag{Name: "llm-provider", Usage: "use this LLM provider for every Q&A task, whatever the task names (gemini, openai, offline)", EnvVars: []string{"QAGEN_LLM_PROVIDER"}},
			&cli.Float64Flag{Name: "llm-timeout", Usage: "seconds one LLM call may take (below the soft time limit)", Value: 90},
			&cli.IntFlag{Name: "qa-max-retries", Usage: "retries of a Q&A task before it returns success=false", Value: 3},
			&cli.Float64Flag{Name: "qa-retry-delay", Usage: "base of the exponential backoff between Q&A retries, in seconds", Value: 2},
			&cli.IntFlag{Name: "llm-rpm", Usage: "fleet-wide LLM requests per minute for the tasks' provider (written to Redis for every worker)", EnvVars: []string{"QAGEN_LLM_RPM"}},
			&cli.IntFlag{Name: "llm-tpm", Usage: "fleet-wide LLM tokens per minute (input + expected output)", EnvVars: []string{"QAGEN_LLM_TPM"}},
			&cli.StringFlag{Name: "llm-limits", Usage: "JSON file of limits: {\"provider/model\": {\"rpm\": N, \"tpm\": N, \"burst_seconds\": S}}", EnvVars: []string{"QAGEN_LLM_LIMITS"}},
			&cli.Float64Flag{Name: "llm-wait-in-place", Usage: "longest rate-limit wait taken inside a task slot, in seconds; longer waits re-schedule the task", Value: 5},
			&cli.BoolFlag{Name: "no-llm-limit", Usage: "do not pace LLM calls (each worker sends as fast as its slots allow)"},
			&cli.StringSliceFlag{Name: "task-rate-limit", Usage: "Celery's per-worker rate_limit of a task, TASK=SPEC (e.g. celery_tasks.generate_qa_unified_async=50/m); repeatable, like task_annotations"},
			&cli.StringFlag{Name: "cpu-profile", Usage: "write a Go CPU profile to this file (diagnostics)", Hidden: true},
			&cli.StringFlag{Name: "default-queue", Usage: "queue for follow-up tasks whose options name none", Value: d.DefaultQueue},
		},
		Action: runWorker,
	}
}

func runWorker(c *cli.Context) error {
	cfg := config.DefaultWorker()
	cfg.BrokerURL = c.String("broker")
	cfg.BackendURL = c.String("result-backend")
	cfg.Queues = splitList(c.String("queues"))
	cfg.Concurrency = c.Int("concurrency")
	cfg.Hostname = c.String("hostname")
	cfg.PrefetchMultiplier = c.Int("prefetch-multiplier")
	cfg.TimeLimit = secondsFlag(c.Float64("time-limit"))
	cfg.SoftTimeLimit = secondsFlag(c.Float64("soft-time-limit"))
	cfg.VisibilityTimeout = secondsFlag(c.Float64("visibility-timeout"))
	cfg.AcksLate = c.Bool("acks-late")
	cfg.ResultExpires = secondsFlag(c.Float64("result-expires"))
	cfg.ResultExtended = c.Bool("result-extended")
	cfg.TrackStarted = c.Bool("track-started")
	cfg.Timezone = c.String("timezone")
	cfg.KeyPrefix = c.String("key-prefix")
	cfg.ShutdownGrace = secondsFlag(c.Float64("shutdown-timeout"))
	cfg.DefaultQueue = c.String("default-queue")
	cfg.PidFile = c.String("pidfile")
	cfg.LogFile = c.String("logfile")
	cfg.LogLevel = parseLevel(c.String("loglevel"))
	cfg.LogFormat = c.String("log-format")

	brokerOpts, backendOpts, loc, err := cfg.Validate()
	if err != nil {
		return err
	}
	nodename := config.Nodename(cfg.Hostname)
	var out io.Writer = os.Stderr
	if cfg.LogFile != "" {
		path := config.LogFilePath(cfg.LogFile, nodename)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		defer f.Close()
		out = f
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat, out)
	if err != nil {
		return err
	}
	if cfg.PidFile != "" {
		release, err := acquirePidFile(cfg.PidFile)
		if err != nil {
			return err
		}
		defer release()
	}

	brokerPool := brokerOpts.NewPool(rdb.PoolOptions{MaxIdle: 16})
	defer brokerPool.Close()
	backendPool := brokerPool
	if !backendOpts.SameDatabase(brokerOpts) {
		backendPool = backendOpts.NewPool(rdb.PoolOptions{MaxIdle: 16})
		defer backendPool.Close()
	}
	if err := ping(c.Context, brokerPool); err != nil {
		return fmt.Errorf("broker %s: %w", brokerOpts, err)
	}
	if err := ping(c.Context, backendPool); err != nil {
		return fmt.Errorf("result backend %s: %w", backendOpts, err)
	}
	b := broker.New(brokerPool, broker.Options{DB: brokerOpts.DB, KeyPrefix: cfg.KeyPrefix, VisibilityTimeout: cfg.VisibilityTimeout})
	expires := cfg.ResultExpires
	if expires == 0 {
		expires = -1
	}
	results := backend.New(backendPool, backend.Options{Expires: expires})

	heartbeat := secondsFlag(c.Float64("heartbeat-interval"))
	if c.Bool("without-heartbeat") || heartbeat <= 0 {
		heartbeat = -1
	}
	statedb := c.String("statedb")
	if statedb != "" {
		statedb = config.LogFilePath(statedb, nodename)
	}
	reg := worker.NewRegistry()
	tasks.RegisterDiagnostics(reg)
	llmTimeout := secondsFlag(c.Float64("llm-timeout"))
	if cfg.SoftTimeLimit > 0 && llmTimeout >= cfg.SoftTimeLimit {
		return fmt.Errorf("--llm-timeout (%s) must be below the soft time limit (%s)", llmTimeout, cfg.SoftTimeLimit)
	}
	force := strings.ToLower(strings.TrimSpace(c.String("llm-provider")))
	if force != "" {
		if _, err := llm.NewWith(c.Context, force, llm.Options{Timeout: llmTimeout}); err != nil {
			return fmt.Errorf("--llm-provider %s: %w", force, err)
		}
	}
	providers := &llm.Cache{NewFunc: func(ctx context.Context, name string) (llm.Provider, error) {
		return llm.NewWith(ctx, name, llm.Options{Timeout: llmTimeout})
	}}
	limiter, err := newLimiter(c, b, force, log)
	if err != nil {
		return err
	}
	tasks.RegisterQA(reg, tasks.QAConfig{
		Limiter:  limiter,
		Provider: providers.Get, DefaultProvider: llm.ResolveName(""), ForceProvider: force,
		MaxRetries: c.Int("qa-max-retries"), BaseDelay: secondsFlag(c.Float64("qa-retry-delay")), Logger: log,
	})
	rateLimits, err := parseTaskRateLimits(c.StringSlice("task-rate-limit"))
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		RateLimits: rateLimits,
		Queues:     cfg.Queues, Concurrency: cfg.Concurrency, PrefetchMultiplier: cfg.PrefetchMultiplier,
		Hostname: nodename, AcksLate: cfg.AcksLate, TimeLimit: cfg.TimeLimit, SoftTimeLimit: cfg.SoftTimeLimit,
		VisibilityTimeout: cfg.VisibilityTimeout, ShutdownGrace: cfg.ShutdownGrace,
		RestoreInterval:   secondsFlag(c.Float64("restore-interval")),
		TaskEvents:        c.Bool("events"),
		HeartbeatInterval: heartbeat,
		DisableControl:    c.Bool("without-control"),
		StateDB:           statedb,
		Version:           version,
		BrokerInfo:        brokerInfo(brokerOpts, cfg),
		Conf: map[string]any{
			"broker_url": brokerOpts.String(), "result_backend": backendOpts.String(),
			"worker_hostname": nodename, "task_queues": cfg.Queues, "result_expires": cfg.ResultExpires.Seconds(),
		},
		TrackStarted: cfg.TrackStarted, ResultExtended: cfg.ResultExtended, DefaultQueue: cfg.DefaultQueue,
		Location: loc, Logger: log,
	}, reg, b, results)
	if err != nil {
		return err
	}
	log.Info().Str("broker", brokerOpts.String()).Str("result_backend", backendOpts.String()).
		Str("version", version).Int("pid", os.Getpid()).Msg("qagen worker starting")

	if path := c.String("cpu-profile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		first := true
		for s := range sigs {
			switch {
			case s == syscall.SIGQUIT || !first:
				log.Warn().Str("signal", s.String()).Msg("cold shutdown: restoring every unfinished message now")
				stop()
				w.Abort()
			default:
				log.Info().Str("signal", s.String()).Msg("warm shutdown requested; send it again for a cold shutdown")
				stop()
			}
			first = false
		}
	}()
	return w.Run(ctx)
}

func ping(ctx context.Context, p *redis.Pool) error {
	conn, err := p.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Do("PING")
	return err
}

// newLimiter builds the fleet-wide LLM rate limiter on the broker's Redis.
// --llm-rpm/--llm-tpm are written to Redis, so every worker of the fleet
// uses them (and `qagen ratelimit set` changes them at run time).
func newLimiter(c *cli.Context, b *broker.Broker, force string, log zerolog.Logger) (*ratelimit.Limiter, error) {
	local, lim, err := llmLimitFlags(c)
	if err != nil {
		return nil, err
	}
	store := limitStoreOf(b)
	// Budgets and pauses live on Redis's clock: hosts whose clocks differ
	// still share them. Re-measured every few minutes (clocks drift).
	syncClock := func() {
		skew, err := store.SyncClock(c.Context)
		switch {
		case err != nil:
			log.Warn().Err(err).Msg("could not compare this host's clock with Redis's; the rate limiter trusts the host's")
		case skew > 100*time.Millisecond || skew < -100*time.Millisecond:
			log.Warn().Dur("skew", skew).Msg("this host's clock differs from Redis's; the rate limiter corrects for it")
		}
	}
	syncClock()
	go func() {
		tick := time.NewTicker(5 * time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-c.Context.Done():
				return
			case <-tick.C:
				syncClock()
			}
		}
	}()
	if !lim.Unlimited() {
		provider := force
		if provider == "" {
			provider = llm.ResolveName("")
		}
		key := ratelimit.Key{Provider: provider, Model: "*"}
		if err := store.SetLimit(c.Context, key, lim); err != nil {
			return nil, fmt.Errorf("set the fleet's LLM limit: %w", err)
		}
		log.Info().Str("key", key.String()).Str("limit", lim.String()).Msg("fleet-wide LLM rate limit set")
	}
	return ratelimit.New(ratelimit.Config{
		Store: store, Local: local, MaxInPlace: secondsFlag(c.Float64("llm-wait-in-place")),
		Disabled: c.Bool("no-llm-limit"), Logger: log,
	}), nil
}

// brokerInfo is what the stats command reports about the broker: Celery's
// fields, never the password.
func brokerInfo(o rdb.Options, cfg config.Worker) worker.BrokerInfo {
	host, port := o.Address, 0
	if o.Network == "tcp" {
		if h, p, err := net.SplitHostPort(o.Address); err == nil {
			host = h
			port, _ = strconv.Atoi(p)
		}
	}
	opts := map[string]any{"visibility_timeout": cfg.VisibilityTimeout.Seconds()}
	if cfg.KeyPrefix != "" {
		opts["global_keyprefix"] = cfg.KeyPrefix
	}
	return worker.BrokerInfo{Hostname: host, Port: port, UserID: o.Username, VirtualHost: strconv.Itoa(o.DB), SSL: o.TLS, TransportOptions: opts}
}

// parseTaskRateLimits reads --task-rate-limit TASK=SPEC values.
func parseTaskRateLimits(values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		name, spec, ok := strings.Cut(v, "=")
		name, spec = strings.TrimSpace(name), strings.TrimSpace(spec)
		if !ok || name == "" || spec == "" {
			return nil, fmt.Errorf("--task-rate-limit %q: want TASK=SPEC, e.g. celery_tasks.generate_qa_unified_async=50/m", v)
		}
		out[name] = spec
	}
	return out, nil
}

// secondsFlag turns a seconds flag into a duration; 0 stays 0.
func secondsFlag(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// acquirePidFile writes our pid, refusing when the file names a live
// process (as Celery's --pidfile does). The returned func removes it.
func acquirePidFile(path string) (func(), error) {
	if data, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 && pid != os.Getpid() {
			if syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM) {
				return nil, &exitError{code: 1, err: fmt.Errorf("pid file %s names running process %d; is a worker already running?", path, pid)}
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	return func() {
		if data, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(os.Getpid()) {
			os.Remove(path)
		}
	}, nil
}
