// Package rdb opens Redis connections from Celery-style URLs.
package rdb

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// DefaultURL is Celery's and the Python system's default broker and backend.
const DefaultURL = "redis://localhost:6379/0"

// Options describe one Redis database, parsed from a URL.
type Options struct {
	Network  string // "tcp" or "unix"
	Address  string // host:port or socket path
	DB       int
	Username string
	Password string
	TLS      bool
	// TLSSkipVerify is set by ssl_cert_reqs=none (CERT_NONE), as in Celery.
	TLSSkipVerify bool
	// TLSCAFile is ssl_ca_certs.
	TLSCAFile string
}

// ParseURL accepts the URL forms Celery and kombu accept for Redis:
//
//	redis://[[user]:password@]host[:port][/db]
//	rediss://...            (TLS; ?ssl_cert_reqs=none|required, ?ssl_ca_certs=path)
//	unix:///path/to/redis.sock[?db=N]
//	redis+socket:///path[?virtual_host=N], socket:///path[?db=N]
func ParseURL(raw string) (Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse echoes the input, which may hold a password.
		return Options{}, fmt.Errorf("rdb: invalid Redis URL %q", Redact(raw))
	}
	var o Options
	q := u.Query()
	switch u.Scheme {
	case "redis", "rediss":
		o.Network = "tcp"
		host := u.Hostname()
		if host == "" {
			host = "localhost"
		}
		port := u.Port()
		if port == "" {
			port = "6379"
		}
		o.Address = host + ":" + port
		if u.Host != "" && strings.HasPrefix(u.Host, "[") {
			o.Address = "[" + host + "]:" + port
		}
		if p := strings.Trim(u.Path, "/"); p != "" {
			if o.DB, err = strconv.Atoi(p); err != nil {
				return Options{}, fmt.Errorf("rdb: database number %q in %s is not a number", p, Redact(raw))
			}
		}
		o.TLS = u.Scheme == "rediss"
	case "unix", "redis+socket", "socket":
		o.Network = "unix"
		o.Address = u.Path
		if o.Address == "" {
			o.Address = u.Host + u.Path
		}
		if o.Address == "" {
			return Options{}, fmt.Errorf("rdb: %s has no socket path", Redact(raw))
		}
	default:
		return Options{}, fmt.Errorf("rdb: unsupported scheme %q in %s (want redis, rediss or unix)", u.Scheme, Redact(raw))
	}
	for _, name := range []string{"db", "virtual_host"} {
		if v := q.Get(name); v != "" {
			if o.DB, err = strconv.Atoi(strings.Trim(v, "/")); err != nil {
				return Options{}, fmt.Errorf("rdb: %s=%q in %s is not a number", name, v, Redact(raw))
			}
		}
	}
	if o.DB < 0 {
		return Options{}, fmt.Errorf("rdb: negative database number in %s", Redact(raw))
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
		if _, hasPassword := u.User.Password(); !hasPassword {
			// redis://secret@host means a password, as in redis-py.
			o.Password, o.Username = o.Username, ""
		}
	}
	if p := q.Get("password"); p != "" {
		o.Password = p
	}
	switch strings.ToLower(q.Get("ssl_cert_reqs")) {
	case "none", "cert_none":
		o.TLSSkipVerify = true
	}
	o.TLSCAFile = q.Get("ssl_ca_certs")
	return o, nil
}

// String renders the options as a URL without the password.
func (o Options) String() string {
	var b strings.Builder
	switch {
	case o.Network == "unix":
		b.WriteString("unix://")
	case o.TLS:
		b.WriteString("rediss://")
	default:
		b.WriteString("redis://")
	}
	if o.Username != "" || o.Password != "" {
		b.WriteString(o.Username)
		if o.Password != "" {
			b.WriteString(":***")
		}
		b.WriteByte('@')
	}
	b.WriteString(o.Address)
	if o.Network == "unix" {
		fmt.Fprintf(&b, "?db=%d", o.DB)
	} else {
		fmt.Fprintf(&b, "/%d", o.DB)
	}
	return b.String()
}

// SameDatabase reports whether o and p name the same database on the same
// server with the same credentials, so one connection can serve both.
func (o Options) SameDatabase(p Options) bool { return o == p }

// Redact hides the password of a Redis URL for logs and error messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "***" + raw[i:]
			}
			return "***" + raw[i:]
		}
		return raw
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "***")
		} else {
			u.User = url.User("***")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "***")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// PoolOptions size a connection pool.
type PoolOptions struct {
	MaxIdle   int
	MaxActive int // 0 means no limit
	// ReadTimeout applies to ordinary commands; blocking commands pass
	// their own timeout with redis.DoWithTimeout.
	ReadTimeout time.Duration
}

// Dial opens one connection.
func (o Options) Dial(readTimeout time.Duration) (redis.Conn, error) {
	opts := []redis.DialOption{
		redis.DialDatabase(o.DB),
		redis.DialConnectTimeout(5 * time.Second),
		redis.DialWriteTimeout(10 * time.Second),
		redis.DialReadTimeout(readTimeout),
	}
	if o.Password != "" {
		opts = append(opts, redis.DialPassword(o.Password))
	}
	if o.Username != "" {
		opts = append(opts, redis.DialUsername(o.Username))
	}
	if o.TLS {
		cfg := &tls.Config{InsecureSkipVerify: o.TLSSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in via ssl_cert_reqs=none, as in Celery
		if o.TLSCAFile != "" {
			pem, err := os.ReadFile(o.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("rdb: ssl_ca_certs: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("rdb: ssl_ca_certs holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, redis.DialUseTLS(true), redis.DialTLSConfig(cfg), redis.DialTLSSkipVerify(o.TLSSkipVerify))
	}
	c, err := redis.Dial(o.Network, o.Address, opts...)
	if err != nil {
		return nil, fmt.Errorf("rdb: connect to %s: %w", o, err)
	}
	return c, nil
}

// NewPool returns a connection pool for o.
func (o Options) NewPool(p PoolOptions) *redis.Pool {
	if p.ReadTimeout == 0 {
		p.ReadTimeout = 30 * time.Second
	}
	if p.MaxIdle == 0 {
		p.MaxIdle = 16
	}
	return &redis.Pool{
		MaxIdle:     p.MaxIdle,
		MaxActive:   p.MaxActive,
		IdleTimeout: 5 * time.Minute,
		Wait:        p.MaxActive > 0,
		Dial:        func() (redis.Conn, error) { return o.Dial(p.ReadTimeout) },
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if time.Since(t) < time.Minute {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
}
