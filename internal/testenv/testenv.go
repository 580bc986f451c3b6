// Package testenv gives tests their real prerequisites: a Redis database of
// their own and Debian's Python Celery. A missing prerequisite fails the
// test; set QAGEN_SKIP_MISSING=1 to skip instead (never under CI).
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"

	"github.com/qagen/qagen/rdb"
)

// Redis databases, one per test package, so packages can run in parallel
// and each may FLUSHDB its own. The bench harness uses database 2.
const (
	DBTasks     = 5 // Q&A task with the fleet's rate limiter (tasks)
	DBE2E       = 6 // qagen generate end to end (internal/e2e)
	DBRateLimit = 7 // fleet-wide LLM rate limiter (ratelimit)
	DBScript    = 8 // start_celery.sh end-to-end test (cmd/qagen): key prefixes, never flushed
	DBControl   = 9 // remote-control client (control)
	DBBroker    = 10
	DBBackend   = 11
	DBWorker    = 12
	DBProducer  = 13
	DBInterop   = 14
	DBCommand   = 15
)

// Addr is the Redis server tests use (QAGEN_TEST_REDIS_ADDR, default
// 127.0.0.1:6379).
func Addr() string {
	if a := os.Getenv("QAGEN_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// URL is the redis:// URL of a test database.
func URL(db int) string { return fmt.Sprintf("redis://%s/%d", Addr(), db) }

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("QAGEN_SKIP_MISSING") == "1" && os.Getenv("CI") == "" {
		t.Skip("prerequisite missing: " + msg)
	}
	t.Fatal("prerequisite missing: " + msg + " (run .ci/run, or set QAGEN_SKIP_MISSING=1 locally to skip)")
}

var (
	flushMu sync.Mutex
	flushes = map[int]*sync.Once{} // one FLUSHDB per database and test binary
)

// dial connects to database db; a Redis that does not answer fails (or
// skips) the test.
func dial(t testing.TB, db int) (redis.Conn, rdb.Options) {
	t.Helper()
	opts, err := rdb.ParseURL(URL(db))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := opts.Dial(5 * time.Second)
	if err != nil {
		missing(t, "Redis at %s: %v", Addr(), err)
	}
	return conn, opts
}

// Redis returns a pool on database db. The first call in a test binary
// flushes that database (FLUSHDB, never FLUSHALL).
func Redis(t testing.TB, db int) (*redis.Pool, rdb.Options) {
	t.Helper()
	conn, opts := dial(t, db)
	defer conn.Close()
	flushMu.Lock()
	once := flushes[db]
	if once == nil {
		once = &sync.Once{}
		flushes[db] = once
	}
	flushMu.Unlock()
	// Every caller waits until the flush is done, so no parallel test
	// writes keys the flush would then wipe.
	var flushErr error
	once.Do(func() { _, flushErr = conn.Do("FLUSHDB") })
	if flushErr != nil {
		t.Fatalf("FLUSHDB %d: %v", db, flushErr)
	}
	pool := opts.NewPool(rdb.PoolOptions{MaxIdle: 32})
	t.Cleanup(func() { pool.Close() })
	return pool, opts
}

// Prefix returns a key prefix unique to this test, for kombu's
// global_keyprefix, so parallel tests in one database never share keys.
func Prefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return "t:" + name + ":" + uuid.NewString()[:8] + ":"
}

// RequireRedis fails (or skips, see package doc) unless the test Redis
// server answers on database db. Unlike Redis it flushes nothing: for tests
// that isolate themselves with key prefixes and outlive other test binaries'
// flushes (a long end-to-end test).
func RequireRedis(t testing.TB, db int) {
	t.Helper()
	conn, _ := dial(t, db)
	defer conn.Close()
	if _, err := conn.Do("PING"); err != nil {
		missing(t, "Redis at %s: %v", Addr(), err)
	}
}

// RequireCommands fails (or skips, see package doc) unless every named
// program is on PATH.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing(t, "%s is not on PATH", n)
		}
	}
}

// Python is the interpreter with Debian's python3-celery.
const Python = "/usr/bin/python3"

var pythonOnce sync.Once
var pythonErr error

// RequirePython fails (or skips, see package doc) unless /usr/bin/python3
// can import celery and redis.
func RequirePython(t testing.TB) {
	t.Helper()
	pythonOnce.Do(func() {
		out, err := exec.Command(Python, "-I", "-c", "import celery, kombu, redis; print(celery.__version__)").CombinedOutput()
		if err != nil {
			pythonErr = fmt.Errorf("%s cannot import celery (apt-get install python3-celery python3-redis): %v: %s", Python, err, out)
		}
	})
	if pythonErr != nil {
		missing(t, "%v", pythonErr)
	}
}
