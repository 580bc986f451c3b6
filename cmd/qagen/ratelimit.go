package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/ratelimit"
	"github.com/qagen/qagen/rdb"
)

func ratelimitCommand() *cli.Command {
	d := config.DefaultWorker()
	common := []cli.Flag{brokerFlag(d), keyPrefixFlag()}
	return &cli.Command{
		Name:  "ratelimit",
		Usage: "show or change the fleet-wide LLM rate limits (requests and tokens per minute, shared through Redis)",
		Subcommands: []*cli.Command{
			{
				Name: "show", Usage: "limits in force and each model's current pause and budget use",
				Flags: common, Action: func(c *cli.Context) error { return showLimits(c, writerOf(c)) },
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
					lim := ratelimit.Limit{RPM: c.Int("rpm"), TPM: c.Int("tpm"), BurstSeconds: c.Float64("burst")}
					return onLimitTarget(c, func(key ratelimit.Key, store *ratelimit.RedisStore) error {
						if err := store.SetLimit(c.Context, key, lim); err != nil {
							return err
						}
						fmt.Fprintf(writerOf(c), "%s: %s (every worker applies it within 2 s)\n", key, lim)
						return nil
					})
				},
			},
			{
				Name: "unset", Usage: "remove a fleet-wide limit (workers fall back to their own settings and the defaults)",
				ArgsUsage: "PROVIDER/MODEL", Flags: common,
				Action: func(c *cli.Context) error {
					return onLimitTarget(c, func(key ratelimit.Key, store *ratelimit.RedisStore) error {
						if err := store.DeleteLimit(c.Context, key); err != nil {
							return err
						}
						fmt.Fprintf(writerOf(c), "%s: fleet-wide limit removed\n", key)
						return nil
					})
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

// limitStoreOf is the fleet's rate-limit store: on the broker's Redis,
// under its key prefix, where every worker's limiter keeps it.
func limitStoreOf(b *broker.Broker) *ratelimit.RedisStore {
	return ratelimit.NewRedisStore(b.Pool(), b.Key(ratelimit.DefaultPrefix))
}

// limitStore opens the store of --broker/--key-prefix; closeFn releases
// its pool.
func limitStore(c *cli.Context) (store *ratelimit.RedisStore, closeFn func(), err error) {
	b, _, err := dialBroker(c, rdb.PoolOptions{})
	if err != nil {
		return nil, nil, err
	}
	return limitStoreOf(b), func() { b.Pool().Close() }, nil
}

// onLimitTarget runs fn on the PROVIDER/MODEL argument and the store.
func onLimitTarget(c *cli.Context, fn func(ratelimit.Key, *ratelimit.RedisStore) error) error {
	if c.NArg() != 1 {
		return fmt.Errorf("want one PROVIDER/MODEL, got %d arguments", c.NArg())
	}
	key, err := ratelimit.ParseKey(c.Args().First())
	if err != nil {
		return err
	}
	store, closeFn, err := limitStore(c)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(key, store)
}

// llmLimitFlags reads --llm-limits and --llm-rpm/--llm-tpm, shared by the
// worker and in-process generation: the file's table, and the limit the
// two flags set for a whole provider (unlimited when neither is given).
func llmLimitFlags(c *cli.Context) (ratelimit.Table, ratelimit.Limit, error) {
	table := ratelimit.Table{}
	if path := c.String("llm-limits"); path != "" {
		t, err := ratelimit.LoadFile(path)
		if err != nil {
			return nil, ratelimit.Limit{}, err
		}
		table = t
	}
	lim := ratelimit.Limit{RPM: c.Int("llm-rpm"), TPM: c.Int("llm-tpm")}
	if lim.RPM < 0 || lim.TPM < 0 {
		return nil, ratelimit.Limit{}, errors.New("--llm-rpm and --llm-tpm must not be negative")
	}
	return table, lim, nil
}

// showLimits prints the fleet's limits, the defaults, and the state of
// each: what `qagen status` shows too.
func showLimits(c *cli.Context, out io.Writer) error {
	store, closeFn, err := limitStore(c)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx := c.Context
	fleet, err := store.Limits(ctx)
	if err != nil {
		return fmt.Errorf("read the fleet's limits: %w", err)
	}
	fmt.Fprintln(out, "LLM rate limits (fleet-wide, in Redis; `qagen ratelimit set` changes them):")
	if len(fleet) == 0 {
		fmt.Fprintln(out, "  none set: workers use their --llm-rpm/--llm-tpm/--llm-limits, else the defaults below")
	}
	for _, k := range fleet.Keys() {
		fmt.Fprintf(out, "  %-36s %s\n", k, fleet[k])
	}
	if active, err := store.ActiveKeys(ctx); err == nil && len(active) > 0 {
		_, _ = store.SyncClock(ctx) // pauses shown on Redis's clock; a failure shows up in the next call
		now := time.Now()
		fmt.Fprintln(out, "in use (models called in the last hour):")
		for _, k := range active {
			note := stateNote(ctx, store, k, now)
			if note == "" {
				note = "idle"
			}
			fmt.Fprintf(out, "  %-36s %s\n", k, note)
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

// stateNote describes k's pause and budget use ("" when idle).
func stateNote(ctx context.Context, store *ratelimit.RedisStore, k ratelimit.Key, now time.Time) string {
	st, err := store.State(ctx, k, now)
	if err != nil {
		return ""
	}
	var notes []string
	if st.CooldownLeft > 0 {
		notes = append(notes, fmt.Sprintf("PAUSED for %s after a 429", st.CooldownLeft.Round(100*time.Millisecond)))
	}
	if st.RequestsAhead > 0 || st.TokensAhead > 0 {
		notes = append(notes, fmt.Sprintf("budget in use: requests %s, tokens %s ahead", st.RequestsAhead.Round(time.Millisecond), st.TokensAhead.Round(time.Millisecond)))
	}
	return strings.Join(notes, "; ")
}
