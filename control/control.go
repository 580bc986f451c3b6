// Package control is the client side of Celery's remote control (the
// pidbox): it broadcasts commands to Go and Python workers on the
// celery.pidbox fanout channel and collects their replies from a reply
// queue, as kombu's Mailbox._broadcast/_collect do for `celery inspect`,
// `celery control` and `celery status`.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
)

// DefaultTimeout is how long a broadcast waits for the next reply
// (Celery's inspect and control default, 1 s).
const DefaultTimeout = time.Second

// Options say whom a broadcast addresses and how replies are collected.
type Options struct {
	// Destination lists the nodenames addressed; empty means every worker.
	Destination []string
	// Pattern addresses the workers whose nodename matches it, when
	// Destination is empty. Matcher is "glob" (the default when a pattern is
	// given) or "pcre".
	Pattern, Matcher string
	// Timeout is how long to wait for the next reply: collection ends when
	// none arrives for this long (default DefaultTimeout).
	Timeout time.Duration
	// Limit ends collection after this many replies (default
	// len(Destination) when Destination is set, else no limit).
	Limit int
	// Reply asks the workers to reply. Without it the command is a "cast":
	// it is published and Broadcast returns nil at once.
	Reply bool
	// OnReply, if set, is called for every reply kept, as it arrives (the
	// callback of Celery's inspect and control).
	OnReply func(node string, result json.RawMessage)
}

// Client sends remote-control commands through a broker. It is safe for
// concurrent use; every call collects on a reply queue of its own.
type Client struct {
	b     *broker.Broker
	clock atomic.Int64 // Lamport clock, as kombu's Mailbox keeps one
	newID func() string
}

// New returns a client on b. The broker's DB and KeyPrefix must be those of
// the workers (kombu's global_keyprefix), or they will not hear it.
func New(b *broker.Broker) *Client {
	return &Client{b: b, newID: uuid.NewString}
}

// Broadcast sends method with args (a JSON object: a map, a struct, a
// json.RawMessage; nil means {}) to the workers opts address. With
// opts.Reply it returns {nodename: result}, merged from every reply whose
// ticket is this call's (or that has none); a worker that replied twice
// keeps its last result, as in Celery. Without opts.Reply it returns nil.
//
// The order of Redis commands is kombu's: SADD the reply-queue binding,
// PUBLISH the request, BRPOP the reply lists until no reply came for
// opts.Timeout or opts.Limit replies came, then SREM the binding and DEL the
// lists, so later replies are dropped by the workers. On an error, the
// replies collected so far are returned with it.
func (c *Client) Broadcast(ctx context.Context, method string, args any, opts Options) (map[string]json.RawMessage, error) {
	if method == "" {
		return nil, errors.New("control: no command")
	}
	arguments, err := encodeArgs(args)
	if err != nil {
		return nil, fmt.Errorf("control: %s arguments: %w", method, err)
	}
	req := &celery.ControlRequest{Method: method, Arguments: arguments}
	if len(opts.Destination) > 0 {
		// An empty list would mean "everyone" to Python workers but "no
		// one" to a strict reader; null is unambiguous.
		req.Destination = opts.Destination
	} else if opts.Pattern != "" {
		pattern, matcher := opts.Pattern, opts.Matcher
		if matcher == "" {
			matcher = "glob"
		}
		if matcher != "glob" && matcher != "pcre" {
			return nil, fmt.Errorf("control: unknown matcher %q (glob or pcre)", matcher)
		}
		req.Pattern, req.Matcher = &pattern, &matcher
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	limit := opts.Limit
	if limit <= 0 && len(req.Destination) > 0 {
		limit = len(req.Destination)
	}

	if !opts.Reply {
		return nil, c.publish(ctx, req, timeout)
	}

	oid := c.newID()
	req.Ticket = c.newID()
	req.ReplyTo = &celery.ReplyTo{Exchange: celery.ReplyExchange, RoutingKey: oid}
	queue := celery.ReplyQueue(oid)
	// The binding must exist before the request goes out: a worker routes
	// its reply through it and drops the reply when it finds none.
	if err := c.b.Bind(ctx, celery.ReplyExchange, oid, queue); err != nil {
		return nil, fmt.Errorf("control: declare the reply queue: %w", err)
	}
	replies, err := c.collectAfter(ctx, req, queue, timeout, limit, opts.OnReply)
	// Clean up even when ctx is done, but not forever.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if uerr := c.b.Unbind(cctx, celery.ReplyExchange, oid, queue); uerr != nil && err == nil {
		err = fmt.Errorf("control: remove the reply queue: %w", uerr)
	}
	return replies, err
}

func (c *Client) publish(ctx context.Context, req *celery.ControlRequest, timeout time.Duration) error {
	env, err := celery.EncodeControlRequest(req, c.clock.Add(1), time.Now().Add(timeout))
	if err != nil {
		return fmt.Errorf("control: encode %s: %w", req.Method, err)
	}
	if err := c.b.PublishFanout(ctx, broker.FanoutMessage{Exchange: celery.PidboxExchange, Body: env}); err != nil {
		return fmt.Errorf("control: publish %s: %w", req.Method, err)
	}
	return nil
}

// collectAfter publishes req and collects the replies to it.
func (c *Client) collectAfter(ctx context.Context, req *celery.ControlRequest, queue string, timeout time.Duration, limit int, onReply func(string, json.RawMessage)) (map[string]json.RawMessage, error) {
	if err := c.publish(ctx, req, timeout); err != nil {
		return nil, err
	}
	replies := map[string]json.RawMessage{}
	kept := 0
	deadline := time.Now().Add(timeout)
	for limit <= 0 || kept < limit {
		if err := ctx.Err(); err != nil {
			return replies, err
		}
		wait := time.Until(deadline)
		if wait < time.Millisecond {
			break
		}
		// Wait at most a second at a time: BRPOP does not watch ctx, which
		// is checked in between.
		raw, err := c.b.Pop(ctx, queue, min(wait, time.Second))
		if err != nil {
			return replies, fmt.Errorf("control: collect %s replies: %w", req.Method, err)
		}
		if raw == nil {
			continue
		}
		r, err := celery.DecodeControlReply(raw)
		if err != nil {
			continue // kombu would log and drop an undecodable reply
		}
		c.adjust(r.Clock)
		if r.Ticket != "" && r.Ticket != req.Ticket {
			continue // a reply to some other request
		}
		kept++
		nodes := make([]string, 0, len(r.Replies))
		for node := range r.Replies {
			nodes = append(nodes, node)
		}
		sort.Strings(nodes)
		for _, node := range nodes {
			replies[node] = r.Replies[node]
			if onReply != nil {
				onReply(node, r.Replies[node])
			}
		}
		// Each reply restarts the wait, as in kombu's _collect.
		deadline = time.Now().Add(timeout)
	}
	return replies, nil
}

// adjust moves the Lamport clock past a value seen in a reply.
func (c *Client) adjust(other int64) {
	for {
		cur := c.clock.Load()
		next := max(cur, other) + 1
		if c.clock.CompareAndSwap(cur, next) {
			return
		}
	}
}

// Clock is the client's Lamport clock value.
func (c *Client) Clock() int64 { return c.clock.Load() }

// encodeArgs turns the arguments into a JSON object.
func encodeArgs(args any) (json.RawMessage, error) {
	var raw []byte
	switch a := args.(type) {
	case nil:
		return json.RawMessage("{}"), nil
	case json.RawMessage:
		raw = a
	case []byte:
		raw = a
	default:
		var err error
		if raw, err = json.Marshal(args); err != nil {
			return nil, err
		}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	if raw[0] != '{' || !json.Valid(raw) {
		return nil, errors.New("not a JSON object")
	}
	return json.RawMessage(raw), nil
}

// Call is Broadcast with a reply wanted (Celery's inspect._request and
// broadcast(reply=True)).
func (c *Client) Call(ctx context.Context, method string, args any, opts Options) (map[string]json.RawMessage, error) {
	opts.Reply = true
	return c.Broadcast(ctx, method, args, opts)
}

// Ping asks the workers to answer {"ok": "pong"}.
func (c *Client) Ping(ctx context.Context, opts Options) (map[string]json.RawMessage, error) {
	return c.Call(ctx, "ping", nil, opts)
}

// Stats asks for worker statistics (pool, broker, totals, rusage, ...).
func (c *Client) Stats(ctx context.Context, opts Options) (map[string]json.RawMessage, error) {
	return c.Call(ctx, "stats", nil, opts)
}

// Active asks for the tasks being run; each result is a list of RequestInfo.
func (c *Client) Active(ctx context.Context, opts Options) (map[string]json.RawMessage, error) {
	return c.Call(ctx, "active", nil, opts)
}

// Registered asks for the task names each worker knows; each result is a
// list of strings ("name [rate_limit=...]" when the task has options).
func (c *Client) Registered(ctx context.Context, opts Options) (map[string]json.RawMessage, error) {
	return c.Call(ctx, "registered", map[string]any{"taskinfoitems": []string{}}, opts)
}

// ActiveQueues asks for the queues each worker consumes (kombu
// Queue.as_dict); see Queue.
func (c *Client) ActiveQueues(ctx context.Context, opts Options) (map[string]json.RawMessage, error) {
	return c.Call(ctx, "active_queues", nil, opts)
}

// Revoke revokes task ids on the workers; with terminate, running ones are
// also stopped with signal (default SIGTERM). Like Celery's
// Control.revoke it is a cast unless opts.Reply is set.
func (c *Client) Revoke(ctx context.Context, ids []string, terminate bool, signal string, opts Options) (map[string]json.RawMessage, error) {
	if len(ids) == 0 {
		return nil, errors.New("control: revoke needs at least one task id")
	}
	if signal == "" {
		signal = "SIGTERM"
	}
	return c.Broadcast(ctx, "revoke", map[string]any{"task_id": ids, "terminate": terminate, "signal": signal}, opts)
}

// RequestInfo is one entry of the active and reserved replies (Celery's
// Request.info()).
type RequestInfo struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Args         json.RawMessage `json:"args"`
	Kwargs       json.RawMessage `json:"kwargs"`
	Hostname     string          `json:"hostname"`
	TimeStart    *float64        `json:"time_start"`
	Acknowledged bool            `json:"acknowledged"`
	DeliveryInfo struct {
		Exchange    string `json:"exchange"`
		RoutingKey  string `json:"routing_key"`
		Priority    *int   `json:"priority"`
		Redelivered *bool  `json:"redelivered"`
	} `json:"delivery_info"`
	WorkerPID *int `json:"worker_pid"`
}

// Queue is one entry of the active_queues reply (the fields a client
// usually needs of kombu's Queue.as_dict).
type Queue struct {
	Name       string `json:"name"`
	RoutingKey string `json:"routing_key"`
	Exchange   struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"exchange"`
}

// Decode decodes every node's result into T. Nodes whose result does not
// fit (typically {"error": "..."}) are left out of ok and reported in
// failed with the result as text.
func Decode[T any](replies map[string]json.RawMessage) (ok map[string]T, failed map[string]string) {
	ok, failed = map[string]T{}, map[string]string{}
	for node, raw := range replies {
		var v T
		if err := celery.Unmarshal(raw, &v); err != nil {
			failed[node] = string(raw)
			continue
		}
		ok[node] = v
	}
	return ok, failed
}

// SumMaxConcurrency adds up pool.max-concurrency over stats replies, as
// the Python producer's pre-flight worker check does. A node whose stats
// carry no usable max-concurrency counts as one slot (that check's fallback
// is the node count). perNode holds each node's contribution.
func SumMaxConcurrency(stats map[string]json.RawMessage) (total int, perNode map[string]int) {
	perNode = make(map[string]int, len(stats))
	for node, raw := range stats {
		var s struct {
			Pool struct {
				MaxConcurrency *float64 `json:"max-concurrency"`
			} `json:"pool"`
		}
		n := 1
		if celery.Unmarshal(raw, &s) == nil && s.Pool.MaxConcurrency != nil && *s.Pool.MaxConcurrency >= 0 {
			n = int(*s.Pool.MaxConcurrency)
		}
		perNode[node] = n
		total += n
	}
	return total, perNode
}

// MaxConcurrency broadcasts stats and sums pool.max-concurrency over the
// replies (see SumMaxConcurrency): how many tasks the workers online can
// run at once. No reply gives 0 and no error.
func (c *Client) MaxConcurrency(ctx context.Context, opts Options) (total int, perNode map[string]int, err error) {
	stats, err := c.Stats(ctx, opts)
	if err != nil {
		return 0, nil, err
	}
	total, perNode = SumMaxConcurrency(stats)
	return total, perNode, nil
}
