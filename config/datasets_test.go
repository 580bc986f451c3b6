package config

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// jsonKeys returns the keys of a JSON object in document order.
func jsonKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

var pythonKeys = []string{"name", "icon", "description", "file", "hf_dataset", "hf_config", "download_url", "split",
	"text_field", "title_field", "text_column", "sample_size", "min_text_length", "chunk_size", "qa_per_chunk", "lang", "title_column"}

func TestDatasetNames(t *testing.T) {
	want := []string{"wikipedia_ja", "japanese_text", "cc_news", "livedoor"}
	if got := DatasetNames(); !slices.Equal(got, want) {
		t.Fatalf("DatasetNames() = %v, want %v", got, want)
	}
	if _, ok := Dataset("nope"); ok || IsDataset("nope") {
		t.Fatal("unknown dataset found")
	}
	for _, n := range want {
		if !IsDataset(n) {
			t.Errorf("IsDataset(%q) = false", n)
		}
	}
}

// The dicts a02 sends for each dataset, as json.dumps writes them
// (DatasetConfig.get_dataset_dict + _LOCAL_DATASET_EXTENSIONS).
func TestDatasetConfigJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string
	}{
		{"wikipedia_ja", `{"name": "Wikipedia日本語版", "icon": "📚", "description": "Wikipedia日本語版の記事データ（百科事典的知識）", "file": "OUTPUT/preprocessed_wikipedia_ja.csv", "hf_dataset": "wikimedia/wikipedia", "hf_config": "20231101.ja", "download_url": null, "split": "train", "text_field": "text", "title_field": "title", "text_column": "Combined_Text", "sample_size": 1000, "min_text_length": 200, "chunk_size": 250, "qa_per_chunk": 3, "lang": "ja", "title_column": "title"}`},
		{"japanese_text", `{"name": "日本語Webテキスト（CC100）", "icon": "📰", "description": "日本語Webテキストコーパス", "file": "OUTPUT/preprocessed_japanese_text.csv", "hf_dataset": "range3/cc100-ja", "hf_config": null, "download_url": null, "split": "train", "text_field": "text", "title_field": null, "text_column": "Combined_Text", "sample_size": 1000, "min_text_length": 10, "chunk_size": 200, "qa_per_chunk": 2, "lang": "ja", "title_column": null}`},
		{"cc_news", `{"name": "CC-News（英語ニュース）", "icon": "🌐", "description": "Common Crawl英語ニュース記事", "file": "OUTPUT/preprocessed_cc_news.csv", "hf_dataset": "cc_news", "hf_config": null, "download_url": null, "split": "train", "text_field": "text", "title_field": "title", "text_column": "Combined_Text", "sample_size": 500, "min_text_length": 100, "chunk_size": 300, "qa_per_chunk": 5, "lang": "en", "title_column": "title"}`},
		{"livedoor", `{"name": "Livedoorニュースコーパス", "icon": "📰", "description": "Livedoorニュース日本語記事（9カテゴリ、全7,376件）", "file": "OUTPUT/preprocessed_livedoor.csv", "hf_dataset": null, "hf_config": null, "download_url": "https://www.rondhuit.com/download/ldcc-20140209.tar.gz", "split": null, "text_field": "content", "title_field": "title", "text_column": "Combined_Text", "sample_size": 7376, "min_text_length": 100, "chunk_size": 200, "qa_per_chunk": 4, "lang": "ja", "title_column": "title"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := Dataset(tc.name)
			if !ok {
				t.Fatal("not found")
			}
			got, err := json.Marshal(c) // compacted by encoding/json
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, []byte(tc.want)); err != nil {
				t.Fatal(err)
			}
			if string(got) != want.String() {
				t.Errorf("got  %s\nwant %s", got, want.String())
			}
			if k := jsonKeys(t, got); !slices.Equal(k, pythonKeys) {
				t.Errorf("keys %v", k)
			}
			raw, _ := c.MarshalJSON()
			if !strings.Contains(string(raw), `", "icon": "`) {
				t.Errorf("MarshalJSON should use json.dumps separators: %s", raw)
			}
		})
	}
}

func TestUploadConfigJSON(t *testing.T) {
	c := UploadConfig("en", "en")
	got, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"ローカルファイル (en)","text_column":"Combined_Text","title_column":null,"lang":"en","chunk_size":300,"qa_per_chunk":3}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Names with characters encoding/json would HTML-escape by default.
	raw, _ := UploadConfig(`a<b>&"c"`, "ja").MarshalJSON()
	if !strings.Contains(string(raw), `"ローカルファイル (a<b>&\"c\")"`) {
		t.Errorf("name not escaped as Python does: %s", raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m["name"] != `ローカルファイル (a<b>&"c")` {
		t.Errorf("round trip: %v %v", m, err)
	}
}

func TestWithLangCopies(t *testing.T) {
	c, _ := Dataset("cc_news")
	ja := c.WithLang("ja")
	if c.Lang != "en" || ja.Lang != "ja" {
		t.Fatalf("WithLang: orig %q copy %q", c.Lang, ja.Lang)
	}
	if again, _ := Dataset("cc_news"); again.Lang != "en" {
		t.Fatal("WithLang changed the table")
	}
	u := UploadConfig("x", "ja").WithLang("en")
	raw, _ := json.Marshal(u)
	if !strings.Contains(string(raw), `"lang":"en"`) || !u.Upload {
		t.Errorf("upload WithLang: %s", raw)
	}
}

// Dataset returns copies: changing one does not change the table.
func TestDatasetReturnsCopy(t *testing.T) {
	c, _ := Dataset("livedoor")
	c.ChunkSize = 1
	if d, _ := Dataset("livedoor"); d.ChunkSize != 200 {
		t.Fatal("table modified")
	}
}
