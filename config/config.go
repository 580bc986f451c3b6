// Package config holds qagen's settings, their defaults (those of the
// Python system qagen replaces) and the environment variables they are read
// from.
package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/qagen/qagen/rdb"
)

// Environment variables, as the Python system names them.
const (
	EnvBrokerURL     = "CELERY_BROKER_URL"
	EnvResultBackend = "CELERY_RESULT_BACKEND"
)

// Worker are the settings of `qagen worker`.
type Worker struct {
	BrokerURL  string
	BackendURL string
	Queues     []string
	// Hostname is the nodename template (%h, %n, %d are expanded).
	Hostname           string
	Concurrency        int
	PrefetchMultiplier int
	TimeLimit          time.Duration
	SoftTimeLimit      time.Duration
	VisibilityTimeout  time.Duration
	AcksLate           bool
	ResultExpires      time.Duration
	ResultExtended     bool
	TrackStarted       bool
	// Timezone is the Celery app timezone (date_done, retry ETAs).
	Timezone  string
	KeyPrefix string
	// ShutdownGrace bounds the warm shutdown; 0 derives it from the limits.
	ShutdownGrace time.Duration
	DefaultQueue  string
	PidFile       string
	LogFile       string
	LogLevel      string
	LogFormat     string // console or json
}

// DefaultWorker returns the Python system's effective worker settings
// (config.CeleryConfig and start_celery.sh).
func DefaultWorker() Worker {
	return Worker{
		BrokerURL:          envOr(EnvBrokerURL, rdb.DefaultURL),
		BackendURL:         envOr(EnvResultBackend, rdb.DefaultURL),
		Queues:             []string{"qa_generation"},
		Hostname:           "qa_worker@%h",
		Concurrency:        8,
		PrefetchMultiplier: 1,
		TimeLimit:          300 * time.Second,
		SoftTimeLimit:      240 * time.Second,
		VisibilityTimeout:  time.Hour,
		AcksLate:           true,
		ResultExpires:      24 * time.Hour,
		Timezone:           "UTC",
		DefaultQueue:       "celery",
		LogLevel:           "info",
		LogFormat:          "console",
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Validate checks the settings and parses the URLs.
func (w Worker) Validate() (broker, backend rdb.Options, loc *time.Location, err error) {
	if broker, err = rdb.ParseURL(w.BrokerURL); err != nil {
		return broker, backend, nil, fmt.Errorf("broker: %w", err)
	}
	if backend, err = rdb.ParseURL(w.BackendURL); err != nil {
		return broker, backend, nil, fmt.Errorf("result backend: %w", err)
	}
	if len(w.Queues) == 0 {
		return broker, backend, nil, fmt.Errorf("no queues given")
	}
	if w.Concurrency < 1 {
		return broker, backend, nil, fmt.Errorf("concurrency must be at least 1, got %d", w.Concurrency)
	}
	if w.SoftTimeLimit > 0 && w.TimeLimit > 0 && w.SoftTimeLimit >= w.TimeLimit {
		return broker, backend, nil, fmt.Errorf("soft time limit (%s) must be below the hard time limit (%s)", w.SoftTimeLimit, w.TimeLimit)
	}
	if loc, err = time.LoadLocation(w.Timezone); err != nil {
		return broker, backend, nil, fmt.Errorf("timezone %q: %w", w.Timezone, err)
	}
	return broker, backend, loc, nil
}

// Nodename expands a hostname template like Celery's -n: %h is the full
// host name, %n its first label, %d the domain. A template without "@" gets
// "celery@" in front, as in Celery.
func Nodename(template string) string {
	host, _ := os.Hostname()
	name, domain, _ := strings.Cut(host, ".")
	r := strings.NewReplacer("%h", host, "%n", name, "%d", domain, "%%", "%")
	out := r.Replace(template)
	if !strings.Contains(out, "@") {
		out = "celery@" + out
	}
	return out
}

// LogFilePath expands a --logfile template like Celery's: %p is the full
// nodename, %n its name part, %h its host, %d the domain, %i and %I the pool
// process index (always 0 / empty: qagen runs one process).
func LogFilePath(template, nodename string) string {
	name, host, _ := strings.Cut(nodename, "@")
	_, domain, _ := strings.Cut(host, ".")
	r := strings.NewReplacer("%p", nodename, "%n", name, "%h", host, "%d", domain, "%i", "0", "%I", "", "%%", "%")
	return r.Replace(template)
}
