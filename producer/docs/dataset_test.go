package docs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// corpusDir is the sample corpus shared with the pipeline tests.
const corpusDir = "../../testdata/corpus"

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func indices(docs []Document) []int {
	out := make([]int, len(docs))
	for i, d := range docs {
		out[i] = d.Index
	}
	return out
}

func ids(docs []Document) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	return out
}

func TestResolveDatasetFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   []string
		want    string // file name; "" means an error
		wantErr []string
	}{
		{"fixed name", []string{"preprocessed_cc_news.csv", "preprocessed_cc_news_20250101_000000.csv"}, "preprocessed_cc_news.csv", nil},
		{"newest timestamp by name", []string{
			"preprocessed_cc_news_20241231_235959.csv",
			"preprocessed_cc_news_20250102_080000.csv",
			"preprocessed_cc_news_20250101_120000.csv",
		}, "preprocessed_cc_news_20250102_080000.csv", nil},
		{"names without a timestamp ignored", []string{
			"preprocessed_cc_news_20250101_120000.csv",
			"preprocessed_cc_news_backup.csv",        // Python's sort would pick this one
			"preprocessed_cc_news_20250101_1200.csv", // short timestamp
			"preprocessed_cc_news_20250301_120000.csv.bak",
			"cc_news_20250301_120000.txt",
		}, "preprocessed_cc_news_20250101_120000.csv", nil},
		{"other dataset's files", []string{"preprocessed_livedoor.csv", "preprocessed_livedoor_20250101_120000.csv"}, "", []string{
			"dataset cc_news: no preprocessed file: looked for ", filepath.Join("IN", "preprocessed_cc_news.csv"),
			filepath.Join("IN", "preprocessed_cc_news_YYYYMMDD_HHMMSS.csv"),
		}},
		{"missing lists ignored names", []string{"preprocessed_cc_news_old.csv"}, "", []string{
			"(ignored, no timestamp: preprocessed_cc_news_old.csv)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				writeFile(t, dir, f, "Combined_Text\nx\n")
			}
			got, err := ResolveDatasetFile("cc_news", dir)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %s, want an error", got)
				}
				msg := strings.ReplaceAll(err.Error(), dir, "IN")
				for _, w := range tc.wantErr {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q lacks %q", msg, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tc.want); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		_, err := ResolveDatasetFile("livedoor", filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "preprocessed_livedoor.csv") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("unknown dataset", func(t *testing.T) {
		_, err := ResolveDatasetFile("squad", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "wikipedia_ja, japanese_text, cc_news, livedoor") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("default dir is OUTPUT", func(t *testing.T) {
		_, err := ResolveDatasetFile("cc_news", "")
		if err == nil || !strings.Contains(err.Error(), filepath.Join("OUTPUT", "preprocessed_cc_news.csv")) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("testdata livedoor picks the newer file", func(t *testing.T) {
		got, err := ResolveDatasetFile("livedoor", filepath.Join(corpusDir, "OUTPUT"))
		if err != nil || filepath.Base(got) != "preprocessed_livedoor_20250101_120000.csv" {
			t.Errorf("got %s, %v", got, err)
		}
	})
}

// The sample datasets: index labels survive blank rows, doc ids carry up
// to 30 characters of the title.
func TestLoadDatasetTestdata(t *testing.T) {
	out := filepath.Join(corpusDir, "OUTPUT")
	for _, tc := range []struct {
		name    string
		idx     []int
		ids     []string
		lang    string
		skips   []string
		file    string
		textHas string // in the first document
	}{
		{"cc_news", []int{0, 1, 3, 4, 5}, []string{
			"cc_news_0_City Council Approves New Bus ",
			"cc_news_1_Local Bakery Wins Regional Bre",
			"cc_news_3",
			"cc_news_4_Why Small Libraries Still Matt",
			"cc_news_5_Ferry Timetable Changes for th",
		}, "en", []string{"preprocessed_cc_news.csv:4: blank Combined_Text"}, "preprocessed_cc_news.csv", "about 3.5 months. Mr. Patel"},
		{"japanese_text", []int{0, 1, 3, 5}, []string{"japanese_text_0", "japanese_text_1", "japanese_text_3", "japanese_text_5"}, "ja",
			[]string{"preprocessed_japanese_text.csv:4: blank Combined_Text", "preprocessed_japanese_text.csv:6: blank Combined_Text"},
			"preprocessed_japanese_text.csv", "図書館"},
		{"wikipedia_ja", []int{0, 1, 2, 3}, []string{"wikipedia_ja_0_緑茶", "wikipedia_ja_1_三日月湖", "wikipedia_ja_2_和紙", "wikipedia_ja_3_公共図書館"}, "ja", nil,
			"preprocessed_wikipedia_ja.csv", "緑茶 緑茶は、"},
		{"livedoor", []int{0, 1, 2, 3}, []string{
			"livedoor_0_夜行列車が10年ぶりに復活、初便は満席に",
			"livedoor_1_小さな図書館が「何でも貸します」　釣りざおから赤外線カメラま",
			"livedoor_2_和紙職人の冬",
			"livedoor_3_駅前の朝市、今月も行列",
		}, "ja", nil, "preprocessed_livedoor_20250101_120000.csv", "夜行列車"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadDataset(tc.name, out, 0)
			if err != nil {
				t.Fatal(err)
			}
			if c.DatasetType != tc.name || c.Config.Lang != tc.lang || c.Config.Upload {
				t.Errorf("type %q config %+v", c.DatasetType, c.Config)
			}
			if !slices.Equal(indices(c.Docs), tc.idx) {
				t.Errorf("indices %v, want %v", indices(c.Docs), tc.idx)
			}
			if !slices.Equal(ids(c.Docs), tc.ids) {
				t.Errorf("ids %q\nwant %q", ids(c.Docs), tc.ids)
			}
			var skips []string
			for _, s := range c.Skips {
				skips = append(skips, strings.TrimPrefix(s.String(), out+string(filepath.Separator)))
			}
			if !slices.Equal(skips, tc.skips) {
				t.Errorf("skips %q, want %q", skips, tc.skips)
			}
			if len(c.Files) != 1 || filepath.Base(c.Files[0]) != tc.file {
				t.Errorf("files %v", c.Files)
			}
			for _, d := range c.Docs {
				if d.Lang != tc.lang || isBlank(d.Text) || !strings.HasPrefix(d.Source, filepath.Join(out, tc.file)+":") {
					t.Errorf("doc %+v", d)
				}
				if got := DetectLang(d.Text); got != tc.lang {
					t.Errorf("%s: sample text detected as %s", d.ID, got)
				}
			}
			if !strings.Contains(c.Docs[0].Text, tc.textHas) {
				t.Errorf("first text %q", c.Docs[0].Text)
			}
			if c.Total != len(c.Docs) || len(c.Notes) != 0 {
				t.Errorf("total %d notes %v", c.Total, c.Notes)
			}
		})
	}
}

func TestLoadDatasetRules(t *testing.T) {
	type want struct {
		idx   []int
		ids   []string
		texts []string
		src   []string // doc sources as "line"
		skips []string // "line: reason"
		total int
		notes int
		err   string // substring; ":LINE:" checked with the file name
		noDoc bool
	}
	for _, tc := range []struct {
		name    string
		dataset string
		csv     string
		maxDocs int
		want    want
	}{
		{
			name:    "index not reset, blank lines not rows, multi-line records",
			dataset: "cc_news",
			csv: "title,Combined_Text\n" +
				"A,first\n" +
				"\n" + // blank line: not a row
				"B,\n" + // row 1: blank → skipped
				"   \n" + // whitespace-only line: not a row
				"C,\"two\nlines\"\n" + // row 2, lines 6-7
				",  \n" + // row 3: blank text
				",no title\n", // row 4
			want: want{
				idx:   []int{0, 2, 4},
				ids:   []string{"cc_news_0_A", "cc_news_2_C", "cc_news_4"},
				texts: []string{"first", "two\nlines", "no title"},
				src:   []string{"2", "6", "9"},
				skips: []string{"4: blank Combined_Text", "8: blank Combined_Text"},
				total: 3,
			},
		},
		{
			name:    "text kept raw, title sliced to 30 code points",
			dataset: "livedoor",
			csv: "url,title,Combined_Text\n" +
				"u,一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十超過分,  本文  です \n" +
				"u,\" spaced, title \",x\n",
			want: want{
				idx:   []int{0, 1},
				ids:   []string{"livedoor_0_一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十", "livedoor_1_ spaced, title "},
				texts: []string{"  本文  です ", "x"},
				src:   []string{"2", "3"},
				total: 2,
			},
		},
		{
			name:    "BOM and CRLF",
			dataset: "wikipedia_ja",
			csv:     "\ufefftitle,Combined_Text\r\nT,本文\r\n",
			want:    want{idx: []int{0}, ids: []string{"wikipedia_ja_0_T"}, texts: []string{"本文"}, src: []string{"2"}, total: 1},
		},
		{
			name:    "japanese_text ignores titles",
			dataset: "japanese_text",
			csv:     "title,Combined_Text\nT,本文\n",
			want:    want{idx: []int{0}, ids: []string{"japanese_text_0"}, texts: []string{"本文"}, src: []string{"2"}, total: 1},
		},
		{
			name:    "missing title column is a note",
			dataset: "cc_news",
			csv:     "id,Combined_Text\n7,text\n",
			want:    want{idx: []int{0}, ids: []string{"cc_news_0"}, texts: []string{"text"}, src: []string{"2"}, total: 1, notes: 1},
		},
		{
			name:    "max docs after blank filtering",
			dataset: "cc_news",
			csv:     "title,Combined_Text\na,1\nb,\nc,3\nd,\ne,5\nf,\n",
			maxDocs: 2,
			want: want{
				idx: []int{0, 2}, ids: []string{"cc_news_0_a", "cc_news_2_c"}, texts: []string{"1", "3"}, src: []string{"2", "4"},
				skips: []string{"3: blank Combined_Text"}, total: 3,
			},
		},
		{
			name:    "max docs larger than the corpus",
			dataset: "cc_news",
			csv:     "title,Combined_Text\na,1\nb,\n",
			maxDocs: 5,
			want:    want{idx: []int{0}, ids: []string{"cc_news_0_a"}, texts: []string{"1"}, src: []string{"2"}, skips: []string{"3: blank Combined_Text"}, total: 1},
		},
		{
			name:    "no documents",
			dataset: "cc_news",
			csv:     "title,Combined_Text\na,\nb, \n",
			want:    want{skips: []string{"2: blank Combined_Text", "3: blank Combined_Text"}, noDoc: true},
		},
		{name: "no Combined_Text column", dataset: "cc_news", csv: "title,text\na,b\n", want: want{err: ":1: no Combined_Text column (columns: title, text)"}},
		{name: "empty file", dataset: "cc_news", csv: "", want: want{err: ": empty file"}},
		{name: "too many fields", dataset: "cc_news", csv: "title,Combined_Text\na,b\nc,d,e\n", want: want{err: ":3: wrong number of fields: got 3, the header has 2"}},
		{name: "too few fields", dataset: "cc_news", csv: "title,Combined_Text\n\"x\ny\",b\nc\n", want: want{err: ":4: wrong number of fields: got 1, the header has 2"}},
		{name: "bare quote", dataset: "cc_news", csv: "title,Combined_Text\na,b\nc,d \"e\" f\n", want: want{err: ":3:5: bad CSV: bare \" in non-quoted-field"}},
		{name: "unterminated quote", dataset: "cc_news", csv: "title,Combined_Text\na,\"b\nc,d\n", want: want{err: ":3:5: bad CSV: extraneous or missing \" in quoted-field (the quoted field starts on line 2)"}},
		{name: "invalid UTF-8", dataset: "cc_news", csv: "title,Combined_Text\na,b\nc,d\xff\n", want: want{err: ":3:4: invalid UTF-8 (byte 0xFF)"}},
		{name: "Shift_JIS", dataset: "livedoor", csv: "title,Combined_Text\n\x93\xfa\x96\x7b,x\n", want: want{err: ":2:1: invalid UTF-8 (byte 0x93)"}},
		{name: "UTF-16", dataset: "cc_news", csv: "\xff\xfet\x00", want: want{err: ":1:1: file is UTF-16"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "preprocessed_"+tc.dataset+".csv", tc.csv)
			c, err := LoadDataset(tc.dataset, dir, tc.maxDocs)
			w := tc.want
			if w.err != "" {
				var fe *FileError
				if err == nil || !strings.Contains(err.Error(), path+w.err) || !errors.As(err, &fe) || fe.File != path {
					t.Fatalf("err = %v, want %q", err, path+w.err)
				}
				return
			}
			if w.noDoc {
				if !errors.Is(err, ErrNoDocuments) || c == nil || len(c.Docs) != 0 {
					t.Fatalf("err = %v, corpus %+v", err, c)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(indices(c.Docs), w.idx) && len(w.idx)+len(c.Docs) > 0 {
				t.Errorf("indices %v, want %v", indices(c.Docs), w.idx)
			}
			if got := ids(c.Docs); !slices.Equal(got, w.ids) && len(got)+len(w.ids) > 0 {
				t.Errorf("ids %q, want %q", got, w.ids)
			}
			var texts, src []string
			for _, d := range c.Docs {
				texts = append(texts, d.Text)
				src = append(src, strings.TrimPrefix(d.Source, path+":"))
			}
			if !slices.Equal(texts, w.texts) {
				t.Errorf("texts %q, want %q", texts, w.texts)
			}
			if !slices.Equal(src, w.src) {
				t.Errorf("sources %q, want %q", src, w.src)
			}
			var skips []string
			for _, s := range c.Skips {
				skips = append(skips, strings.TrimPrefix(s.String(), path+":"))
			}
			if !slices.Equal(skips, w.skips) {
				t.Errorf("skips %q, want %q", skips, w.skips)
			}
			if c.Total != w.total || len(c.Notes) != w.notes {
				t.Errorf("total %d notes %q", c.Total, c.Notes)
			}
		})
	}
}
