package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Store holds the fleet's shared state.
type Store interface {
	// Take spends one request and tokens of key's budget, or spends nothing
	// and says how long until it could. A call that could go within
	// reserve is granted now for then (granted, wait > 0): the caller
	// sleeps wait and goes, and later callers queue behind it.
	Take(ctx context.Context, key Key, limit Limit, tokens int, now time.Time, reserve time.Duration) (wait time.Duration, granted bool, err error)
	// Adjust corrects the token budget once a call's real usage is known
	// (delta > 0 charges more, < 0 refunds).
	Adjust(ctx context.Context, key Key, limit Limit, delta int, now time.Time) error
	// Cooldown pauses key until the given time; it never shortens a pause.
	Cooldown(ctx context.Context, key Key, until time.Time) error
	// Limits reads the fleet's configured limits; SetLimit and DeleteLimit
	// change them for every worker at once.
	Limits(ctx context.Context) (Table, error)
	SetLimit(ctx context.Context, key Key, limit Limit) error
	DeleteLimit(ctx context.Context, key Key) error
	// State reports a key's current pause and budget use.
	State(ctx context.Context, key Key, now time.Time) (State, error)
}

// State is a key's current standing.
type State struct {
	// CooldownLeft is how long the fleet still waits after a 429.
	CooldownLeft time.Duration
	// RequestsAhead and TokensAhead are how far the buckets' theoretical
	// arrival times are ahead of now: spent budget not yet refilled.
	RequestsAhead time.Duration
	TokensAhead   time.Duration
}

// RedisStore keeps the state in Redis: a hash per key (request and token
// arrival times, cool-down) and one hash of configured limits.
type RedisStore struct {
	pool   *redis.Pool
	prefix string
	// MaxLine is how far ahead refused callers are given turns (default
	// DefaultMaxLine); beyond it they are spread at random over it.
	MaxLine time.Duration
	// Window is the span that a limit must hold in, whatever the burst:
	// providers count requests and tokens per sliding minute, so the pace
	// is set for no window of this length to see more than the limit
	// (default DefaultWindow). Zero paces at the nominal rate, with the
	// burst on top (plain GCRA).
	Window time.Duration

	// skew is Redis's clock minus this host's, in nanoseconds, measured
	// by SyncClock and added to every time the store is given, so that
	// workers on hosts whose clocks disagree share one timeline.
	skew atomic.Int64
	// localNow reads this host's clock (time.Now; tests pretend skew).
	localNow func() time.Time
}

// DefaultWindow is the providers' minute plus a margin for the spread of
// network delays between a grant and the provider's count, and for clock
// skew between worker hosts.
const DefaultWindow = time.Minute + 250*time.Millisecond

// DefaultMaxLine bounds the waiting line: two minutes of turns.
const DefaultMaxLine = 2 * time.Minute

// DefaultPrefix namespaces the store's keys.
const DefaultPrefix = "qagen:ratelimit:"

// NewRedisStore returns a store on pool; prefix namespaces its keys
// (default DefaultPrefix).
func NewRedisStore(pool *redis.Pool, prefix string) *RedisStore {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &RedisStore{pool: pool, prefix: prefix, Window: DefaultWindow, MaxLine: DefaultMaxLine, localNow: time.Now}
}

func (s *RedisStore) stateKey(k Key) string { return s.prefix + "state:" + k.String() }

// SyncClock measures how far Redis's clock is from this host's (the TIME
// command, halfway through the round trip) and corrects every later time
// by it: budgets and pauses are then kept on Redis's timeline, whatever
// the workers' clocks say. Workers call it at start and every few
// minutes; without it the store trusts the host's clock. It returns the
// skew measured.
func (s *RedisStore) SyncClock(ctx context.Context) (time.Duration, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	best := time.Duration(-1)
	var skew time.Duration
	for range 3 { // keep the measurement with the shortest round trip
		before := s.localNow()
		v, err := redis.Int64s(conn.Do("TIME"))
		after := s.localNow()
		if err != nil {
			return 0, fmt.Errorf("ratelimit: Redis TIME: %w", err)
		}
		if len(v) != 2 {
			return 0, fmt.Errorf("ratelimit: Redis TIME answered %v", v)
		}
		server := time.Unix(v[0], v[1]*1000)
		if rtt := after.Sub(before); best < 0 || rtt < best {
			best, skew = rtt, server.Sub(before.Add(rtt/2))
		}
	}
	s.skew.Store(int64(skew))
	return skew, nil
}

// onRedisClock moves a time of this host's clock onto Redis's.
func (s *RedisStore) onRedisClock(t time.Time) time.Time { return t.Add(time.Duration(s.skew.Load())) }
func (s *RedisStore) limitsKey() string                  { return s.prefix + "limits" }

// takeScript is GCRA on two buckets at once. Times are milliseconds.
// ARGV: now, request interval (0: no request limit), request capacity,
// token interval (ms per token; 0: no token limit), token capacity, tokens,
// reserve, longest waiting line, a random number in [0, 1). Returns {wait,
// granted}: granted when wait <= reserve (and recorded; the call goes
// after wait), else nothing is spent and wait is the caller's turn.
var takeScript = redis.NewScript(1, `
local now = tonumber(ARGV[1])
local cool = tonumber(redis.call('HGET', KEYS[1], 'cool') or '0')
if cool > now then return {math.ceil(cool - now), 0} end
local wait = 0
local ri, rcap = tonumber(ARGV[2]), tonumber(ARGV[3])
local rtat
if ri > 0 then
  local tat = math.max(tonumber(redis.call('HGET', KEYS[1], 'req') or '0'), now)
  rtat = tat + ri
  wait = math.max(wait, rtat - now - rcap)
end
local ti, tcap, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ttat
if ti > 0 and n > 0 then
  local tat = math.max(tonumber(redis.call('HGET', KEYS[1], 'tok') or '0'), now)
  ttat = tat + ti * n
  if ti * n > tcap then
    -- Bigger than the whole bucket: it goes once the bucket is empty.
    wait = math.max(wait, tat - now)
  else
    wait = math.max(wait, ttat - now - tcap)
  end
end
-- Less than a microsecond is float noise, not a wait.
wait = math.max(wait - 0.001, 0)
if wait > tonumber(ARGV[7]) then
  -- Refused: hand out the next place in a waiting line ('line'), one
  -- call's worth of budget apart, so refused callers come back in turn
  -- instead of all at once. Beyond maxq the line is not extended: later
  -- callers get a random time within it.
  local step = math.max(ri, ti * n)
  local maxq = tonumber(ARGV[8])
  local at = math.max(tonumber(redis.call('HGET', KEYS[1], 'line') or '0'), now + wait)
  if step <= 0 or at - now > maxq then
    return {math.ceil(wait + tonumber(ARGV[9]) * math.max(maxq - wait, 0)), 0}
  end
  redis.call('HSET', KEYS[1], 'line', at + step)
  redis.call('PEXPIRE', KEYS[1], 3600000)
  return {math.ceil(at - now), 0}
end
if rtat then redis.call('HSET', KEYS[1], 'req', rtat) end
if ttat then redis.call('HSET', KEYS[1], 'tok', ttat) end
redis.call('PEXPIRE', KEYS[1], 3600000)
return {math.ceil(wait), 1}
`)

// adjustScript moves the token arrival time by delta tokens, never below now.
var adjustScript = redis.NewScript(1, `
local now, shift = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tok') or '0')
tat = math.max(math.max(tat, now) + shift, now)
redis.call('HSET', KEYS[1], 'tok', tat)
redis.call('PEXPIRE', KEYS[1], 3600000)
return 0
`)

// cooldownScript sets the pause end unless a later one is set.
var cooldownScript = redis.NewScript(1, `
local pause_end = tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'cool') or '0')
if pause_end > cur then redis.call('HSET', KEYS[1], 'cool', pause_end) end
redis.call('PEXPIRE', KEYS[1], 3600000)
return 0
`)

func ms(t time.Time) float64 { return float64(t.UnixMicro()) / 1000 }

// intervals turns a limit into GCRA parameters: emission intervals and
// capacities (tolerances) in milliseconds. A capacity always holds at
// least one unit.
//
// With a window W, GCRA with interval T and capacity C grants at most
// (W + C) / T calls in any span W: a burst comes on top of the rate. So
// the interval is stretched to (W + C0) / limit, C0 the burst (at least
// one nominal interval), which keeps every window within the limit at
// the cost of the burst's share of the rate (1 s of 60 s: 1.6%).
func intervals(l Limit, window time.Duration) (ri, rcap, ti, tcap float64) {
	burst := l.BurstSeconds
	if burst <= 0 {
		burst = 1
	}
	pace := func(perMinute int) (interval, capacity float64) {
		interval = 60000 / float64(perMinute)
		capacity = math.Max(burst*1000, interval)
		if window > 0 {
			interval = (float64(window.Milliseconds()) + capacity) / float64(perMinute)
			capacity = math.Max(capacity, interval)
		}
		return interval, capacity
	}
	if l.RPM > 0 {
		ri, rcap = pace(l.RPM)
	}
	if l.TPM > 0 {
		ti, tcap = pace(l.TPM)
	}
	return
}

func f(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }

// Take implements Store.
func (s *RedisStore) Take(ctx context.Context, key Key, limit Limit, tokens int, now time.Time, reserve time.Duration) (time.Duration, bool, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return 0, false, err
	}
	defer conn.Close()
	ri, rcap, ti, tcap := intervals(limit, s.Window)
	r, err := redis.Int64s(takeScript.Do(conn, s.stateKey(key), f(ms(s.onRedisClock(now))), f(ri), f(rcap),
		strconv.FormatFloat(ti, 'g', -1, 64), f(tcap), max(tokens, 0), max(reserve.Milliseconds(), 0),
		s.MaxLine.Milliseconds(), f(rand.Float64())))
	if err == nil && len(r) != 2 {
		err = fmt.Errorf("unexpected reply %v", r)
	}
	if err != nil {
		return 0, false, fmt.Errorf("ratelimit: take %s: %w", key, err)
	}
	return time.Duration(r[0]) * time.Millisecond, r[1] == 1, nil
}

// Adjust implements Store.
func (s *RedisStore) Adjust(ctx context.Context, key Key, limit Limit, delta int, now time.Time) error {
	_, _, ti, _ := intervals(limit, s.Window)
	if ti == 0 || delta == 0 {
		return nil
	}
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = adjustScript.Do(conn, s.stateKey(key), f(ms(s.onRedisClock(now))), f(ti*float64(delta)))
	return err
}

// Cooldown implements Store.
func (s *RedisStore) Cooldown(ctx context.Context, key Key, until time.Time) error {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = cooldownScript.Do(conn, s.stateKey(key), f(ms(s.onRedisClock(until))))
	return err
}

// Limits implements Store.
func (s *RedisStore) Limits(ctx context.Context) (Table, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	m, err := redis.StringMap(conn.Do("HGETALL", s.limitsKey()))
	if err != nil {
		return nil, err
	}
	t := Table{}
	for field, v := range m {
		k, err := ParseKey(field)
		if err != nil {
			continue
		}
		var l Limit
		if json.Unmarshal([]byte(v), &l) == nil {
			t[k] = l
		}
	}
	return t, nil
}

// SetLimit implements Store.
func (s *RedisStore) SetLimit(ctx context.Context, key Key, limit Limit) error {
	if limit.RPM < 0 || limit.TPM < 0 {
		return errors.New("ratelimit: negative limit")
	}
	b, _ := json.Marshal(limit)
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Do("HSET", s.limitsKey(), key.String(), b)
	return err
}

// DeleteLimit implements Store.
func (s *RedisStore) DeleteLimit(ctx context.Context, key Key) error {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Do("HDEL", s.limitsKey(), key.String())
	return err
}

// ActiveKeys lists the keys that have budget state (spent budget, a
// pause or a waiting line not yet expired), e.g. every model the fleet
// has called in the last hour.
func (s *RedisStore) ActiveKeys(ctx context.Context) ([]Key, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var keys []Key
	cursor := "0"
	for {
		r, err := redis.Values(conn.Do("SCAN", cursor, "MATCH", s.prefix+"state:*", "COUNT", 500))
		if err != nil {
			return nil, err
		}
		names, _ := redis.Strings(r[1], nil)
		for _, n := range names {
			if k, err := ParseKey(n[len(s.prefix)+len("state:"):]); err == nil {
				keys = append(keys, k)
			}
		}
		if cursor, _ = redis.String(r[0], nil); cursor == "0" {
			break
		}
	}
	return sortKeys(keys), nil
}

// State implements Store.
func (s *RedisStore) State(ctx context.Context, key Key, now time.Time) (State, error) {
	conn, err := s.pool.GetContext(ctx)
	if err != nil {
		return State{}, err
	}
	defer conn.Close()
	v, err := redis.Float64s(conn.Do("HMGET", s.stateKey(key), "cool", "req", "tok"))
	if err != nil && !errors.Is(err, redis.ErrNil) {
		return State{}, err
	}
	n := ms(s.onRedisClock(now))
	ahead := func(x float64) time.Duration {
		if x <= n {
			return 0
		}
		return time.Duration((x - n) * float64(time.Millisecond))
	}
	var st State
	if len(v) == 3 {
		st = State{CooldownLeft: ahead(v[0]), RequestsAhead: ahead(v[1]), TokensAhead: ahead(v[2])}
	}
	return st, nil
}
