package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/control"
	"github.com/qagen/qagen/ratelimit"
	"github.com/qagen/qagen/rdb"
)

// exUnavailable is EX_UNAVAILABLE, the exit status of `celery inspect`,
// `control` and `status` when no worker replied.
const exUnavailable = 69

// errNoReplies is Celery's message, verbatim.
var errNoReplies = errors.New("Error: No nodes replied within time constraint")

// panelArg is one positional argument of a remote-control command, as in
// the args of Celery's Panel.meta.
type panelArg struct {
	name string
	typ  string // "str", "int", "float" or "bool" (strtobool)
}

// panelCommand is how the command line builds a command's arguments
// (celery/bin/control.py _compile_arguments).
type panelCommand struct {
	args      []panelArg
	variadic  string // takes the remaining positionals as a list
	required  int    // positionals that must be given
	signature string
	cast      bool // no reply is sent (heartbeat, shutdown)
}

// inspectCommands are the read-only commands of `celery inspect`.
var inspectCommands = map[string]panelCommand{
	"ping":          {},
	"stats":         {},
	"active":        {},
	"reserved":      {},
	"scheduled":     {},
	"registered":    {variadic: "taskinfoitems", signature: "[attr1 [attr2 [... [attrN]]]]"},
	"active_queues": {},
	"revoked":       {},
	"conf":          {args: []panelArg{{"with_defaults", "bool"}}, signature: "[include_defaults=False]"},
	"report":        {},
	"clock":         {},
	"query_task":    {variadic: "ids", required: 1, signature: "id1 [id2 [... [idN]]]"},
}

// controlCommands are the commands of `celery control`.
var controlCommands = map[string]panelCommand{
	"revoke":          {variadic: "task_id", required: 1, signature: "id1 [id2 [... [idN]]] [--terminate [--signal SIGTERM]]"},
	"terminate":       {args: []panelArg{{"signal", "str"}}, variadic: "task_id", required: 2, signature: "<signal> id1 [id2 [... [idN]]]"},
	"rate_limit":      {args: []panelArg{{"task_name", "str"}, {"rate_limit", "str"}}, required: 2, signature: "<task_name> <rate_limit (e.g., 5/s | 5/m | 5/h)>"},
	"time_limit":      {args: []panelArg{{"task_name", "str"}, {"soft", "float"}, {"hard", "float"}}, required: 2, signature: "<task_name> <soft_secs> [hard_secs]"},
	"add_consumer":    {args: []panelArg{{"queue", "str"}, {"exchange", "str"}, {"exchange_type", "str"}, {"routing_key", "str"}}, required: 1, signature: "<queue> [exchange [type [routing_key]]]"},
	"cancel_consumer": {args: []panelArg{{"queue", "str"}}, required: 1, signature: "<queue>"},
	"pool_grow":       {args: []panelArg{{"n", "int"}}, signature: "[N=1]"},
	"pool_shrink":     {args: []panelArg{{"n", "int"}}, signature: "[N=1]"},
	"autoscale":       {args: []panelArg{{"max", "int"}, {"min", "int"}}, signature: "[max [min]]"},
	"enable_events":   {},
	"disable_events":  {},
	"heartbeat":       {cast: true},
	"shutdown":        {cast: true},
}

func commandNames(m map[string]panelCommand) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// compile turns positionals into the command's arguments object.
func (p panelCommand) compile(method string, positional []string) (map[string]any, error) {
	if len(positional) < p.required || (p.variadic == "" && len(positional) > len(p.args)) {
		sig := p.signature
		if sig == "" {
			sig = "no arguments"
		}
		return nil, fmt.Errorf("command %q takes arguments: %s", method, sig)
	}
	out := map[string]any{}
	i := 0
	for ; i < len(positional) && i < len(p.args); i++ {
		a, s := p.args[i], positional[i]
		switch a.typ {
		case "int":
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %s must be an integer, got %q", method, a.name, s)
			}
			out[a.name] = n
		case "float":
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %s must be a number of seconds, got %q", method, a.name, s)
			}
			out[a.name] = f
		case "bool":
			b, err := strtobool(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", method, a.name, err)
			}
			out[a.name] = b
		default:
			out[a.name] = s
		}
	}
	if p.variadic != "" {
		out[p.variadic] = append([]string{}, positional[i:]...)
	}
	return out, nil
}

// strtobool is Celery's: the words it accepts for true and false.
func strtobool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "y", "on", "1", "t":
		return true, nil
	case "false", "no", "n", "off", "0", "f":
		return false, nil
	}
	return false, fmt.Errorf("cannot coerce %q to a boolean", s)
}

// remoteFlags are the options of inspect, control and status.
func remoteFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		brokerFlag(config.DefaultWorker()),
		keyPrefixFlag(),
		&cli.StringFlag{Name: "destination", Aliases: []string{"d"}, Usage: "comma-separated nodenames (default: every worker)"},
		&cli.Float64Flag{Name: "timeout", Aliases: []string{"t"}, Usage: "seconds to wait for the next reply", Value: 1.0},
		&cli.BoolFlag{Name: "json", Aliases: []string{"j"}, Usage: "print the replies as JSON"},
		&cli.StringFlag{Name: "pattern", Usage: "address the nodenames matching this pattern (when no --destination)"},
		&cli.StringFlag{Name: "matcher", Usage: "how --pattern matches: glob or pcre", Value: "glob"},
	}, extra...)
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "ask the workers (Go and Python) about their state, like `celery inspect`",
		ArgsUsage: "COMMAND [ARG...]  (" + commandNames(inspectCommands) + ")",
		Flags: remoteFlags(
			&cli.StringFlag{Name: "args", Aliases: []string{"a"}, Usage: "more command arguments, as a JSON object"},
		),
		Action: runInspect,
	}
}

func controlCommand() *cli.Command {
	return &cli.Command{
		Name:      "control",
		Usage:     "send a remote-control command to the workers, like `celery control`",
		ArgsUsage: "COMMAND [ARG...]  (" + commandNames(controlCommands) + ")",
		Flags: remoteFlags(
			&cli.StringFlag{Name: "args", Aliases: []string{"a"}, Usage: "more command arguments, as a JSON object"},
			&cli.BoolFlag{Name: "terminate", Usage: "revoke: also stop the tasks if they are running"},
			&cli.StringFlag{Name: "signal", Usage: "revoke --terminate: the signal to send", Value: "SIGTERM"},
		),
		Action: runControl,
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "list the workers online (Go and Python), like `celery status`",
		Flags:  remoteFlags(),
		Action: runStatus,
	}
}

// remote is one command-line broadcast.
type remote struct {
	b      *broker.Broker
	client *control.Client
	opts   control.Options
	json   bool
	out    io.Writer
}

func openRemote(c *cli.Context) (*remote, error) {
	b, _, err := dialBroker(c, rdb.PoolOptions{MaxIdle: 2})
	if err != nil {
		return nil, err
	}
	timeout := secondsFlag(c.Float64("timeout"))
	if timeout <= 0 {
		b.Pool().Close()
		return nil, fmt.Errorf("--timeout must be positive, got %g", c.Float64("timeout"))
	}
	return &remote{
		b:      b,
		client: control.New(b),
		opts: control.Options{
			Destination: splitList(c.String("destination")),
			Pattern:     c.String("pattern"),
			Matcher:     c.String("matcher"),
			Timeout:     timeout,
		},
		json: c.Bool("json"),
		out:  writerOf(c),
	}, nil
}

func (r *remote) close() { r.b.Pool().Close() }

// extraArgs merges --args (a JSON object) over the compiled arguments.
func extraArgs(c *cli.Context, args map[string]any) error {
	s := c.String("args")
	if s == "" {
		return nil
	}
	var extra map[string]any
	if err := json.Unmarshal([]byte(s), &extra); err != nil || extra == nil {
		return fmt.Errorf("--args must be a JSON object")
	}
	for k, v := range extra {
		args[k] = v
	}
	return nil
}

// call broadcasts with a reply wanted, printing each reply as it arrives
// unless the output is JSON. Interrupts end the wait but still remove the
// reply queue.
func (r *remote) call(c *cli.Context, method string, args map[string]any, showBody bool) (map[string]json.RawMessage, []map[string]json.RawMessage, error) {
	ctx, stop := signal.NotifyContext(contextOf(c), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var ordered []map[string]json.RawMessage
	opts := r.opts
	opts.OnReply = func(node string, result json.RawMessage) {
		ordered = append(ordered, map[string]json.RawMessage{node: result})
		if !r.json {
			sayReply(r.out, node, result, showBody)
		}
	}
	replies, err := r.client.Call(ctx, method, args, opts)
	return replies, ordered, err
}

func contextOf(c *cli.Context) context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}

// parseCommand reads the command of table named by the first argument
// and compiles the rest into its arguments.
func parseCommand(c *cli.Context, kind string, table map[string]panelCommand) (string, panelCommand, map[string]any, error) {
	if c.NArg() == 0 {
		return "", panelCommand{}, nil, fmt.Errorf("%s needs a command: %s", kind, commandNames(table))
	}
	method := c.Args().First()
	p, ok := table[method]
	if !ok {
		return "", panelCommand{}, nil, fmt.Errorf("unknown %s command %q (one of %s)", kind, method, commandNames(table))
	}
	args, err := p.compile(method, c.Args().Tail())
	return method, p, args, err
}

func runInspect(c *cli.Context) error {
	method, _, args, err := parseCommand(c, "inspect", inspectCommands)
	if err != nil {
		return err
	}
	if err := extraArgs(c, args); err != nil {
		return err
	}
	r, err := openRemote(c)
	if err != nil {
		return err
	}
	defer r.close()
	replies, _, err := r.call(c, method, args, true)
	return r.summarize(replies, err)
}

func runStatus(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("status takes no arguments, got %q", c.Args().Slice())
	}
	r, err := openRemote(c)
	if err != nil {
		return err
	}
	defer r.close()
	replies, _, err := r.call(c, "ping", map[string]any{}, false)
	if err := r.summarize(replies, err); err != nil {
		return err
	}
	if !r.json {
		fleetLimits(contextOf(c), r.out, limitStoreOf(r.b))
	}
	return nil
}

// fleetLimits adds the fleet-wide LLM limits and pauses to `qagen status`.
func fleetLimits(ctx context.Context, out io.Writer, store *ratelimit.RedisStore) {
	fleet, err := store.Limits(ctx)
	if err != nil {
		return
	}
	if len(fleet) == 0 {
		fmt.Fprintln(out, "LLM rate limits: workers' own settings and the defaults (`qagen ratelimit show`)")
	} else {
		fmt.Fprintln(out, "LLM rate limits (fleet-wide):")
		for _, k := range fleet.Keys() {
			fmt.Fprintf(out, "  %-36s %s\n", k, fleet[k])
		}
	}
	active, err := store.ActiveKeys(ctx)
	if err != nil || len(active) == 0 {
		return
	}
	_, _ = store.SyncClock(ctx) // pauses shown on Redis's clock; a failure shows up in the next call
	now := time.Now()
	for _, k := range active {
		if note := stateNote(ctx, store, k, now); note != "" {
			fmt.Fprintf(out, "  %-36s %s\n", k, note)
		}
	}
}

// summarize ends inspect and status: exit 69 without replies, else the
// JSON or the node count.
func (r *remote) summarize(replies map[string]json.RawMessage, err error) error {
	if err != nil {
		return err
	}
	if len(replies) == 0 {
		return &exitError{code: exUnavailable, err: errNoReplies}
	}
	if r.json {
		return printJSON(r.out, replies)
	}
	fmt.Fprintf(r.out, "\n%s online.\n", nodes(len(replies)))
	return nil
}

func runControl(c *cli.Context) error {
	method, p, args, err := parseCommand(c, "control", controlCommands)
	if err != nil {
		return err
	}
	if method == "revoke" {
		if c.Bool("terminate") {
			args["terminate"] = true
			args["signal"] = c.String("signal")
		}
	} else if c.IsSet("terminate") || c.IsSet("signal") {
		return fmt.Errorf("--terminate and --signal only apply to revoke (see also: control terminate SIGNAL ID...)")
	}
	if err := extraArgs(c, args); err != nil {
		return err
	}
	r, err := openRemote(c)
	if err != nil {
		return err
	}
	defer r.close()
	if p.cast {
		ctx, stop := signal.NotifyContext(contextOf(c), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if _, err := r.client.Broadcast(ctx, method, args, r.opts); err != nil {
			return err
		}
		if r.json {
			fmt.Fprintln(r.out, "[]")
		} else {
			fmt.Fprintf(r.out, "-> %s sent to %s (workers send no reply)\n", method, r.addressed())
		}
		return nil
	}
	replies, ordered, err := r.call(c, method, args, true)
	if err != nil {
		return err
	}
	if len(replies) == 0 {
		return &exitError{code: exUnavailable, err: errNoReplies}
	}
	if r.json {
		// `celery control --json` prints the list of replies.
		return printJSON(r.out, ordered)
	}
	return nil
}

func (r *remote) addressed() string {
	switch {
	case len(r.opts.Destination) > 0:
		return strings.Join(r.opts.Destination, ", ")
	case r.opts.Pattern != "":
		return fmt.Sprintf("the workers matching %q", r.opts.Pattern)
	}
	return "every worker"
}

func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// sayReply prints one reply as Celery's command line does (without
// colours): "->  node: OK" and, with showBody, the result indented.
func sayReply(w io.Writer, node string, result json.RawMessage, showBody bool) {
	status, body := pretty(result)
	fmt.Fprintf(w, "->  %s: %s\n", node, status)
	if showBody && body != "" {
		fmt.Fprintln(w, indent(body, 4))
	}
}

// pretty is celery.bin.base.CLIContext.pretty: a status and a body for a
// reply value. List items keep their keys in the order the worker sent.
func pretty(raw json.RawMessage) (status, body string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "OK", "None"
	}
	switch raw[0] {
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			break
		}
		if len(items) == 0 {
			return "OK", "- empty -"
		}
		lines := make([]string, len(items))
		for i, item := range items {
			var s string
			if json.Unmarshal(item, &s) == nil {
				lines[i] = "* " + s
				continue
			}
			var b bytes.Buffer
			if json.Compact(&b, item) != nil {
				b.Reset()
				b.Write(item)
			}
			lines[i] = "* " + b.String()
		}
		return "OK", strings.Join(lines, "\n")
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			break
		}
		if ok, has := m["ok"]; has {
			_, b := pretty(ok)
			return "OK", indent(b, 4)
		}
		if e, has := m["error"]; has {
			_, b := pretty(e)
			return "ERROR", indent(b, 4)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil {
			return "OK", indentedJSON(v) // json.dumps(sort_keys=True, indent=4)
		}
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return "OK", s
		}
	}
	switch string(raw) {
	case "null":
		return "OK", "None"
	case "true":
		return "OK", "True"
	case "false":
		return "OK", "False"
	}
	return "OK", string(raw)
}

// indentedJSON is json.dumps(v, sort_keys=True, indent=4).
func indentedJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	_ = enc.Encode(v)
	return strings.TrimRight(b.String(), "\n")
}

// indent is celery.utils.text.indent.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}
