package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestNodename(t *testing.T) {
	host, _ := os.Hostname()
	short, domain, _ := strings.Cut(host, ".")
	for _, tc := range []struct{ in, want string }{
		{"qa_worker@%h", "qa_worker@" + host},
		{"w@%n", "w@" + short},
		{"w@%n.%d", "w@" + short + "." + domain},
		{"plain", "celery@plain"},
		{"a@b%%c", "a@b%c"},
	} {
		if got := Nodename(tc.in); got != tc.want {
			t.Errorf("Nodename(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLogFilePath(t *testing.T) {
	for _, tc := range []struct{ tmpl, node, want string }{
		{"logs/celery_qa_%n.log", "qa_worker@vm.example.com", "logs/celery_qa_qa_worker.log"},
		{"%p.log", "w1@vm", "w1@vm.log"},
		{"%h-%d-%i%I.log", "w1@vm.example.com", "vm.example.com-example.com-0.log"},
		{"100%%.log", "w@h", "100%.log"},
	} {
		if got := LogFilePath(tc.tmpl, tc.node); got != tc.want {
			t.Errorf("LogFilePath(%q, %q) = %q, want %q", tc.tmpl, tc.node, got, tc.want)
		}
	}
}

func TestDefaultsAreThePythonSystems(t *testing.T) {
	t.Setenv(EnvBrokerURL, "")
	t.Setenv(EnvResultBackend, "")
	d := DefaultWorker()
	if d.BrokerURL != "redis://localhost:6379/0" || d.BackendURL != d.BrokerURL {
		t.Errorf("URLs %q %q", d.BrokerURL, d.BackendURL)
	}
	if d.Queues[0] != "qa_generation" || d.Concurrency != 8 || d.PrefetchMultiplier != 1 || !d.AcksLate ||
		d.TimeLimit != 300*time.Second || d.SoftTimeLimit != 240*time.Second || d.Hostname != "qa_worker@%h" {
		t.Errorf("defaults %+v", d)
	}
	t.Setenv(EnvBrokerURL, "redis://broker:6379/3")
	if got := DefaultWorker().BrokerURL; got != "redis://broker:6379/3" {
		t.Errorf("CELERY_BROKER_URL ignored: %q", got)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultWorker()
	if _, _, loc, err := ok.Validate(); err != nil || loc.String() != "UTC" {
		t.Fatalf("defaults invalid: %v", err)
	}
	for name, mutate := range map[string]func(*Worker){
		"bad broker":       func(w *Worker) { w.BrokerURL = "amqp://x" },
		"bad backend":      func(w *Worker) { w.BackendURL = "redis://h/notadb" },
		"no queues":        func(w *Worker) { w.Queues = nil },
		"zero concurrency": func(w *Worker) { w.Concurrency = 0 },
		"soft >= hard":     func(w *Worker) { w.SoftTimeLimit = w.TimeLimit },
		"bad timezone":     func(w *Worker) { w.Timezone = "Mars/Olympus" },
	} {
		w := DefaultWorker()
		mutate(&w)
		if _, _, _, err := w.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	w := DefaultWorker()
	w.BrokerURL = "redis://:s3cret@h:6379/0"
	w.Timezone = "Nowhere/None"
	if _, _, _, err := w.Validate(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks or missing: %v", err)
	}
	w.Timezone = "Asia/Tokyo"
	if _, _, loc, err := w.Validate(); err != nil || loc.String() != "Asia/Tokyo" {
		t.Errorf("Asia/Tokyo: %v", err)
	}
}
