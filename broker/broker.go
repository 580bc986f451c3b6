// Package broker is a kombu-compatible Redis broker: Celery's queue lists
// with priority buckets, binding sets, and the ack emulation of kombu's Redis
// transport (the unacked hash, the unacked_index zset and unacked_mutex), so
// Go and Python workers can consume the same queues.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/clock"
)

// Defaults of kombu's Redis transport, plus qagen's dead-letter list.
const (
	DefaultVisibilityTimeout = time.Hour
	DefaultMutexExpire       = 5 * time.Minute
	DefaultDeadLetterKey     = "qagen.dead"
)

// Options configure the broker. The zero value means kombu's defaults.
type Options struct {
	// DB is the broker's database number; fanout channel names carry it.
	DB       int
	Priority celery.PriorityScheme
	// KeyPrefix is kombu's global_keyprefix: prepended to every key and
	// channel name.
	KeyPrefix string
	// VisibilityTimeout is how old an unacked entry must be before any
	// consumer may restore it to its queue.
	VisibilityTimeout time.Duration
	UnackedKey        string
	UnackedIndexKey   string
	UnackedMutexKey   string
	MutexExpire       time.Duration
	// RestoreLimit caps messages restored per visibility pass (0: no cap).
	RestoreLimit int
	// DeadLetterKey is the list that keeps messages qagen cannot run.
	DeadLetterKey string
	Clock         clock.Clock
}

func (o *Options) setDefaults() {
	if len(o.Priority.Steps) == 0 {
		o.Priority.Steps = celery.DefaultPrioritySteps
	}
	if o.Priority.Sep == "" {
		o.Priority.Sep = celery.Sep
	}
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if o.UnackedKey == "" {
		o.UnackedKey = "unacked"
	}
	if o.UnackedIndexKey == "" {
		o.UnackedIndexKey = "unacked_index"
	}
	if o.UnackedMutexKey == "" {
		o.UnackedMutexKey = "unacked_mutex"
	}
	if o.MutexExpire <= 0 {
		o.MutexExpire = DefaultMutexExpire
	}
	if o.DeadLetterKey == "" {
		o.DeadLetterKey = DefaultDeadLetterKey
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
}

// Broker talks to the Redis database that holds the queues.
type Broker struct {
	pool *redis.Pool
	opts Options

	declaredMu sync.Mutex
	declared   map[string]bool // queues whose binding this process has added
}

// New returns a broker on pool.
func New(pool *redis.Pool, opts Options) *Broker {
	opts.setDefaults()
	return &Broker{pool: pool, opts: opts, declared: map[string]bool{}}
}

// Options returns the effective options.
func (b *Broker) Options() Options { return b.opts }

// Pool returns the connection pool.
func (b *Broker) Pool() *redis.Pool { return b.pool }

// Key applies the global key prefix.
func (b *Broker) Key(name string) string { return b.opts.KeyPrefix + name }

func (b *Broker) now() float64 {
	return float64(b.opts.Clock.Now().UnixMicro()) / 1e6
}

func formatScore(f float64) string { return strconv.FormatFloat(f, 'f', 6, 64) }

// Delivery is a message taken from a queue and entered into unacked.
type Delivery struct {
	Tag   string
	Queue string
	List  string // the Redis list (without the key prefix)
	Raw   []byte // the envelope as it was in the list
	// DeadLettered is set when the envelope could not be read even enough to
	// find its delivery tag; it was moved to the dead-letter list atomically
	// with the pop and is not in unacked.
	DeadLettered bool
}

// DeadRecord is one entry of the dead-letter list.
type DeadRecord struct {
	Reason string  `json:"reason"`
	Error  string  `json:"error,omitempty"`
	Queue  string  `json:"queue,omitempty"`
	TaskID string  `json:"task_id,omitempty"`
	Task   string  `json:"task,omitempty"`
	Worker string  `json:"worker,omitempty"`
	DeadAt float64 `json:"dead_at"`
	// Message is the raw envelope, unchanged.
	Message string `json:"message"`
}

// Declare adds the binding Python workers and producers add for each queue
// (_kombu.binding.<q> member "q SEP SEP q"), so routing by exchange name and
// restores through the binding table find the queue.
func (b *Broker) Declare(ctx context.Context, queues ...string) error {
	var todo []string
	b.declaredMu.Lock()
	for _, q := range queues {
		if !b.declared[q] {
			todo = append(todo, q)
		}
	}
	b.declaredMu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range todo {
		if err := conn.Send("SADD", b.Key(celery.BindingKey(q)), celery.BindingMember(q, "", q)); err != nil {
			return err
		}
	}
	if _, err := conn.Do(""); err != nil {
		return fmt.Errorf("broker: declare queues: %w", err)
	}
	b.declaredMu.Lock()
	for _, q := range todo {
		b.declared[q] = true
	}
	b.declaredMu.Unlock()
	return nil
}

// registerLua enters one popped message into kombu's unacked bookkeeping,
// exactly as kombu's QoS.append does (ZADD unacked_index, HSET unacked
// [envelope, exchange, routing_key]). A message whose delivery tag cannot be
// read would crash a Python worker; it goes to the dead-letter list instead.
const registerLua = `
-- jsonField returns the string value of a key that occurs exactly once in
-- the envelope, after position after (the "properties" key), and needs no
-- unescaping, or nil. Plain finds cost a fraction of decoding the envelope;
-- anything unusual falls back to cjson. Inside a JSON string every quote is
-- escaped, so "key" followed by a colon cannot come from string contents.
-- kombu and Go both write headers before properties, so a header of the same
-- name is never taken for the property.
local function jsonField(m, key, after)
  local q = '"' .. key .. '"'
  local s, e = string.find(m, q, 1, true)
  if not s or s < after or string.find(m, q, e + 1, true) then return nil end
  local _, ve = string.find(m, '^%s*:%s*"', e + 1)
  if not ve then return nil end
  local close = string.find(m, '"', ve + 1, true)
  if not close then return nil end
  local v = string.sub(m, ve + 1, close - 1)
  if string.find(v, '\\', 1, true) then return nil end
  return v
end

local function register(m, queue, now)
  local tag, ex, rk
  local _, pe = string.find(m, '"properties"', 1, true)
  if pe and not string.find(m, '"properties"', pe + 1, true) then
    tag, ex, rk = jsonField(m, 'delivery_tag', pe), jsonField(m, 'exchange', pe), jsonField(m, 'routing_key', pe)
  end
  local ok = true
  if not (tag and ex and rk) then
    local env
    ok, env = pcall(cjson.decode, m)
    tag, ex, rk = nil, nil, nil
    if ok and type(env) == 'table' then
      local p = env['properties']
      if type(p) == 'table' then
        tag = p['delivery_tag']
        local di = p['delivery_info']
        if type(di) == 'table' then ex = di['exchange']; rk = di['routing_key'] end
      end
    end
  end
  if type(tag) ~= 'string' or tag == '' then
    local why = 'envelope is not JSON'
    if ok then why = 'envelope has no properties.delivery_tag' end
    redis.call('LPUSH', KEYS[3], cjson.encode({reason = 'unreadable envelope', error = why,
      queue = queue, dead_at = tonumber(now), message = m}))
    return ''
  end
  if type(ex) ~= 'string' then ex = '' end
  if type(rk) ~= 'string' or (rk == '' and ex == '') then rk = queue end
  redis.call('ZADD', KEYS[2], now, tag)
  redis.call('HSET', KEYS[1], tag, '[' .. m .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']')
  return tag
end
`

// fetchScript pops up to ARGV[1] messages from KEYS[4..] in order and
// registers each one, all in one atomic step. ARGV[2] is now, ARGV[3..] the
// queue name of each list.
var fetchScript = redis.NewScript(-1, registerLua+`
local max, now = tonumber(ARGV[1]), ARGV[2]
local out = {}
for i = 4, #KEYS do
  while #out < max do
    local m = redis.call('RPOP', KEYS[i])
    if not m then break end
    out[#out + 1] = {i - 3, m, register(m, ARGV[i - 1], now)}
  end
  if #out >= max then break end
end
return out
`)

// registerScript registers one message popped by BRPOP: ARGV = message,
// queue, now.
var registerScript = redis.NewScript(3, registerLua+`
return register(ARGV[1], ARGV[2], ARGV[3])
`)

// Fetch takes up to max messages from the queues without blocking, lowest
// priority step first and, within a step, in the given queue order.
func (b *Broker) Fetch(ctx context.Context, queues []string, max int) ([]Delivery, error) {
	if max <= 0 || len(queues) == 0 {
		return nil, nil
	}
	lists := b.opts.Priority.ConsumeOrder(queues)
	args := make([]any, 0, 3+2*len(lists)+2)
	args = append(args, b.Key(b.opts.UnackedKey), b.Key(b.opts.UnackedIndexKey), b.Key(b.opts.DeadLetterKey))
	for _, l := range lists {
		args = append(args, b.Key(l))
	}
	args = append(args, max, formatScore(b.now()))
	listQueue := make([]string, len(lists))
	for i := range lists {
		// ConsumeOrder is step-major, so list i belongs to queue i mod n.
		listQueue[i] = queues[i%len(queues)]
		args = append(args, listQueue[i])
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The script's key count is dynamic: 3 fixed keys plus one per list.
	reply, err := redis.Values(fetchScript.Do(conn, append([]any{3 + len(lists)}, args...)...))
	if err != nil {
		return nil, fmt.Errorf("broker: fetch: %w", err)
	}
	out := make([]Delivery, 0, len(reply))
	for _, r := range reply {
		item, err := redis.Values(r, nil)
		if err != nil || len(item) != 3 {
			return out, fmt.Errorf("broker: fetch: unexpected reply %v", r)
		}
		idx, _ := redis.Int(item[0], nil)
		raw, _ := redis.Bytes(item[1], nil)
		tag, _ := redis.String(item[2], nil)
		if idx < 1 || idx > len(lists) {
			return out, fmt.Errorf("broker: fetch: bad list index %d", idx)
		}
		out = append(out, Delivery{Tag: tag, Queue: listQueue[idx-1], List: lists[idx-1], Raw: raw, DeadLettered: tag == ""})
	}
	return out, nil
}

// FetchBlocking waits up to timeout (whole seconds, at least 1) for one
// message with BRPOP, like kombu's consumer, then registers it in unacked.
// It returns nil without error when the timeout passes.
func (b *Broker) FetchBlocking(ctx context.Context, queues []string, timeout time.Duration) (*Delivery, error) {
	if len(queues) == 0 {
		return nil, errors.New("broker: no queues to consume")
	}
	secs := int(timeout / time.Second)
	if secs < 1 {
		secs = 1
	}
	lists := b.opts.Priority.ConsumeOrder(queues)
	args := make([]any, 0, len(lists)+1)
	for _, l := range lists {
		args = append(args, b.Key(l))
	}
	args = append(args, secs)
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	reply, err := redis.Values(redis.DoWithTimeout(conn, time.Duration(secs+5)*time.Second, "BRPOP", args...))
	if errors.Is(err, redis.ErrNil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker: BRPOP: %w", err)
	}
	if len(reply) != 2 {
		return nil, fmt.Errorf("broker: BRPOP: unexpected reply %v", reply)
	}
	key, _ := redis.String(reply[0], nil)
	raw, _ := redis.Bytes(reply[1], nil)
	list := key[len(b.opts.KeyPrefix):]
	queue := b.opts.Priority.QueueOf(list)
	for i, l := range lists {
		if l == list {
			queue = queues[i%len(queues)]
			break
		}
	}
	d := &Delivery{Queue: queue, List: list, Raw: raw}
	tag, err := redis.String(registerScript.Do(conn,
		b.Key(b.opts.UnackedKey), b.Key(b.opts.UnackedIndexKey), b.Key(b.opts.DeadLetterKey),
		raw, queue, formatScore(b.now())))
	if err != nil {
		// The message is out of the list but not registered: put it back at
		// the front so it is not lost.
		if _, perr := conn.Do("RPUSH", key, raw); perr != nil {
			return nil, fmt.Errorf("broker: register delivery: %v; and could not put it back: %w", err, perr)
		}
		return nil, fmt.Errorf("broker: register delivery: %w", err)
	}
	d.Tag, d.DeadLettered = tag, tag == ""
	return d, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Settlement finishes one delivery: it is acked (removed from unacked) and,
// when Dead is set, its record is pushed to the dead-letter list in the same
// transaction.
type Settlement struct {
	Tag  string
	Dead *DeadRecord
}

// Ack removes deliveries from unacked: kombu's MULTI; ZREM; HDEL; EXEC,
// for many tags at once.
func (b *Broker) Ack(ctx context.Context, tags ...string) error {
	if len(tags) == 0 {
		return nil
	}
	s := make([]Settlement, len(tags))
	for i, t := range tags {
		s[i].Tag = t
	}
	return b.Settle(ctx, s)
}

// Settle acks deliveries and dead-letters the ones that carry a record.
func (b *Broker) Settle(ctx context.Context, settlements []Settlement) error {
	if len(settlements) == 0 {
		return nil
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return b.sendSettle(conn, settlements)
}

func (b *Broker) sendSettle(conn redis.Conn, settlements []Settlement) error {
	zrem := make([]any, 0, len(settlements)+1)
	hdel := make([]any, 0, len(settlements)+1)
	zrem = append(zrem, b.Key(b.opts.UnackedIndexKey))
	hdel = append(hdel, b.Key(b.opts.UnackedKey))
	if err := conn.Send("MULTI"); err != nil {
		return err
	}
	for _, s := range settlements {
		if s.Dead != nil {
			rec, err := json.Marshal(s.Dead)
			if err != nil {
				return err
			}
			if err := conn.Send("LPUSH", b.Key(b.opts.DeadLetterKey), rec); err != nil {
				return err
			}
		}
		if s.Tag != "" {
			zrem = append(zrem, s.Tag)
			hdel = append(hdel, s.Tag)
		}
	}
	if len(zrem) > 1 {
		if err := conn.Send("ZREM", zrem...); err != nil {
			return err
		}
		if err := conn.Send("HDEL", hdel...); err != nil {
			return err
		}
	}
	if _, err := conn.Do("EXEC"); err != nil {
		return fmt.Errorf("broker: ack: %w", err)
	}
	return nil
}

// DeadLetter pushes a record to the dead-letter list.
func (b *Broker) DeadLetter(ctx context.Context, rec DeadRecord) error {
	return b.Settle(ctx, []Settlement{{Dead: &rec}})
}

// Extend refreshes the unacked_index score of deliveries this process still
// holds, so no consumer's visibility-timeout pass restores them while their
// worker is alive. XX keeps acked tags from coming back.
func (b *Broker) Extend(ctx context.Context, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	now := formatScore(b.now())
	args := make([]any, 0, 2+2*len(tags))
	args = append(args, b.Key(b.opts.UnackedIndexKey), "XX")
	for _, t := range tags {
		args = append(args, now, t)
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Do("ZADD", args...); err != nil {
		return fmt.Errorf("broker: extend visibility: %w", err)
	}
	return nil
}

// Message is an encoded envelope to publish to a queue through the
// anonymous exchange, as Celery sends tasks.
type Message struct {
	Queue    string
	Priority int
	Body     []byte
}

// Publish LPUSHes messages to their queues' priority lists in one round trip.
func (b *Broker) Publish(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	queues := make([]string, 0, 1)
	for _, m := range msgs {
		if !contains(queues, m.Queue) {
			queues = append(queues, m.Queue)
		}
	}
	if err := b.Declare(ctx, queues...); err != nil {
		return err
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return b.sendPublish(conn, msgs)
}

func (b *Broker) sendPublish(conn redis.Conn, msgs []Message) error {
	for _, m := range msgs {
		if err := conn.Send("LPUSH", b.Key(b.opts.Priority.List(m.Queue, m.Priority)), m.Body); err != nil {
			return err
		}
	}
	if _, err := conn.Do(""); err != nil {
		return fmt.Errorf("broker: publish: %w", err)
	}
	return nil
}

// QueueLength is the number of messages waiting in a queue (all lists).
func (b *Broker) QueueLength(ctx context.Context, queue string) (int, error) {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	lists := b.opts.Priority.Lists(queue)
	for _, l := range lists {
		if err := conn.Send("LLEN", b.Key(l)); err != nil {
			return 0, err
		}
	}
	if err := conn.Flush(); err != nil {
		return 0, err
	}
	total := 0
	for range lists {
		n, err := redis.Int(conn.Receive())
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// UnackedCount is the number of entries in the unacked hash.
func (b *Broker) UnackedCount(ctx context.Context) (int, error) {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return redis.Int(conn.Do("HLEN", b.Key(b.opts.UnackedKey)))
}

// DeadLetters returns up to n records of the dead-letter list, newest
// first; n <= 0 returns them all.
func (b *Broker) DeadLetters(ctx context.Context, n int) ([]DeadRecord, error) {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := n - 1
	if n <= 0 {
		stop = -1
	}
	raw, err := redis.ByteSlices(conn.Do("LRANGE", b.Key(b.opts.DeadLetterKey), 0, stop))
	if err != nil {
		return nil, err
	}
	out := make([]DeadRecord, 0, len(raw))
	for _, r := range raw {
		var rec DeadRecord
		if err := json.Unmarshal(r, &rec); err != nil {
			rec = DeadRecord{Reason: "unparseable dead-letter record", Message: string(r)}
		}
		out = append(out, rec)
	}
	return out, nil
}
