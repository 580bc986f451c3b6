package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/ratelimit"
	"github.com/qagen/qagen/rdb"
)

func ratelimitCommand() *cli.Command {
	d := config.DefaultWorker()
	common := []cli.Flag{
		&cli.StringFlag{Name: "broker", Value: d.BrokerURL, EnvVars: []string{config.EnvBrokerURL}, DefaultText: rdb.Redact(d.BrokerURL)},
		&cli.StringFlag{Name: "key-prefix", Usage: "kombu global_keyprefix of broker keys"},
	}
	return &cli.Command{
		Name:  "ratelimit",
		Usage: "show or change the fleet-wide LLM rate limits (requests and tokens per minute, shared through Redis)",
		Subcommands: []*cli.Command{
			{
				Name: "show", Usage: "limits in force and each model's current pause and budget use",
				Flags: common, Action: func(c *cli.Context) error { return showLimits(c, c.App.Writer) },
			},
			{
				Name: "set", Usage: "set a limit for every worker at once, e.g. set gemini/gemini-2.0-flash --rpm 120 --tpm 100000",
				ArgsUsage: "PROVIDER/MODEL (or PROVIDER/* for all its models)",
				Flags: append([]cli.Flag{
					&cli.IntFlag{Name: "rpm", Usage: "requests per minute (0: no request limit)"},
					&cli.IntFlag{Name: "tpm", Usage: "tokens per minute (0: no token limit)"},
					&cli.Float64Flag{Name: "burst", Usage: "seconds of budget that may be spent at once", Value: 1},
				}, common...),
				Action: func(c *cli.Context) error {
					key, store, err := limitTarget(c)
					if err != nil {
						return err
					}
					lim := ratelimit.Limit{RPM: c.Int("rpm"), TPM: c.Int("tpm"), BurstSeconds: c.Float64("burst")}
					if err := store.SetLimit(c.Context, key, lim); err != nil {
						return err
					}
					fmt.Fprintf(writerOf(c), "%s: %s (every worker applies it within 2 s)\n", key, lim)
					return nil
				},
			},
			{
				Name: "unset", Usage: "remove a fleet-wide limit (workers fall back to their own settings and the defaults)",
				ArgsUsage: "PROVIDER/MODEL", Flags: common,
				Action: func(c *cli.Context) error {
					key, store, err := limitTarget(c)
					if err != nil {
						return err
					}
					if err := store.DeleteLimit(c.Context, key); err != nil {
						return err
					}
					fmt.Fprintf(writerOf(c), "%s: fleet-wide limit removed\n", key)
					return nil
				},
			},
		},
	}
}

func writerOf(c *cli.Context) io.Writer {
	if c.App.Writer != nil {
		return c.App.Writer
	}
	return os.Stdout
}

func limitStore(c *cli.Context) (*ratelimit.RedisStore, func(), error) {
	opts, err := rdb.ParseURL(c.String("broker"))
	if err != nil {
		return nil, nil, err
	}
	pool := opts.NewPool(rdb.PoolOptions{})
	b := broker.New(pool, broker.Options{DB: opts.DB, KeyPrefix: c.String("key-prefix")})
	store := ratelimit.NewRedisStore(pool, b.Key(ratelimit.DefaultPrefix))
	_, _ = store.SyncClock(c.Context) // pauses shown on Redis's clock; a failure shows up in the next call
	return store, func() { pool.Close() }, nil
}

func limitTarget(c *cli.Context) (ratelimit.Key, *ratelimit.RedisStore, error) {
	if c.NArg() != 1 {
		return ratelimit.Key{}, nil, fmt.Errorf("want one PROVIDER/MODEL, got %d arguments", c.NArg())
	}
	key, err := ratelimit.ParseKey(c.Args().First())
	if err != nil {
		return key, nil, err
	}
	store, closeFn, err := limitStore(c)
	if err != nil {
		return key, nil, err
	}
	go func() { <-c.Context.Done(); closeFn() }()
	return key, store, nil
}

// showLimits prints the fleet's limits, the defaults, and the state of
// each: what `qagen status` shows too.
func showLimits(c *cli.Context, out io.Writer) error {
	store, closeFn, err := limitStore(c)
	if err != nil {
		return err
	}
	defer closeFn()
	fleet, err := store.Limits(c.Context)
	if err != nil {
		return fmt.Errorf("read the fleet's limits: %w", err)
	}
	fmt.Fprintln(out, "LLM rate limits (fleet-wide, in Redis; `qagen ratelimit set` changes them):")
	if len(fleet) == 0 {
		fmt.Fprintln(out, "  none set: workers use their --llm-rpm/--llm-tpm/--llm-limits, else the defaults below")
	}
	now := time.Now()
	for _, k := range fleet.Keys() {
		fmt.Fprintf(out, "  %-36s %s\n", k, fleet[k])
	}
	if active, err := store.ActiveKeys(c.Context); err == nil && len(active) > 0 {
		fmt.Fprintln(out, "in use (models called in the last hour):")
		for _, k := range active {
			note := stateNote(c, store, k, now)
			if note == "" {
				note = "; idle"
			}
			fmt.Fprintf(out, "  %-36s %s\n", k, note[2:])
		}
	}
	fmt.Fprintln(out, "defaults (first paid tier):")
	defaults := ratelimit.Table(ratelimit.Defaults)
	for _, k := range defaults.Keys() {
		if _, set := fleet[k]; set {
			continue
		}
		fmt.Fprintf(out, "  %-36s %s\n", k, defaults[k])
	}
	return nil
}

func stateNote(c *cli.Context, store *ratelimit.RedisStore, k ratelimit.Key, now time.Time) string {
	st, err := store.State(c.Context, k, now)
	if err != nil {
		return ""
	}
	note := ""
	if st.CooldownLeft > 0 {
		note += fmt.Sprintf("; PAUSED for %s after a 429", st.CooldownLeft.Round(100*time.Millisecond))
	}
	if st.RequestsAhead > 0 || st.TokensAhead > 0 {
		note += fmt.Sprintf("; budget in use: requests %s, tokens %s ahead", st.RequestsAhead.Round(time.Millisecond), st.TokensAhead.Round(time.Millisecond))
	}
	return note
}
