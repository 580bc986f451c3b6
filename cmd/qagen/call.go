package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/rdb"
)

func callCommand() *cli.Command {
	d := config.DefaultWorker()
	return &cli.Command{
		Name:      "call",
		Usage:     "send one task (like `celery call`) and optionally wait for its result",
		ArgsUsage: "TASK",
		Flags: []cli.Flag{
			brokerFlag(d),
			backendFlag(d),
			&cli.StringFlag{Name: "args", Aliases: []string{"a"}, Usage: "positional arguments as a JSON array", Value: "[]"},
			&cli.StringFlag{Name: "kwargs", Aliases: []string{"k"}, Usage: "keyword arguments as a JSON object", Value: "{}"},
			&cli.StringFlag{Name: "queue", Aliases: []string{"Q"}, Usage: "queue", Value: d.Queues[0]},
			&cli.Float64Flag{Name: "countdown", Usage: "seconds to wait before running"},
			&cli.StringFlag{Name: "eta", Usage: "ISO-8601 time to run at"},
			&cli.Float64Flag{Name: "expires", Usage: "seconds after which the task is revoked"},
			&cli.IntFlag{Name: "priority", Usage: "0-9; on Redis 0 is consumed first"},
			&cli.IntFlag{Name: "protocol", Usage: "task protocol 1 or 2", Value: 2},
			&cli.StringFlag{Name: "compression", Usage: "gzip (zlib) or xz"},
			&cli.StringFlag{Name: "id", Usage: "task id (default: a new uuid)"},
			keyPrefixFlag(),
			&cli.BoolFlag{Name: "wait", Usage: "wait for the result and print it"},
			&cli.DurationFlag{Name: "timeout", Usage: "how long --wait waits (0: forever)"},
		},
		Action: runCall,
	}
}

func runCall(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("call needs exactly one task name, got %d arguments", c.NArg())
	}
	brokerOpts, err := rdb.ParseURL(c.String("broker"))
	if err != nil {
		return err
	}
	backendOpts, err := rdb.ParseURL(c.String("result-backend"))
	if err != nil {
		return err
	}
	t := producer.Task{Name: c.Args().First(), Args: json.RawMessage(c.String("args")), Kwargs: json.RawMessage(c.String("kwargs"))}
	var probe any
	if err := json.Unmarshal(t.Args, &probe); err != nil {
		return fmt.Errorf("--args is not JSON: %w", err)
	}
	if _, ok := probe.([]any); !ok {
		return fmt.Errorf("--args must be a JSON array")
	}
	if err := json.Unmarshal(t.Kwargs, &probe); err != nil {
		return fmt.Errorf("--kwargs is not JSON: %w", err)
	}
	if _, ok := probe.(map[string]any); !ok {
		return fmt.Errorf("--kwargs must be a JSON object")
	}
	t.Queue = c.String("queue")
	t.ID = c.String("id")
	t.Priority = c.Int("priority")
	t.Protocol = c.Int("protocol")
	t.Compression = c.String("compression")
	t.Countdown = secondsFlag(c.Float64("countdown"))
	if s := c.String("eta"); s != "" {
		if t.ETA, err = celery.ParseTime(s, nil); err != nil {
			return err
		}
	}
	if e := c.Float64("expires"); e != 0 {
		t.Expires = time.Now().Add(secondsFlag(e))
	}

	bp := brokerOpts.NewPool(rdb.PoolOptions{})
	defer bp.Close()
	rp := backendOpts.NewPool(rdb.PoolOptions{})
	defer rp.Close()
	client := producer.New(broker.New(bp, broker.Options{KeyPrefix: c.String("key-prefix")}), backend.New(rp, backend.Options{}))
	ctx := c.Context
	if d := c.Duration("timeout"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if !c.Bool("wait") {
		ids, err := client.Send(ctx, t)
		if err != nil {
			return err
		}
		fmt.Println(ids[0])
		return nil
	}
	meta, err := client.Call(ctx, t)
	if err != nil {
		return err
	}
	out, _ := json.Marshal(map[string]any{"task_id": meta.TaskID, "status": meta.Status, "result": meta.Result})
	fmt.Println(string(out))
	if rerr := producer.ResultError(meta); rerr != nil {
		fmt.Fprintln(os.Stderr, rerr)
		return &exitError{code: 2, err: fmt.Errorf("task %s: %s", meta.TaskID, meta.Status)}
	}
	return nil
}
