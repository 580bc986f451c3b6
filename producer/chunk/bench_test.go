package chunk

import (
	"strings"
	"sync/atomic"
	"testing"
)

// benchDocs splits a generated corpus of about n bytes into documents.
func benchDocs(text string) []string {
	var docs []string
	for d := range strings.SplitSeq(text, "\n\n\n") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

const benchCorpusBytes = 4 << 20

// benchCase is a corpus of about benchCorpusBytes, chunked with the
// dataset's chunk size.
type benchCase struct {
	name, lang string
	docs       []string
	max        int
}

// benchCases are English (cc_news settings: chunk_size 300) and Japanese
// (wikipedia_ja: 250) documents.
func benchCases() []benchCase {
	return []benchCase{
		{"en", "en", benchDocs(benchEnglish(benchCorpusBytes)), 300},
		{"ja", "ja", benchDocs(benchJapanese(benchCorpusBytes)), 250},
	}
}

// BenchmarkDocument measures chunking throughput (MB/s of input text) on
// about 4 MB of English (cc_news settings: chunk_size 300) and Japanese
// (wikipedia_ja: 250) documents, one goroutine.
func BenchmarkDocument(b *testing.B) {
	tok := cl100k(b)
	c := New(tok)
	for _, bc := range benchCases() {
		docs := bc.docs
		size := 0
		for _, d := range docs {
			size += len(d)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(size))
			chunks := 0
			for b.Loop() {
				chunks = 0
				for i, d := range docs {
					chunks += len(c.Document("doc", i, "bench", bc.lang, d, Options{MaxTokens: bc.max}))
				}
			}
			b.ReportMetric(float64(chunks), "chunks")
		})
	}
}

// BenchmarkDocumentParallel is BenchmarkDocument with documents spread
// over GOMAXPROCS goroutines sharing one Chunker.
func BenchmarkDocumentParallel(b *testing.B) {
	tok := cl100k(b)
	c := New(tok)
	for _, bc := range benchCases() {
		docs := bc.docs
		b.Run(bc.name, func(b *testing.B) {
			var next atomic.Int64
			var bytes atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1)) % len(docs)
					c.Document("doc", i, "bench", bc.lang, docs[i], Options{MaxTokens: bc.max})
					bytes.Add(int64(len(docs[i])))
				}
			})
			b.SetBytes(bytes.Load() / int64(b.N))
		})
	}
}

func BenchmarkMergeSmall(b *testing.B) {
	tok := cl100k(b)
	c := New(tok)
	var all []Chunk
	for i, d := range benchDocs(benchEnglish(1 << 20)) {
		all = append(all, c.Document("doc"+string(rune('a'+i%26)), i, "bench", "en", d, Options{MaxTokens: 300})...)
	}
	b.ResetTimer()
	for b.Loop() {
		c.MergeSmall(all, 150, 400)
	}
	b.ReportMetric(float64(len(all)), "chunks")
}
