package config

import (
	"bytes"
	"strconv"

	"github.com/qagen/qagen/internal/jsonstr"
)

// Per-dataset settings of the Python system: config.py's
// DatasetConfig.DATASETS as returned by get_dataset_dict, extended by
// a02_make_qa_para.py's _LOCAL_DATASET_EXTENSIONS (title_column; text_column
// and lang re-set to the same values), and a02's synthetic dict for
// --input-file.

// DefaultInputDir is where the preprocessed dataset CSVs are looked for
// (the directory part of the Python config's "file" value).
const DefaultInputDir = "OUTPUT"

// UploadDatasetType is the dataset_type of --input-file runs.
const UploadDatasetType = "custom_upload"

// DatasetConfig is the config dict the producer sends to the workers with
// every task. It marshals to JSON with Python's key order:
//
//	name, icon, description, file, hf_dataset, hf_config, download_url,
//	split, text_field, title_field, text_column, sample_size,
//	min_text_length, chunk_size, qa_per_chunk, lang, title_column
//
// The fields Python declares Optional[str] (file, hf_dataset, hf_config,
// download_url, split, title_field, text_column, title_column) are written
// as JSON null when empty, as Python writes None. When Upload is set only
// the six keys of a02's --input-file dict are written, in its order: name,
// text_column, title_column, lang, chunk_size, qa_per_chunk.
//
// DatasetConfig is a value type: WithLang returns a modified copy and
// leaves the receiver alone.
type DatasetConfig struct {
	Name          string
	Icon          string
	Description   string
	File          string // Optional: "" → null
	HFDataset     string // Optional: "" → null
	HFConfig      string // Optional: "" → null
	DownloadURL   string // Optional: "" → null
	Split         string // Optional: "" → null
	TextField     string
	TitleField    string // Optional: "" → null
	TextColumn    string // Optional: "" → null
	SampleSize    int
	MinTextLength int
	ChunkSize     int
	QAPerChunk    int
	Lang          string
	TitleColumn   string // Optional: "" → null

	// Upload selects the six-key shape of a02's --input-file config.
	Upload bool
}

// The four built-in datasets, in DATASET_CONFIGS order (the order of the
// Python --dataset choices).
var datasets = []struct {
	key string
	cfg DatasetConfig
}{
	{"wikipedia_ja", DatasetConfig{
		Name: "Wikipedia日本語版", Icon: "📚", Description: "Wikipedia日本語版の記事データ（百科事典的知識）",
		File: "OUTPUT/preprocessed_wikipedia_ja.csv", HFDataset: "wikimedia/wikipedia", HFConfig: "20231101.ja",
		Split: "train", TextField: "text", TitleField: "title", TextColumn: "Combined_Text",
		SampleSize: 1000, MinTextLength: 200, ChunkSize: 250, QAPerChunk: 3, Lang: "ja", TitleColumn: "title",
	}},
	{"japanese_text", DatasetConfig{
		Name: "日本語Webテキスト（CC100）", Icon: "📰", Description: "日本語Webテキストコーパス",
		File: "OUTPUT/preprocessed_japanese_text.csv", HFDataset: "range3/cc100-ja",
		Split: "train", TextField: "text", TextColumn: "Combined_Text",
		SampleSize: 1000, MinTextLength: 10, ChunkSize: 200, QAPerChunk: 2, Lang: "ja",
	}},
	{"cc_news", DatasetConfig{
		Name: "CC-News（英語ニュース）", Icon: "🌐", Description: "Common Crawl英語ニュース記事",
		File: "OUTPUT/preprocessed_cc_news.csv", HFDataset: "cc_news",
		Split: "train", TextField: "text", TitleField: "title", TextColumn: "Combined_Text",
		SampleSize: 500, MinTextLength: 100, ChunkSize: 300, QAPerChunk: 5, Lang: "en", TitleColumn: "title",
	}},
	{"livedoor", DatasetConfig{
		Name: "Livedoorニュースコーパス", Icon: "📰", Description: "Livedoorニュース日本語記事（9カテゴリ、全7,376件）",
		File: "OUTPUT/preprocessed_livedoor.csv", DownloadURL: "https://www.rondhuit.com/download/ldcc-20140209.tar.gz",
		TextField: "content", TitleField: "title", TextColumn: "Combined_Text",
		SampleSize: 7376, MinTextLength: 100, ChunkSize: 200, QAPerChunk: 4, Lang: "ja", TitleColumn: "title",
	}},
}

// Dataset returns the settings of a built-in dataset (wikipedia_ja,
// japanese_text, cc_news, livedoor).
func Dataset(name string) (DatasetConfig, bool) {
	for _, d := range datasets {
		if d.key == name {
			return d.cfg, true
		}
	}
	return DatasetConfig{}, false
}

// DatasetNames returns the built-in dataset keys in the Python order.
func DatasetNames() []string {
	names := make([]string, len(datasets))
	for i, d := range datasets {
		names[i] = d.key
	}
	return names
}

// IsDataset reports whether name is a built-in dataset key.
func IsDataset(name string) bool {
	_, ok := Dataset(name)
	return ok
}

// UploadConfig returns a02's config for --input-file: name "ローカルファイル
// ({stem})", text_column "Combined_Text", title_column null, chunk_size 300,
// qa_per_chunk 3, and the given lang (Python always used "ja").
func UploadConfig(stem, lang string) DatasetConfig {
	return DatasetConfig{
		Name:       "ローカルファイル (" + stem + ")",
		TextColumn: "Combined_Text",
		Lang:       lang,
		ChunkSize:  300,
		QAPerChunk: 3,
		Upload:     true,
	}
}

// WithLang returns a copy of c with lang set: the per-document config when
// a document's language differs from the corpus default.
func (c DatasetConfig) WithLang(lang string) DatasetConfig {
	c.Lang = lang
	return c
}

// MarshalJSON writes the Python dict, keys in Python's order (see
// DatasetConfig).
func (c DatasetConfig) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	key := func(k string) {
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(strconv.Quote(k)) // keys are ASCII
		b.WriteString(": ")
	}
	str := func(k, v string) {
		key(k)
		writeJSONString(&b, v)
	}
	opt := func(k, v string) {
		if v == "" {
			key(k)
			b.WriteString("null")
			return
		}
		str(k, v)
	}
	num := func(k string, v int) {
		key(k)
		b.WriteString(strconv.Itoa(v))
	}
	if c.Upload {
		str("name", c.Name)
		opt("text_column", c.TextColumn)
		opt("title_column", c.TitleColumn)
		str("lang", c.Lang)
		num("chunk_size", c.ChunkSize)
		num("qa_per_chunk", c.QAPerChunk)
	} else {
		str("name", c.Name)
		str("icon", c.Icon)
		str("description", c.Description)
		opt("file", c.File)
		opt("hf_dataset", c.HFDataset)
		opt("hf_config", c.HFConfig)
		opt("download_url", c.DownloadURL)
		opt("split", c.Split)
		str("text_field", c.TextField)
		opt("title_field", c.TitleField)
		opt("text_column", c.TextColumn)
		num("sample_size", c.SampleSize)
		num("min_text_length", c.MinTextLength)
		num("chunk_size", c.ChunkSize)
		num("qa_per_chunk", c.QAPerChunk)
		str("lang", c.Lang)
		opt("title_column", c.TitleColumn)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeJSONString writes s as a JSON string without HTML escaping (as
// Python's json.dumps).
func writeJSONString(b *bytes.Buffer, s string) { b.Write(jsonstr.Append(b.AvailableBuffer(), s)) }
