package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/celery"
)

// ChordPart is one header task's entry in celery-taskset-meta-<gid>.j.
type ChordPart struct {
	TaskID string
	State  celery.State
	Result json.RawMessage
}

// GroupKey is the key of a group's saved result; chord bookkeeping uses it
// with the suffixes .j (finished parts), .s (size) and .t (added parts).
func (b *Backend) GroupKey(groupID string) string { return b.prefix + "celery-taskset-meta-" + groupID }

// JoinChord records a finished chord header task the way Celery's Redis
// backend does (ZADD to the .j zset scored by group_index, then compare
// ZCOUNT with .s + .t in the same transaction). When this part completes the
// chord it returns every part in group_index order and deletes the keys; the
// caller then sends the callback. Otherwise it returns nil.
func (b *Backend) JoinChord(ctx context.Context, groupID string, groupIndex *int, part ChordPart) ([]ChordPart, error) {
	member := make([]byte, 0, len(part.Result)+64)
	member = append(member, `[1, `...)
	id, _ := json.Marshal(part.TaskID)
	member = append(member, id...)
	member = append(member, `, "`...)
	member = append(member, part.State...)
	member = append(member, `", `...)
	if len(part.Result) == 0 {
		member = append(member, "null"...)
	} else {
		member = append(member, part.Result...)
	}
	member = append(member, ']')
	score := math.Inf(1)
	if groupIndex != nil {
		score = float64(*groupIndex)
	}
	key := b.GroupKey(groupID)
	j, t, s := key+".j", key+".t", key+".s"
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ttl := b.expires
	if ttl == 0 {
		ttl = int64(DefaultExpires.Seconds())
	}
	conn.Send("MULTI")
	conn.Send("ZADD", j, strconv.FormatFloat(score, 'g', -1, 64), member)
	conn.Send("ZCOUNT", j, "-inf", "+inf")
	conn.Send("GET", t)
	conn.Send("GET", s)
	conn.Send("EXPIRE", j, ttl)
	conn.Send("EXPIRE", t, ttl)
	conn.Send("EXPIRE", s, ttl)
	reply, err := redis.Values(conn.Do("EXEC"))
	if err != nil {
		return nil, fmt.Errorf("backend: chord join %s: %w", groupID, err)
	}
	count, _ := redis.Int(reply[1], nil)
	extra, _ := redis.Int(reply[2], nil)
	size, err := redis.Int(reply[3], nil)
	if err != nil {
		return nil, fmt.Errorf("backend: chord %s has no size (.s) key", groupID)
	}
	if count != size+extra {
		return nil, nil
	}
	raw, err := redis.ByteSlices(conn.Do("ZRANGE", j, 0, -1))
	if err != nil {
		return nil, err
	}
	parts := make([]ChordPart, 0, len(raw))
	for _, r := range raw {
		var entry []json.RawMessage
		if err := celery.Unmarshal(r, &entry); err != nil || len(entry) != 4 {
			return nil, fmt.Errorf("backend: chord %s: malformed entry %s", groupID, r)
		}
		var p ChordPart
		_ = json.Unmarshal(entry[1], &p.TaskID)
		_ = json.Unmarshal(entry[2], &p.State)
		p.Result = entry[3]
		parts = append(parts, p)
	}
	if _, err := conn.Do("DEL", j, t, s); err != nil {
		return nil, err
	}
	return parts, nil
}
