package producer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/rs/zerolog"

	"github.com/qagen/qagen/backend"
	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/celery"
	"github.com/qagen/qagen/internal/testenv"
	"github.com/qagen/qagen/producer"
)

// benchUnits are n one-chunk units shaped like a02's.
func benchUnits(n int) []*producer.Unit {
	units := make([]*producer.Unit, n)
	for i := range units {
		chunk, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("d_%d_chunk_0", i), "text": "Redis keeps data in memory. It is fast.",
			"tokens": 12, "type": "paragraph", "sentences": []string{}, "doc_id": fmt.Sprintf("d_%d", i), "doc_idx": i, "chunk_idx": 0, "dataset_type": "bench"})
		units[i] = &producer.Unit{ChunkIDs: []string{fmt.Sprintf("d_%d_chunk_0", i)}, Chunks: []json.RawMessage{chunk},
			Config: json.RawMessage(`{"lang": "en", "qa_per_chunk": 2}`)}
	}
	return units
}

// instantWorker answers every task as soon as it is in the queue, with a
// stored SUCCESS in batches, so the benchmark measures what the producer
// and Redis cost: encoding, LPUSH, SUBSCRIBE, collecting 10,000 results.
func instantWorker(ctx context.Context, b *broker.Broker, r *backend.Backend, queue string) {
	result := json.RawMessage(`{"success": true, "chunk_id": "x", "qa_pairs": [{"question": "Q?", "answer": "A.", "question_type": "fact", "source_chunk_id": "x", "doc_id": "d", "dataset_type": "bench", "chunk_idx": 0, "provider": "bench"}], "provider": "bench", "error": null}`)
	for ctx.Err() == nil {
		ds, err := b.Fetch(ctx, []string{queue}, 500)
		if err != nil || len(ds) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		recs := make([]backend.Record, 0, len(ds))
		tags := make([]string, 0, len(ds))
		for _, d := range ds {
			m, err := celery.DecodeTask(d.Raw, celery.DecodeOptions{})
			if err != nil {
				continue
			}
			meta := celery.ResultMeta{Status: celery.StateSuccess, Result: result, TaskID: m.ID}
			recs = append(recs, backend.Record{TaskID: m.ID, Meta: meta.AppendJSON(nil)})
			tags = append(tags, d.Tag)
		}
		r.Store(ctx, recs...)
		b.Ack(ctx, tags...)
	}
}

// BenchmarkSubmitCollect10k is the producer's overhead for 10,000 tasks
// against real Redis: send them all, collect all results.
func BenchmarkSubmitCollect10k(b *testing.B) {
	pool, _ := testenv.Redis(b, testenv.DBProducer)
	prefix := testenv.Prefix(b)
	br := broker.New(pool, broker.Options{KeyPrefix: prefix})
	be := backend.New(pool, backend.Options{KeyPrefix: prefix, Expires: time.Minute})
	client := producer.New(br, be)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go instantWorker(ctx, br, be, "bench")
	const n = 10000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		units := benchUnits(n)
		exec := &producer.CeleryExecutor{Client: client, Queue: "bench", Model: "m", Provider: "gemini", Log: zerolog.Nop()}
		done := 0
		if err := exec.Run(ctx, units, func(*producer.Unit) { done++ }); err != nil || done != n {
			b.Fatalf("collected %d of %d: %v", done, n, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/task")
	c := pool.Get()
	defer c.Close()
	keys, _ := redis.Strings(c.Do("KEYS", "*"+prefix+"*"))
	for _, k := range keys {
		c.Do("DEL", k)
	}
}

// BenchmarkSubmit10k is the send half alone: encoding and pipelined LPUSH.
func BenchmarkSubmit10k(b *testing.B) {
	pool, _ := testenv.Redis(b, testenv.DBProducer)
	prefix := testenv.Prefix(b)
	br := broker.New(pool, broker.Options{KeyPrefix: prefix})
	client := producer.New(br, nil)
	units := benchUnits(10000)
	tasks := make([]producer.Task, len(units))
	for i, u := range units {
		args, _ := json.Marshal([]any{u.Chunks[0], u.Config, "gemini-2.0-flash", "gemini"})
		tasks[i] = producer.Task{Name: "celery_tasks.generate_qa_unified_async", Args: args, Options: producer.Options{Queue: "bench_send"}}
	}
	c := pool.Get()
	defer c.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for start := 0; start < len(tasks); start += 1000 {
			if _, err := client.Send(context.Background(), tasks[start:start+1000]...); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		c.Do("DEL", br.Key("bench_send"))
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(tasks)), "µs/task")
}
