// Package backend is Celery's Redis result backend: celery-task-meta-<id>
// keys written with SETEX and announced with PUBLISH on the channel of the
// same name, which is what Python's AsyncResult.get() waits on.
package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/celery"
)

// DefaultExpires is Celery's result_expires default.
const DefaultExpires = 24 * time.Hour

// Options configure the backend.
type Options struct {
	// Expires is the TTL of stored results; a negative value stores them
	// without expiry (Celery's result_expires=None). Zero means one day.
	Expires time.Duration
	// KeyPrefix is Celery ≥ 5.3's result_backend_transport_options
	// global_keyprefix; "_" is appended unless it ends in one of ":_-.".
	KeyPrefix string
}

// Backend stores and reads task results.
type Backend struct {
	pool    *redis.Pool
	expires int64 // seconds; 0 = no expiry
	prefix  string
}

// New returns a backend on pool.
func New(pool *redis.Pool, opts Options) *Backend {
	b := &Backend{pool: pool}
	switch {
	case opts.Expires == 0:
		b.expires = int64(DefaultExpires / time.Second)
	case opts.Expires > 0:
		b.expires = max(int64(opts.Expires/time.Second), 1)
	}
	if p := opts.KeyPrefix; p != "" {
		if !strings.ContainsAny(p[len(p)-1:], ":_-.") {
			p += "_"
		}
		b.prefix = p
	}
	return b
}

// Pool returns the connection pool.
func (b *Backend) Pool() *redis.Pool { return b.pool }

// Key is the result key (and channel) of a task id.
func (b *Backend) Key(taskID string) string { return b.prefix + celery.ResultKey(taskID) }

// storeScript writes results as Celery does (GET guard, then SETEX and
// PUBLISH of the same bytes), atomically and for many tasks per call. A
// stored SUCCESS is never overwritten. ARGV[1] is the TTL (0: no expiry).
var storeScript = redis.NewScript(-1, `
local ttl = tonumber(ARGV[1])
local stored = 0
for i, key in ipairs(KEYS) do
  local meta = ARGV[i + 1]
  local cur = redis.call('GET', key)
  local keep = false
  if cur then
    local ok, m = pcall(cjson.decode, cur)
    keep = ok and type(m) == 'table' and m['status'] == 'SUCCESS'
  end
  if not keep then
    if ttl > 0 then redis.call('SETEX', key, ttl, meta) else redis.call('SET', key, meta) end
    redis.call('PUBLISH', key, meta)
    stored = stored + 1
  end
end
return stored
`)

// Record is one encoded result to store.
type Record struct {
	TaskID string
	Meta   []byte // encoded celery.ResultMeta
}

// Store writes results in one round trip. It returns how many were written
// (results whose key already holds SUCCESS are skipped).
func (b *Backend) Store(ctx context.Context, recs ...Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	n, err := redis.Int(storeScript.Do(conn, b.storeArgs(recs)...))
	if err != nil {
		return 0, fmt.Errorf("backend: store results: %w", err)
	}
	return n, nil
}

func (b *Backend) storeArgs(recs []Record) []any {
	args := make([]any, 0, 2+2*len(recs))
	args = append(args, len(recs))
	for _, r := range recs {
		args = append(args, b.Key(r.TaskID))
	}
	args = append(args, b.expires)
	for _, r := range recs {
		args = append(args, r.Meta)
	}
	return args
}

// StoreMeta encodes and stores one result.
func (b *Backend) StoreMeta(ctx context.Context, meta *celery.ResultMeta) error {
	_, err := b.Store(ctx, Record{TaskID: meta.TaskID, Meta: meta.AppendJSON(nil)})
	return err
}

// ErrNoResult means no result is stored: the task is PENDING (or unknown).
var ErrNoResult = errors.New("backend: no result stored")

// Get reads one result; ErrNoResult when the key is missing.
func (b *Backend) Get(ctx context.Context, taskID string) (*celery.ResultMeta, error) {
	metas, err := b.GetMany(ctx, []string{taskID})
	if err != nil {
		return nil, err
	}
	if metas[0] == nil {
		return nil, ErrNoResult
	}
	return metas[0], nil
}

// GetMany reads many results with one MGET; missing ones are nil. A value
// that does not parse is reported as an error naming its task.
func (b *Backend) GetMany(ctx context.Context, taskIDs []string) ([]*celery.ResultMeta, error) {
	if len(taskIDs) == 0 {
		return nil, nil
	}
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	keys := make([]any, len(taskIDs))
	for i, id := range taskIDs {
		keys[i] = b.Key(id)
	}
	values, err := redis.ByteSlices(conn.Do("MGET", keys...))
	if err != nil {
		return nil, fmt.Errorf("backend: MGET results: %w", err)
	}
	out := make([]*celery.ResultMeta, len(values))
	for i, v := range values {
		if v == nil {
			continue
		}
		m, err := celery.ParseResult(v)
		if err != nil {
			return out, fmt.Errorf("backend: result of %s: %w", taskIDs[i], err)
		}
		out[i] = m
	}
	return out, nil
}
