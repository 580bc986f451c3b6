package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"

	"github.com/qagen/qagen/celery"
)

// restoreScript moves unacked entries back to queues, each only if its
// unacked value is still the one the caller read (the effect of kombu's
// WATCH transaction). KEYS = unacked, unacked_index. ARGV holds groups of
// tag, expected value, push command, target count, targets..., payload.
var restoreScript = redis.NewScript(2, `
local i, restored = 1, 0
while i <= #ARGV do
  local tag, expected, cmd, nt = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local payload = ARGV[i + 4 + nt]
  if redis.call('HGET', KEYS[1], tag) == expected then
    redis.call('ZREM', KEYS[2], tag)
    redis.call('HDEL', KEYS[1], tag)
    for j = 1, nt do redis.call(cmd, ARGV[i + 3 + j], payload) end
    restored = restored + 1
  end
  i = i + 5 + nt
end
return restored
`)

// dropOrphansScript removes index entries that have no unacked value.
var dropOrphansScript = redis.NewScript(2, `
for _, tag in ipairs(ARGV) do
  if redis.call('HEXISTS', KEYS[2], tag) == 0 then redis.call('ZREM', KEYS[1], tag) end
end
return 0`)

// releaseScript deletes a lock only if it still holds our token (redis-py's
// Lock.release).
var releaseScript = redis.NewScript(1, `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Restore puts deliveries this process holds back at the front of their
// queues (RPUSH, delivered next), flagged redelivered, as kombu does when a
// channel closes with unacked messages. It returns how many were restored.
func (b *Broker) Restore(ctx context.Context, tags ...string) (int, error) {
	return b.restoreTags(ctx, tags, "RPUSH")
}

// Requeue is reject(requeue=True): the delivery goes to the back of its
// queue (LPUSH), flagged redelivered.
func (b *Broker) Requeue(ctx context.Context, tags ...string) (int, error) {
	return b.restoreTags(ctx, tags, "LPUSH")
}

func (b *Broker) restoreTags(ctx context.Context, tags []string, push string) (int, error) {
	if len(tags) == 0 {
		return 0, nil
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	args := make([]any, 0, len(tags)+1)
	args = append(args, b.Key(b.opts.UnackedKey))
	for _, t := range tags {
		args = append(args, t)
	}
	values, err := redis.ByteSlices(conn.Do("HMGET", args...))
	if err != nil {
		return 0, fmt.Errorf("broker: read unacked: %w", err)
	}
	scriptArgs := []any{b.Key(b.opts.UnackedKey), b.Key(b.opts.UnackedIndexKey)}
	var dead []Settlement
	for i, v := range values {
		if v == nil {
			continue // acked meanwhile
		}
		payload, targets, err := b.restoreTarget(conn, v)
		if err != nil || len(targets) == 0 {
			reason := "no queue bound for the message's exchange and routing key"
			if err != nil {
				reason = err.Error()
			}
			dead = append(dead, Settlement{Tag: tags[i], Dead: &DeadRecord{
				Reason: "cannot restore", Error: reason, DeadAt: b.now(), Message: string(v)}})
			continue
		}
		scriptArgs = append(scriptArgs, tags[i], v, push, len(targets))
		for _, t := range targets {
			scriptArgs = append(scriptArgs, b.Key(t))
		}
		scriptArgs = append(scriptArgs, payload)
	}
	restored := 0
	if len(scriptArgs) > 2 {
		if restored, err = redis.Int(restoreScript.Do(conn, scriptArgs...)); err != nil {
			return 0, fmt.Errorf("broker: restore: %w", err)
		}
	}
	if len(dead) > 0 {
		if err := b.sendSettle(conn, dead); err != nil {
			return restored, err
		}
	}
	return restored, nil
}

// restoreTarget decodes an unacked value [envelope, exchange, routing_key],
// flags the envelope redelivered (headers.redelivered and
// properties.delivery_info.redelivered, as kombu does) and resolves the lists
// to push it to. Like kombu ≥ 5.4, a message goes back to its priority list.
func (b *Broker) restoreTarget(conn redis.Conn, value []byte) ([]byte, []string, error) {
	var entry []json.RawMessage
	if err := celery.Unmarshal(value, &entry); err != nil || len(entry) != 3 {
		return nil, nil, errors.New("unacked value is not [envelope, exchange, routing_key]")
	}
	var exchange, routingKey string
	if err := json.Unmarshal(entry[1], &exchange); err != nil {
		return nil, nil, errors.New("unacked value has a non-string exchange")
	}
	if err := json.Unmarshal(entry[2], &routingKey); err != nil {
		return nil, nil, errors.New("unacked value has a non-string routing key")
	}
	payload, priority, err := markRedelivered(entry[0])
	if err != nil {
		return nil, nil, err
	}
	queues, err := b.lookup(conn, exchange, routingKey)
	if err != nil {
		return nil, nil, err
	}
	lists := make([]string, len(queues))
	for i, q := range queues {
		lists[i] = b.opts.Priority.List(q, priority)
	}
	return payload, lists, nil
}

func markRedelivered(envelope json.RawMessage) ([]byte, int, error) {
	var env map[string]json.RawMessage
	if err := celery.Unmarshal(envelope, &env); err != nil {
		return nil, 0, fmt.Errorf("unacked envelope is not a JSON object: %v", err)
	}
	var props map[string]json.RawMessage
	if err := celery.Unmarshal(env["properties"], &props); err != nil || props == nil {
		return nil, 0, errors.New("unacked envelope has no properties")
	}
	var priority celery.LenientInt
	if p, ok := props["priority"]; ok {
		_ = priority.UnmarshalJSON(p)
	}
	var headers map[string]json.RawMessage
	if celery.Unmarshal(env["headers"], &headers) == nil && headers != nil {
		headers["redelivered"] = json.RawMessage("true")
		env["headers"], _ = json.Marshal(headers)
	}
	var info map[string]json.RawMessage
	if celery.Unmarshal(props["delivery_info"], &info) == nil && info != nil {
		info["redelivered"] = json.RawMessage("true")
		props["delivery_info"], _ = json.Marshal(info)
		env["properties"], _ = json.Marshal(props)
	}
	out, err := json.Marshal(env)
	return out, int(priority), err
}

// lookup finds the queues a message published to (exchange, routing key)
// reaches: the routing key itself for the anonymous exchange, otherwise the
// exchange's binding set (direct: equal keys; topic: the stored pattern).
func (b *Broker) lookup(conn redis.Conn, exchange, routingKey string) ([]string, error) {
	if exchange == "" {
		if routingKey == "" {
			return nil, errors.New("message has neither an exchange nor a routing key")
		}
		return []string{routingKey}, nil
	}
	members, err := redis.Strings(conn.Do("SMEMBERS", b.Key(celery.BindingKey(exchange))))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range members {
		parts := strings.SplitN(m, b.opts.Priority.Sep, 3)
		if len(parts) != 3 {
			continue
		}
		rk, pattern, queue := parts[0], parts[1], parts[2]
		match := rk == routingKey
		if pattern != "" {
			if re, err := regexp.Compile(pattern); err == nil {
				match = re.MatchString(routingKey)
			}
		}
		if match && !contains(out, queue) {
			out = append(out, queue)
		}
	}
	return out, nil
}

// RestoreVisible is kombu's restore_visible: under the unacked_mutex lock,
// every unacked entry older than the visibility timeout, whoever holds it,
// goes back to the front of its queue. It returns how many were restored;
// a pass is skipped (0, nil) while another consumer holds the lock.
func (b *Broker) RestoreVisible(ctx context.Context) (int, error) {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return 0, err
	}
	token := uuid.NewString()
	mutex := b.Key(b.opts.UnackedMutexKey)
	ok, err := redis.String(conn.Do("SET", mutex, token, "NX", "PX", b.opts.MutexExpire.Milliseconds()))
	if errors.Is(err, redis.ErrNil) || (err == nil && ok != "OK") {
		conn.Close()
		return 0, nil
	}
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("broker: take unacked_mutex: %w", err)
	}
	defer func() {
		_, _ = releaseScript.Do(conn, mutex, token)
		conn.Close()
	}()
	ceil := b.now() - b.opts.VisibilityTimeout.Seconds()
	args := []any{b.Key(b.opts.UnackedIndexKey), formatScore(ceil), 0}
	if b.opts.RestoreLimit > 0 {
		args = append(args, "LIMIT", 0, b.opts.RestoreLimit)
	}
	tags, err := redis.Strings(conn.Do("ZREVRANGEBYSCORE", args...))
	if err != nil {
		return 0, fmt.Errorf("broker: scan unacked_index: %w", err)
	}
	if len(tags) == 0 {
		return 0, nil
	}
	n, err := b.restoreTags(ctx, tags, "RPUSH")
	if err != nil {
		return n, err
	}
	// Index entries without a hash value (a consumer died between the two
	// writes) would be scanned forever; kombu drops them the same way.
	if n < len(tags) {
		args := append([]any{b.Key(b.opts.UnackedIndexKey), b.Key(b.opts.UnackedKey)}, redisArgs(tags)...)
		if _, err := dropOrphansScript.Do(conn, args...); err != nil {
			return n, err
		}
	}
	return n, nil
}

func redisArgs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
