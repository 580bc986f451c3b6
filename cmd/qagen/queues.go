package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/rdb"
)

func queuesCommand() *cli.Command {
	d := config.DefaultWorker()
	return &cli.Command{
		Name:  "queues",
		Usage: "show the queues: messages waiting per priority list, unacked and dead-lettered messages",
		Description: "Without -Q the queues are the ones declared in the broker (the _kombu.binding.* sets,\n" +
			"without the remote-control and event bindings) plus qa_generation. Exits 1 when\n" +
			"the broker cannot be reached.",
		Flags: []cli.Flag{
			brokerFlag(d),
			&cli.StringFlag{Name: "queues", Aliases: []string{"Q"}, Usage: "comma-separated queues (default: every declared queue and qa_generation)"},
			keyPrefixFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: runQueues,
	}
}

func purgeCommand() *cli.Command {
	d := config.DefaultWorker()
	return &cli.Command{
		Name:  "purge",
		Usage: "delete every message waiting in the given queues (like `celery purge`)",
		Description: "Empties every priority list of each queue given with -Q. Messages being worked on\n" +
			"(unacked), other queues, results and the dead-letter list are left alone. Asks for\n" +
			"confirmation when stdin is a terminal; without a terminal it refuses unless -f is given.",
		Flags: []cli.Flag{
			brokerFlag(d),
			&cli.StringFlag{Name: "queues", Aliases: []string{"Q"}, Usage: "comma-separated queues to purge (required)"},
			keyPrefixFlag(),
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
		},
		Action: runPurge,
	}
}

// queueList is one Redis list of a queue (one priority step).
type queueList struct {
	Name   string `json:"name"` // Q, Q:3, Q:6, Q:9
	Step   int    `json:"priority"`
	Length int    `json:"length"`
}

type queueInfo struct {
	Name  string      `json:"name"`
	Total int         `json:"total"`
	Lists []queueList `json:"lists"`
}

type queuesReport struct {
	Broker    string      `json:"broker"`
	KeyPrefix string      `json:"key_prefix,omitempty"`
	Queues    []queueInfo `json:"queues"`
	Unacked   int         `json:"unacked"`
	// OldestUnackedAge is in seconds; null when nothing is unacked.
	OldestUnackedAge *float64 `json:"oldest_unacked_age_seconds"`
	DeadLetters      int      `json:"dead_letters"`
	DeadLetterKey    string   `json:"dead_letter_key"`
}

// openBroker connects to the broker of a command's --broker/--key-prefix
// flags and checks that it answers.
func openBroker(c *cli.Context) (*broker.Broker, rdb.Options, error) {
	b, opts, err := dialBroker(c, rdb.PoolOptions{MaxIdle: 2, ReadTimeout: 10 * time.Second})
	if err != nil {
		return nil, opts, err
	}
	if err := ping(c.Context, b.Pool()); err != nil {
		b.Pool().Close()
		return nil, opts, fmt.Errorf("broker %s: %w", opts, err)
	}
	return b, opts, nil
}

func runQueues(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("queues takes no arguments, got %q", c.Args().Slice())
	}
	b, opts, err := openBroker(c)
	if err != nil {
		return err
	}
	defer b.Pool().Close()
	ctx := c.Context
	names := splitList(c.String("queues"))
	if len(names) == 0 {
		if names, err = discoverQueues(ctx, b); err != nil {
			return err
		}
		names = withDefaultQueue(names)
	}
	rep := queuesReport{Broker: opts.String(), KeyPrefix: c.String("key-prefix"), DeadLetterKey: b.Options().DeadLetterKey}
	for _, q := range names {
		info, err := queueLengths(ctx, b, q)
		if err != nil {
			return err
		}
		rep.Queues = append(rep.Queues, info)
	}
	if rep.Unacked, err = b.UnackedCount(ctx); err != nil {
		return err
	}
	if rep.OldestUnackedAge, err = oldestUnackedAge(ctx, b, time.Now()); err != nil {
		return err
	}
	if rep.DeadLetters, err = llen(ctx, b, b.Options().DeadLetterKey); err != nil {
		return err
	}
	out := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printQueues(out, rep)
	return nil
}

func printQueues(out io.Writer, rep queuesReport) {
	fmt.Fprintf(out, "broker: %s", rep.Broker)
	if rep.KeyPrefix != "" {
		fmt.Fprintf(out, " (key prefix %q)", rep.KeyPrefix)
	}
	fmt.Fprintln(out)
	// One row per queue; the columns are its priority lists, named as in
	// Redis with Q for the queue and ":N" for the SEP N suffix.
	width := len("QUEUE")
	for _, q := range rep.Queues {
		width = max(width, len(q.Name))
	}
	cols := []string{"TOTAL"}
	if len(rep.Queues) > 0 {
		for _, l := range rep.Queues[0].Lists {
			if l.Step == 0 {
				cols = append(cols, "Q")
			} else {
				cols = append(cols, "Q:"+strconv.Itoa(l.Step))
			}
		}
	}
	fmt.Fprintf(out, "%-*s", width, "QUEUE")
	for _, c := range cols {
		fmt.Fprintf(out, " %7s", c)
	}
	fmt.Fprintln(out)
	for _, q := range rep.Queues {
		fmt.Fprintf(out, "%-*s %7d", width, q.Name, q.Total)
		for _, l := range q.Lists {
			fmt.Fprintf(out, " %7d", l.Length)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "unacked: %d", rep.Unacked)
	if rep.OldestUnackedAge != nil {
		fmt.Fprintf(out, " (oldest %s ago)", time.Duration(*rep.OldestUnackedAge*float64(time.Second)).Round(time.Second))
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "dead letters: %d (%s)\n", rep.DeadLetters, rep.DeadLetterKey)
}

// withDefaultQueue adds qa_generation to a sorted list of queues.
func withDefaultQueue(names []string) []string {
	def := config.DefaultWorker().Queues[0]
	for _, n := range names {
		if n == def {
			return names
		}
	}
	names = append(names, def)
	sort.Strings(names)
	return names
}

// Exchanges and queues of remote control and events: not work queues.
func isControlBinding(exchange, queue string) bool {
	for _, ex := range []string{celery.PidboxExchange, celery.ReplyExchange, celery.EventExchange} {
		if exchange == ex || strings.HasSuffix(queue, "."+ex) {
			return true
		}
	}
	return strings.HasSuffix(exchange, ".pidbox") || strings.HasPrefix(queue, celery.EventExchange+".")
}

// discoverQueues reads the queue names of every _kombu.binding.* set (under
// the key prefix), leaving out remote control and events. Sorted.
func discoverQueues(ctx context.Context, b *broker.Broker) ([]string, error) {
	conn, err := b.Pool().GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	base := b.Key(celery.BindingKey(""))
	pattern := globEscape(base) + "*"
	seen := map[string]bool{}
	cursor := "0"
	for {
		reply, err := redis.Values(conn.Do("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))
		if err != nil {
			return nil, fmt.Errorf("scan bindings: %w", err)
		}
		if len(reply) != 2 {
			return nil, fmt.Errorf("scan bindings: unexpected reply %v", reply)
		}
		cursor, _ = redis.String(reply[0], nil)
		keys, _ := redis.Strings(reply[1], nil)
		for _, key := range keys {
			exchange := strings.TrimPrefix(key, base)
			members, err := redis.Strings(conn.Do("SMEMBERS", key))
			if err != nil {
				// Another type under a binding name: not kombu's, skip it.
				var rerr redis.Error
				if errors.As(err, &rerr) {
					continue
				}
				return nil, err
			}
			for _, m := range members {
				parts := strings.Split(m, celery.Sep)
				q := parts[len(parts)-1]
				if q != "" && !isControlBinding(exchange, q) {
					seen[q] = true
				}
			}
		}
		if cursor == "0" {
			break
		}
	}
	out := make([]string, 0, len(seen))
	for q := range seen {
		out = append(out, q)
	}
	sort.Strings(out)
	return out, nil
}

// globEscape quotes the characters SCAN MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// queueLengths reads the length of every priority list of queue in one
// round trip.
func queueLengths(ctx context.Context, b *broker.Broker, queue string) (queueInfo, error) {
	p := b.Options().Priority
	info := queueInfo{Name: queue}
	conn, err := b.Pool().GetContext(ctx)
	if err != nil {
		return info, err
	}
	defer conn.Close()
	lists := p.Lists(queue)
	for _, l := range lists {
		if err := conn.Send("LLEN", b.Key(l)); err != nil {
			return info, err
		}
	}
	if err := conn.Flush(); err != nil {
		return info, err
	}
	for i := range lists {
		n, err := redis.Int(conn.Receive())
		if err != nil {
			return info, fmt.Errorf("queue %s: %w", queue, err)
		}
		step := p.Steps[i]
		name := queue
		if step != 0 {
			name += ":" + strconv.Itoa(step)
		}
		info.Lists = append(info.Lists, queueList{Name: name, Step: step, Length: n})
		info.Total += n
	}
	return info, nil
}

func llen(ctx context.Context, b *broker.Broker, key string) (int, error) {
	conn, err := b.Pool().GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return redis.Int(conn.Do("LLEN", b.Key(key)))
}

// oldestUnackedAge is how long the oldest unacked message has been out,
// from kombu's unacked_index scores (delivery time, Unix seconds); nil when
// nothing is unacked.
func oldestUnackedAge(ctx context.Context, b *broker.Broker, now time.Time) (*float64, error) {
	conn, err := b.Pool().GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	reply, err := redis.Strings(conn.Do("ZRANGE", b.Key(b.Options().UnackedIndexKey), 0, 0, "WITHSCORES"))
	if err != nil || len(reply) < 2 {
		return nil, err
	}
	score, err := strconv.ParseFloat(reply[1], 64)
	if err != nil {
		return nil, fmt.Errorf("unacked_index score %q: %w", reply[1], err)
	}
	age := max(float64(now.UnixMicro())/1e6-score, 0)
	return &age, nil
}

// Test hooks: whether purge may ask on its input, and the answer reader.
var isInteractive = func(r io.Reader) bool { return isTerminal(r) }

func runPurge(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("purge takes no arguments, got %q (queues go in -Q)", c.Args().Slice())
	}
	names := splitList(c.String("queues"))
	if len(names) == 0 {
		return &exitError{code: 2, err: errors.New("purge needs the queues to empty: -Q q1,q2")}
	}
	b, _, err := openBroker(c)
	if err != nil {
		return err
	}
	defer b.Pool().Close()
	ctx := c.Context
	out := c.App.Writer
	if !c.Bool("force") {
		if !isInteractive(c.App.Reader) {
			return &exitError{code: 2, err: fmt.Errorf("refusing to purge %s without confirmation: stdin is not a terminal (use -f)", strings.Join(names, ", "))}
		}
		waiting := 0
		for _, q := range names {
			n, err := b.QueueLength(ctx, q)
			if err != nil {
				return err
			}
			waiting += n
		}
		fmt.Fprintf(out, "About to delete %d waiting %s from %s. Proceed? [y/N] ", waiting, plural(waiting, "message"), strings.Join(names, ", "))
		answer, _ := bufio.NewReader(c.App.Reader).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(out, "Aborted; nothing deleted.")
			return &exitError{code: 1, err: errors.New("purge not confirmed")}
		}
	}
	total := 0
	for _, q := range names {
		n, err := purgeQueue(ctx, b, q)
		if err != nil {
			return err
		}
		total += n
	}
	fmt.Fprintf(out, "Purged %d %s from %d known task %s.\n", total, plural(total, "message"), len(names), plural(len(names), "queue"))
	return nil
}

// purgeQueue empties every priority list of queue atomically and returns
// how many messages were in them.
func purgeQueue(ctx context.Context, b *broker.Broker, queue string) (int, error) {
	conn, err := b.Pool().GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	lists := b.Options().Priority.Lists(queue)
	if err := conn.Send("MULTI"); err != nil {
		return 0, err
	}
	for _, l := range lists {
		conn.Send("LLEN", b.Key(l))
		conn.Send("DEL", b.Key(l))
	}
	reply, err := redis.Values(conn.Do("EXEC"))
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", queue, err)
	}
	n := 0
	for i := 0; i < len(reply); i += 2 {
		k, err := redis.Int(reply[i], nil)
		if err != nil {
			return 0, fmt.Errorf("purge %s: %w", queue, err)
		}
		n += k
	}
	return n, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
