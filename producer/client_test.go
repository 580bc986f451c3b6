package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/producer"
	"github.com/qagen/qagen/tasks"
	"github.com/qagen/qagen/worker"
)

func TestMessageOptions(t *testing.T) {
	c := producer.New(nil, nil)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	c.Location = tokyo
	eta := time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	m, opts, err := c.Message(producer.Task{Name: "t.x", Args: json.RawMessage(`[1]`), Options: producer.Options{
		Queue: "q", Priority: 7, ETA: eta, Expires: eta.Add(time.Hour), TimeLimit: 30 * time.Second, SoftLimit: 20 * time.Second,
		IgnoreResult: true, Protocol: 1, Compression: "gzip", Headers: json.RawMessage(`{"tenant": "a"}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID == "" || m.Task != "t.x" || m.DeliveryInfo.RoutingKey != "q" || m.Priority != 7 || !m.IgnoreResult {
		t.Fatalf("%+v", m)
	}
	if !m.ETA.Equal(eta) || celery.FormatTime(*m.ETA) != "2030-01-02T12:04:05.600000+09:00" {
		t.Fatalf("eta %s", celery.FormatTime(*m.ETA))
	}
	if m.TimeLimit.Hard() != 30 || m.TimeLimit.Soft() != 20 || opts.Protocol != 1 || opts.Compression != "gzip" {
		t.Fatalf("limits %v opts %+v", m.TimeLimit, opts)
	}
	m, _, _ = c.Message(producer.Task{Name: "t.y", Options: producer.Options{Countdown: time.Minute}})
	if m.DeliveryInfo.RoutingKey != "celery" || m.ETA == nil || time.Until(*m.ETA) < 59*time.Second {
		t.Fatalf("defaults: queue %q eta %v", m.DeliveryInfo.RoutingKey, m.ETA)
	}
	if _, _, err := c.Message(producer.Task{}); err == nil {
		t.Fatal("empty task name accepted")
	}
}

// TestSendAndCall runs the producer against an in-process worker.
func TestSendAndCall(t *testing.T) {
	pool, _ := testenv.Redis(t, testenv.DBProducer)
	prefix := testenv.Prefix(t)
	b := broker.New(pool, broker.Options{KeyPrefix: prefix})
	r := backend.New(pool, backend.Options{KeyPrefix: prefix})
	reg := worker.NewRegistry()
	tasks.RegisterDiagnostics(reg)
	w, err := worker.New(worker.Config{Queues: []string{"p"}, Concurrency: 4, AcksLate: true, RestoreInterval: -1, Logger: zerolog.Nop()}, reg, b, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	c := producer.New(b, r)
	tctx, tcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer tcancel()
	m, err := c.Call(tctx, producer.Task{Name: "qagen.add", Args: json.RawMessage(`[20, 22]`), Options: producer.Options{Queue: "p"}})
	if err != nil || m.Status != celery.StateSuccess || string(m.Result) != "42" {
		t.Fatalf("call: %v %+v", err, m)
	}
	m, err = c.Call(tctx, producer.Task{Name: "qagen.fail", Args: json.RawMessage(`["nope"]`), Options: producer.Options{Queue: "p", Protocol: 1, Compression: "xz"}})
	if err != nil {
		t.Fatal(err)
	}
	var exc *celery.Exception
	if rerr := producer.ResultError(m); !errors.As(rerr, &exc) || exc.Type != "ValueError" || !strings.Contains(rerr.Error(), "nope") {
		t.Fatalf("ResultError %v", rerr)
	}
	// Many tasks in one round trip, collected with one subscription.
	var batch []producer.Task
	for i := 0; i < 50; i++ {
		batch = append(batch, producer.Task{Name: "qagen.echo", Args: json.RawMessage(`[` + strings.Repeat("1", i%5+1) + `]`), Options: producer.Options{Queue: "p"}})
		batch[i].ID = "batch-" + string(rune('A'+i%26)) + strings.Repeat("z", i/26)
	}
	ids := make([]string, len(batch))
	for i := range batch {
		ids[i] = batch[i].ID
	}
	sub, err := r.Subscribe(tctx, ids...)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sent, err := c.Send(tctx, batch...)
	if err != nil || len(sent) != 50 || sent[7] != ids[7] {
		t.Fatalf("send: %v %v", err, sent)
	}
	results, err := sub.Wait(tctx, nil)
	if err != nil || len(results) != 50 {
		t.Fatalf("collected %d results: %v", len(results), err)
	}
	if got := string(results[ids[3]].Result); got != "1111" {
		t.Fatalf("echo result %s", got)
	}
	if producer.ResultError(results[ids[0]]) != nil {
		t.Fatal("SUCCESS reported as an error")
	}
}
