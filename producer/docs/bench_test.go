package docs

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchTexts are the sample documents, English and Japanese.
func benchTexts(b *testing.B) []string {
	b.Helper()
	var texts []string
	for _, f := range []string{"en.txt", "ja.txt"} {
		c, err := LoadInput(filepath.Join(corpusDir, f), 0, InputOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range c.Docs {
			texts = append(texts, d.Text)
		}
	}
	return texts
}

// benchCorpus writes n documents cycling through the samples in the given
// format and returns the file and its size.
func benchCorpus(b *testing.B, dir, format string, n int) (string, int64) {
	b.Helper()
	texts := benchTexts(b)
	var sb strings.Builder
	switch format {
	case "csv":
		w := csv.NewWriter(&sb)
		_ = w.Write([]string{"title", "text", "url", "Combined_Text"})
		for i := range n {
			t := texts[i%len(texts)]
			title := fmt.Sprintf("Title %d %s", i, string([]rune(t)[:20]))
			_ = w.Write([]string{title, t, fmt.Sprintf("https://example.com/%d", i), title + " " + t})
		}
		w.Flush()
	case "jsonl":
		for i := range n {
			line, _ := json.Marshal(map[string]any{"id": i, "title": fmt.Sprint("T", i), "text": texts[i%len(texts)]})
			sb.Write(line)
			sb.WriteByte('\n')
		}
	case "txt":
		for i := range n {
			sb.WriteString(texts[i%len(texts)])
			sb.WriteByte('\n')
		}
	}
	name := map[string]string{"csv": "preprocessed_cc_news.csv", "jsonl": "bench.jsonl", "txt": "bench.txt"}[format]
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path, int64(sb.Len())
}

// BenchmarkLoadDataset: a 5,000-row preprocessed CSV (≈ 5 MB, the size of
// the real cc_news/livedoor files), read, checked and turned into
// documents.
func BenchmarkLoadDataset(b *testing.B) {
	dir := b.TempDir()
	_, size := benchCorpus(b, dir, "csv", 5000)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		c, err := LoadDataset("cc_news", dir, 0)
		if err != nil || len(c.Docs) != 5000 {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadInput: uploads, with per-document language detection and
// (csv/jsonl/txt) CleanText.
func BenchmarkLoadInput(b *testing.B) {
	for _, format := range []string{"csv", "jsonl", "txt"} {
		b.Run(format, func(b *testing.B) {
			path, size := benchCorpus(b, b.TempDir(), format, 5000)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				c, err := LoadInput(path, 0, InputOptions{})
				if err != nil || len(c.Docs) != 5000 {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDetectLang(b *testing.B) {
	texts := benchTexts(b)
	var size int64
	for _, t := range texts {
		size += int64(len(t))
	}
	b.SetBytes(size)
	for b.Loop() {
		for _, t := range texts {
			DetectLang(t)
		}
	}
}

func BenchmarkCleanText(b *testing.B) {
	texts := benchTexts(b)
	var size int64
	for _, t := range texts {
		size += int64(len(t))
	}
	b.SetBytes(size)
	for b.Loop() {
		for _, t := range texts {
			CleanText(t)
		}
	}
}
