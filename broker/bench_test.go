package broker_test

import (
	"strconv"
	"testing"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/internal/testenv"
)

// BenchmarkFetchAck measures the consume path per message: Fetch in
// batches of 64 (pop + unacked registration in one script) and one Settle
// per batch. The messages are published before the timer starts.
func BenchmarkFetchAck(b *testing.B) {
	pool, _ := redisPool(b)
	br := broker.New(pool, broker.Options{KeyPrefix: testenv.Prefix(b)})
	queues := []string{"bench"}
	const chunk = 1000
	msgs := make([]broker.Message, 0, chunk)
	for i := 0; i < b.N; i++ {
		msgs = append(msgs, broker.Message{Queue: "bench", Body: envelope("tag-"+strconv.Itoa(i), "", "bench", 0)})
		if len(msgs) == chunk || i == b.N-1 {
			if err := br.Publish(ctx(), msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	settlements := make([]broker.Settlement, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for got := 0; got < b.N; {
		ds, err := br.Fetch(ctx(), queues, 64)
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) == 0 {
			b.Fatalf("queue empty after %d of %d", got, b.N)
		}
		settlements = settlements[:0]
		for _, d := range ds {
			settlements = append(settlements, broker.Settlement{Tag: d.Tag})
		}
		if err := br.Settle(ctx(), settlements); err != nil {
			b.Fatal(err)
		}
		got += len(ds)
	}
	b.StopTimer()
	if n, err := br.UnackedCount(ctx()); err != nil || n != 0 {
		b.Fatalf("UnackedCount = %d, %v", n, err)
	}
}
