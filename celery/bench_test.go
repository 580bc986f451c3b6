package celery_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/qagen/qagen/celery"
)

func prodArgsEnvelope(b *testing.B) []byte {
	return readFile(b, filepath.Join(fixtureDir(b, "celery-5.5.3", "broker"), "prod_v2_args.json"))
}

func BenchmarkDecodeTask(b *testing.B) {
	raw := prodArgsEnvelope(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := celery.DecodeTask(raw, celery.DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeTask(b *testing.B) {
	decoded, err := celery.DecodeTask(prodArgsEnvelope(b), celery.DecodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	// A fresh producer-side message: no inherited headers or raw embed, so
	// argsrepr/kwargsrepr are computed like in a real publish.
	fresh := func() *celery.TaskMessage {
		return &celery.TaskMessage{
			ID: decoded.ID, Task: decoded.Task, Args: decoded.Args, Kwargs: decoded.Kwargs,
			DeliveryInfo: decoded.DeliveryInfo, DeliveryTag: decoded.DeliveryTag, ReplyTo: decoded.ReplyTo,
		}
	}
	for _, c := range []struct {
		name string
		opts celery.EncodeOptions
	}{{"v2", celery.EncodeOptions{}}, {"v2-gzip", celery.EncodeOptions{Compression: "gzip"}}, {"v1", celery.EncodeOptions{Protocol: 1}}} {
		b.Run(c.name, func(b *testing.B) {
			m := fresh()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := celery.EncodeTask(m, c.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkResultMarshal(b *testing.B) {
	r, err := celery.ParseResult(readFile(b, filepath.Join(fixtureDir(b, "celery-5.5.3", "result"), "prod_failure_fail.json")))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResultAppendJSON(b *testing.B) {
	r, err := celery.ParseResult(readFile(b, filepath.Join(fixtureDir(b, "celery-5.5.3", "result"), "prod_failure_fail.json")))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
}
