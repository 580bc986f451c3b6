package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/celery"
)

// Channel is the (prefixed) pub/sub channel of a fanout exchange, as kombu
// names it: "/<db>.<exchange>[/<routing key>]".
func (b *Broker) Channel(exchange, routingKey string) string {
	return b.Key(celery.FanoutChannel(b.opts.DB, exchange, routingKey))
}

// FanoutMessage is one message for a fanout exchange.
type FanoutMessage struct {
	Exchange   string
	RoutingKey string
	Body       []byte
}

// PublishFanout PUBLISHes messages to their fanout channels in one round
// trip (remote-control requests, events).
func (b *Broker) PublishFanout(ctx context.Context, msgs ...FanoutMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, m := range msgs {
		if err := conn.Send("PUBLISH", b.Channel(m.Exchange, m.RoutingKey), m.Body); err != nil {
			return err
		}
	}
	if _, err := conn.Do(""); err != nil {
		return fmt.Errorf("broker: publish fanout: %w", err)
	}
	return nil
}

// Listener receives fanout messages.
type Listener struct {
	// Patterns are PSUBSCRIBE patterns (already prefixed; see Channel).
	Patterns []string
	// Ready, if set, is called once the first subscription is confirmed.
	Ready func()
	// Handle is called for every message, on the listening goroutine.
	Handle func(channel string, payload []byte)
	// OnError, if set, is told about a broken connection before it is
	// re-opened.
	OnError func(error)
}

// Listen PSUBSCRIBEs and hands every message to l.Handle until ctx is done.
// A broken connection is re-opened with a backoff; what was published
// meanwhile is lost, as with kombu's fanout consumers.
func (b *Broker) Listen(ctx context.Context, l Listener) {
	delay := 100 * time.Millisecond
	ready := l.Ready
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, l.Patterns, ready, l.Handle)
		if ctx.Err() != nil {
			return
		}
		ready = nil
		if err != nil && l.OnError != nil {
			l.OnError(err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (b *Broker) listenOnce(ctx context.Context, patterns []string, ready func(), handle func(string, []byte)) error {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	psc := redis.PubSubConn{Conn: conn}
	defer psc.Close()
	args := make([]any, len(patterns))
	for i, p := range patterns {
		args[i] = p
	}
	if err := psc.PSubscribe(args...); err != nil {
		return err
	}
	// Cancellation unsubscribes, which wakes the receiver; the deferred
	// Close must not race with that write.
	unsubscribed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(unsubscribed)
		_ = psc.PUnsubscribe()
	})
	defer func() {
		if !stop() {
			<-unsubscribed
		}
	}()
	confirmed := 0
	for {
		switch v := psc.ReceiveWithTimeout(0).(type) {
		case redis.Message:
			handle(b.stripPrefix(v.Channel), v.Data)
		case redis.Subscription:
			if v.Kind == "psubscribe" {
				if confirmed++; confirmed == len(patterns) && ready != nil {
					ready()
				}
			}
			if v.Kind == "punsubscribe" && v.Count == 0 {
				return ctx.Err()
			}
		case error:
			return v
		}
	}
}

// publishDirectScript routes a message through a direct exchange in one
// step: the bindings are read and the message pushed atomically, so a
// client that removes its reply binding and lists cannot get a list
// re-created behind its back. KEYS[1] = the binding set; ARGV = routing
// key, separator, key prefix, message. Returns the number of queues.
var publishDirectScript = redis.NewScript(1, `
local n = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local s1 = string.find(m, ARGV[2], 1, true)
  if s1 then
    local rk = string.sub(m, 1, s1 - 1)
    local s2 = string.find(m, ARGV[2], s1 + #ARGV[2], true)
    if s2 and rk == ARGV[1] then
      redis.call('LPUSH', ARGV[3] .. string.sub(m, s2 + #ARGV[2]), ARGV[4])
      n = n + 1
    end
  end
end
return n
`)

// PublishDirect routes a message through a direct exchange the way kombu
// does: to every queue bound with the routing key in
// _kombu.binding.<exchange> (LPUSH). It returns how many queues received
// it; kombu drops a message that matches no binding, and so does this.
func (b *Broker) PublishDirect(ctx context.Context, exchange, routingKey string, body []byte) (int, error) {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	n, err := redis.Int(publishDirectScript.Do(conn, b.Key(celery.BindingKey(exchange)), routingKey, b.opts.Priority.Sep, b.opts.KeyPrefix, body))
	if err != nil {
		return 0, fmt.Errorf("broker: publish to %s: %w", exchange, err)
	}
	return n, nil
}

// Bind adds a queue binding (SADD _kombu.binding.<exchange>).
func (b *Broker) Bind(ctx context.Context, exchange, routingKey, queue string) error {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Do("SADD", b.Key(celery.BindingKey(exchange)), celery.BindingMember(routingKey, "", queue))
	return err
}

// Unbind removes a binding and deletes the queue's lists, as kombu does
// for an auto-delete queue.
func (b *Broker) Unbind(ctx context.Context, exchange, routingKey, queue string) error {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	args := []any{}
	for _, l := range b.opts.Priority.Lists(queue) {
		args = append(args, b.Key(l))
	}
	conn.Send("SREM", b.Key(celery.BindingKey(exchange)), celery.BindingMember(routingKey, "", queue))
	conn.Send("DEL", args...)
	_, err = conn.Do("")
	return err
}

// Pop waits up to timeout for one message from a queue (all its priority
// lists, lowest step first), returning nil when none came. A timeout of 0
// or less does not wait.
func (b *Broker) Pop(ctx context.Context, queue string, timeout time.Duration) ([]byte, error) {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	lists := b.opts.Priority.Lists(queue)
	if timeout <= 0 {
		for _, l := range lists {
			data, err := redis.Bytes(conn.Do("RPOP", b.Key(l)))
			if errors.Is(err, redis.ErrNil) {
				continue
			}
			return data, err
		}
		return nil, nil
	}
	args := make([]any, 0, len(lists)+1)
	for _, l := range lists {
		args = append(args, b.Key(l))
	}
	// Redis ≥ 6 takes fractional seconds; 0 would mean "forever".
	args = append(args, strconv.FormatFloat(max(timeout.Seconds(), 0.001), 'f', 3, 64))
	reply, err := redis.Values(redis.DoWithTimeout(conn, timeout+5*time.Second, "BRPOP", args...))
	if errors.Is(err, redis.ErrNil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	data, _ := redis.Bytes(reply[1], nil)
	return data, nil
}

// stripPrefix removes the key prefix from a key or channel name.
func (b *Broker) stripPrefix(s string) string { return strings.TrimPrefix(s, b.opts.KeyPrefix) }
