package rdb_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/rdb"
)

// dial connects to the test server without testenv.Redis, which would
// FLUSHDB a database the broker tests are using at the same time. Like
// testenv, a missing server fails the test unless QAGEN_SKIP_MISSING=1.
func dial(t *testing.T, o rdb.Options) redis.Conn {
	t.Helper()
	c, err := o.Dial(5 * time.Second)
	if err != nil {
		if os.Getenv("QAGEN_SKIP_MISSING") == "1" && os.Getenv("CI") == "" {
			t.Skipf("prerequisite missing: Redis at %s: %v", o, err)
		}
		t.Fatalf("Dial %s: %v", o, err)
	}
	return c
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want rdb.Options
	}{
		{"redis://", rdb.Options{Network: "tcp", Address: "localhost:6379"}},
		{"redis://localhost", rdb.Options{Network: "tcp", Address: "localhost:6379"}},
		{rdb.DefaultURL, rdb.Options{Network: "tcp", Address: "localhost:6379"}},
		{"redis://h:1/3", rdb.Options{Network: "tcp", Address: "h:1", DB: 3}},
		{"redis://:pw@h:1/3", rdb.Options{Network: "tcp", Address: "h:1", DB: 3, Password: "pw"}},
		{"redis://user:pw@h", rdb.Options{Network: "tcp", Address: "h:6379", Username: "user", Password: "pw"}},
		// A bare userinfo is a password, as in redis-py.
		{"redis://pw@h", rdb.Options{Network: "tcp", Address: "h:6379", Password: "pw"}},
		{"redis://user:@h/0", rdb.Options{Network: "tcp", Address: "h:6379", Username: "user"}},
		{"redis://:p%40ss%3Aw@h/1", rdb.Options{Network: "tcp", Address: "h:6379", DB: 1, Password: "p@ss:w"}},
		{"redis://h/4?password=qpw", rdb.Options{Network: "tcp", Address: "h:6379", DB: 4, Password: "qpw"}},
		{"redis://h:6380/", rdb.Options{Network: "tcp", Address: "h:6380"}},
		{"redis://h?db=7", rdb.Options{Network: "tcp", Address: "h:6379", DB: 7}},
		{"rediss://:pw@h:6380/2?ssl_cert_reqs=none", rdb.Options{Network: "tcp", Address: "h:6380", DB: 2, Password: "pw", TLS: true, TLSSkipVerify: true}},
		{"rediss://h?ssl_cert_reqs=CERT_NONE", rdb.Options{Network: "tcp", Address: "h:6379", TLS: true, TLSSkipVerify: true}},
		{"rediss://h/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem", rdb.Options{Network: "tcp", Address: "h:6379", TLS: true, TLSCAFile: "/etc/ca.pem"}},
		{"unix:///tmp/r.sock?db=2", rdb.Options{Network: "unix", Address: "/tmp/r.sock", DB: 2}},
		{"unix:///tmp/r.sock", rdb.Options{Network: "unix", Address: "/tmp/r.sock"}},
		{"unix://:pw@/tmp/r.sock?db=1", rdb.Options{Network: "unix", Address: "/tmp/r.sock", DB: 1, Password: "pw"}},
		{"redis+socket:///p?virtual_host=4", rdb.Options{Network: "unix", Address: "/p", DB: 4}},
		{"redis+socket:///p?virtual_host=/5", rdb.Options{Network: "unix", Address: "/p", DB: 5}},
		{"socket:///var/run/redis.sock?db=9", rdb.Options{Network: "unix", Address: "/var/run/redis.sock", DB: 9}},
		{"redis://[::1]:6380/2", rdb.Options{Network: "tcp", Address: "[::1]:6380", DB: 2}},
		{"redis://[::1]", rdb.Options{Network: "tcp", Address: "[::1]:6379"}},
		{"redis://:pw@[fe80::1]:7000/3", rdb.Options{Network: "tcp", Address: "[fe80::1]:7000", DB: 3, Password: "pw"}},
	}
	for _, tc := range tests {
		got, err := rdb.ParseURL(tc.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q)\n got %+v\nwant %+v", tc.url, got, tc.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	const secret = "hunter2secret"
	tests := []struct {
		url, want string
	}{
		{"amqp://guest:" + secret + "@h//", "unsupported scheme"},
		{"http://:" + secret + "@h/0", "unsupported scheme"},
		{"redis://:" + secret + "@h/abc", "not a number"},
		{"redis://:" + secret + "@h/1/2", "not a number"},
		{"redis://:" + secret + "@h?db=x", "not a number"},
		{"redis://:" + secret + "@h/-1", "negative"},
		{"unix://:" + secret + "@?db=1", "no socket path"},
		{"socket://", "no socket path"},
		{"unix:///tmp/r.sock?db=two&password=" + secret, "not a number"},
		{"redis+socket:///p?virtual_host=x", "not a number"},
		// url.Parse itself fails (bad escape, bad port); the message must
		// still hide the password.
		{"redis://:" + secret + "%zz@h/0", "invalid Redis URL"},
		{"redis://:" + secret + "@h:port/0", "invalid Redis URL"},
		{"redis://user:" + secret + "@[::1/0", "invalid Redis URL"},
	}
	for _, tc := range tests {
		_, err := rdb.ParseURL(tc.url)
		if err == nil {
			t.Errorf("ParseURL(%q): no error", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q) = %v, want it to mention %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseURL(%q) error leaks the password: %v", tc.url, err)
		}
	}
}

func TestStringAndRedactHidePassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3tP4ss"
	urls := []string{
		"redis://:" + secret + "@h:1/3",
		"redis://user:" + secret + "@h",
		"redis://" + secret + "@h",
		"rediss://:" + secret + "@h:6380/2?ssl_cert_reqs=none",
		"unix://:" + secret + "@/tmp/r.sock?db=2",
		"redis://h/4?password=" + secret,
		"redis://u:" + secret + "@h/4?password=" + secret + "&x=1",
	}
	for _, u := range urls {
		o, err := rdb.ParseURL(u)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", u, err)
		}
		if o.Password != secret {
			t.Errorf("ParseURL(%q).Password = %q", u, o.Password)
		}
		s := o.String()
		if strings.Contains(s, secret) {
			t.Errorf("Options.String() of %q leaks the password: %s", u, s)
		}
		if !strings.Contains(s, "***") {
			t.Errorf("Options.String() of %q does not show that a password is set: %s", u, s)
		}
		r := rdb.Redact(u)
		if strings.Contains(r, secret) {
			t.Errorf("Redact(%q) leaks the password: %s", u, r)
		}
		if !strings.Contains(r, "***") && !strings.Contains(r, "%2A%2A%2A") {
			t.Errorf("Redact(%q) = %q, want a *** placeholder", u, r)
		}
		// The redacted URL still parses to the same place.
		if ro, err := rdb.ParseURL(r); err == nil {
			if ro.Address != o.Address || ro.DB != o.DB || ro.Network != o.Network {
				t.Errorf("Redact(%q) = %q parses to %+v, want address/db of %+v", u, r, ro, o)
			}
		} else {
			t.Errorf("Redact(%q) = %q does not parse: %v", u, r, err)
		}
	}
	// Unparseable URLs are redacted by hand.
	for _, u := range []string{"redis://:" + secret + "%zz@h/0", "redis://u:" + secret + "@h:port/0"} {
		if r := rdb.Redact(u); strings.Contains(r, secret) {
			t.Errorf("Redact(%q) leaks the password: %s", u, r)
		}
	}
	// Nothing to hide: unchanged.
	for _, u := range []string{"redis://h:6379/0", "unix:///tmp/r.sock?db=2"} {
		if r := rdb.Redact(u); r != u {
			t.Errorf("Redact(%q) = %q, want it unchanged", u, r)
		}
	}
}

func TestOptionsString(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"redis://h:1/3":                        "redis://h:1/3",
		"redis://":                             "redis://localhost:6379/0",
		"redis://user:pw@h":                    "redis://user:***@h:6379/0",
		"redis://pw@h":                         "redis://:***@h:6379/0",
		"rediss://h:6380/2?ssl_cert_reqs=none": "rediss://h:6380/2",
		"unix:///tmp/r.sock?db=2":              "unix:///tmp/r.sock?db=2",
		"redis://[::1]:6380/2":                 "redis://[::1]:6380/2",
	}
	for in, want := range tests {
		o, err := rdb.ParseURL(in)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", in, err)
		}
		if got := o.String(); got != want {
			t.Errorf("ParseURL(%q).String() = %q, want %q", in, got, want)
		}
		// Without a password or TLS options, String round-trips.
		if o.Password == "" && !o.TLS {
			back, err := rdb.ParseURL(o.String())
			if err != nil || back != o {
				t.Errorf("ParseURL(%q) = %+v, %v; want %+v", o.String(), back, err, o)
			}
		}
	}
}

func TestSameDatabase(t *testing.T) {
	t.Parallel()
	a, _ := rdb.ParseURL("redis://h:6379/0")
	b, _ := rdb.ParseURL("redis://h/0")
	c, _ := rdb.ParseURL("redis://h/1")
	d, _ := rdb.ParseURL("redis://:pw@h/0")
	if !a.SameDatabase(b) {
		t.Error("redis://h:6379/0 and redis://h/0 should be the same database")
	}
	if a.SameDatabase(c) || a.SameDatabase(d) {
		t.Error("different db or credentials must not count as the same database")
	}
}

func TestDialRealServer(t *testing.T) {
	t.Parallel()
	o, err := rdb.ParseURL(testenv.URL(testenv.DBBroker))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, o)
	defer c.Close()
	if r, err := c.Do("PING"); err != nil || r != "PONG" {
		t.Fatalf("PING = %v, %v", r, err)
	}
	// The connection selected the URL's database.
	info, err := c.Do("CLIENT", "INFO")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(info.([]byte)); !strings.Contains(s, " db=10 ") {
		t.Fatalf("CLIENT INFO %q: want db=10", s)
	}

	// A pool from the same options works too.
	pool := o.NewPool(rdb.PoolOptions{MaxIdle: 2, MaxActive: 2, ReadTimeout: time.Second})
	defer pool.Close()
	pc := pool.Get()
	defer pc.Close()
	if r, err := pc.Do("PING"); err != nil || r != "PONG" {
		t.Fatalf("pool PING = %v, %v", r, err)
	}
}

func TestDialWrongPasswordHidesIt(t *testing.T) {
	t.Parallel()
	o, err := rdb.ParseURL(testenv.URL(testenv.DBBroker))
	if err != nil {
		t.Fatal(err)
	}
	dial(t, o).Close() // the server is there
	const secret = "n0tTheRightPassw0rd"
	for _, u := range []string{
		"redis://:" + secret + "@" + testenv.Addr() + "/10",
		"redis://qagen-nouser:" + secret + "@" + testenv.Addr() + "/10",
	} {
		o, err := rdb.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		c, err := o.Dial(5 * time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("Dial with a wrong password succeeded (%s)", o)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("Dial error leaks the password: %v", err)
		}
		if !strings.Contains(err.Error(), "***") {
			t.Errorf("Dial error %q should name the redacted URL", err)
		}
		// The pool surfaces the same error.
		pool := o.NewPool(rdb.PoolOptions{})
		pc := pool.Get()
		_, err = pc.Do("PING")
		pc.Close()
		pool.Close()
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Fatalf("pool error = %v", err)
		}
	}
}

func TestDialUnreachable(t *testing.T) {
	t.Parallel()
	o, err := rdb.ParseURL("unix:///nonexistent/qagen-test.sock?db=1")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := o.Dial(time.Second); err == nil {
		c.Close()
		t.Fatal("Dial to a missing socket succeeded")
	} else if !strings.Contains(err.Error(), "/nonexistent/qagen-test.sock") {
		t.Fatalf("error %q should name the address", err)
	}
	o, _ = rdb.ParseURL("rediss://h/0?ssl_ca_certs=/nonexistent/ca.pem")
	if _, err := o.Dial(time.Second); err == nil || !strings.Contains(err.Error(), "ssl_ca_certs") {
		t.Fatalf("Dial with a missing CA file: %v", err)
	}
}
