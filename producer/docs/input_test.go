package docs

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The sample corpus in every format.
func TestLoadInputTestdata(t *testing.T) {
	for _, tc := range []struct {
		path     string
		mode     TxtMode
		langs    string // per document
		cfgLang  string
		stem     string
		skips    []string
		firstSrc string
		firstHas string
		title0   string
		files    int
	}{
		{"en.csv", "", "eeeeeee", "en", "en", nil, "en.csv:2", "How Green Tea Reaches the Cup Green tea begins", "How Green Tea Reaches the Cup", 1},
		{"ja.csv", "", "jjjjjjj", "ja", "ja", nil, "ja.csv:2", "緑茶ができるまで 緑茶は、", "緑茶ができるまで", 1},
		{"en.txt", "", "eeeeeee", "en", "en", nil, "en.txt:1", "Green tea begins as a shrub", "", 1},
		{"ja.txt", "", "jjjjjjj", "ja", "ja", nil, "ja.txt:1", "緑茶は、摘み取られた", "", 1},
		{"en.txt", TxtFile, "e", "en", "en", nil, "en.txt:1", "Green tea begins as a shrub", "", 1},
		{"en.json", "", "eeeeeee", "en", "en", nil, "en.json:2", "Green tea begins as a shrub", "How Green Tea Reaches the Cup", 1},
		{"ja.jsonl", "", "jjjjjjj", "ja", "ja", nil, "ja.jsonl:1", "緑茶は、摘み取られた", "緑茶ができるまで", 1},
		{"mixed.csv", "", "ejjee", "en", "mixed", []string{"mixed.csv:6: blank body"}, "mixed.csv:2", "Canal boats", "Canal Boats in Winter", 1},
		{"md", "", "eje", "en", "md", nil, filepath.Join("md", "green-tea.md") + ":1", "# How Green Tea Reaches the Cup\n\nGreen tea", "How Green Tea Reaches the Cup", 3},
	} {
		t.Run(tc.path+string(tc.mode), func(t *testing.T) {
			c, err := LoadInput(filepath.Join(corpusDir, tc.path), 0, InputOptions{TxtMode: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			var langs strings.Builder
			for i, d := range c.Docs {
				langs.WriteByte(d.Lang[0])
				if d.Index != i || d.ID != "custom_upload_"+itoa(i) || isBlank(d.Text) {
					t.Errorf("doc %d: %+v", i, d)
				}
			}
			if langs.String() != tc.langs {
				t.Errorf("langs %s, want %s", langs.String(), tc.langs)
			}
			cfg, _ := json.Marshal(c.Config)
			want := `{"name":"ローカルファイル (` + tc.stem + `)","text_column":"Combined_Text","title_column":null,"lang":"` + tc.cfgLang + `","chunk_size":300,"qa_per_chunk":3}`
			if string(cfg) != want || c.DatasetType != "custom_upload" {
				t.Errorf("%s config %s\nwant %s", c.DatasetType, cfg, want)
			}
			var skips []string
			for _, s := range c.Skips {
				skips = append(skips, strings.TrimPrefix(s.String(), corpusDir+"/"))
			}
			if !slices.Equal(skips, tc.skips) {
				t.Errorf("skips %q, want %q", skips, tc.skips)
			}
			d := c.Docs[0]
			if src := strings.TrimPrefix(d.Source, corpusDir+"/"); src != tc.firstSrc {
				t.Errorf("source %s, want %s", src, tc.firstSrc)
			}
			if !strings.HasPrefix(d.Text, tc.firstHas) || d.Title != tc.title0 {
				t.Errorf("first doc %q title %q", d.Text[:min(80, len(d.Text))], d.Title)
			}
			if len(c.Files) != tc.files || len(c.Notes) != 0 {
				t.Errorf("files %v notes %v", c.Files, c.Notes)
			}
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// What each loader makes of small inputs.
func TestLoadInputFormats(t *testing.T) {
	type want struct {
		texts  []string
		titles []string // nil: not checked
		lines  []string // doc sources without the file name
		skips  []string // without the file name
		notes  int
		err    string // substring after the file name; "!" prefix: anywhere
	}
	for _, tc := range []struct {
		name, file, content string
		opts                InputOptions
		want                want
	}{
		// CSV
		{name: "csv Combined_Text raw", file: "a.csv", content: "title,text,Combined_Text\nT,ignored, keep  “as is” \n",
			want: want{texts: []string{" keep  “as is” "}, titles: []string{"T"}, lines: []string{"2"}}},
		{name: "csv text cleaned", file: "a.csv", content: "id,text\n1,\"a\n  b\u3000c “q” ‘s’\"\n2,\n3,  \n",
			want: want{texts: []string{`a b c "q" 's'`}, lines: []string{"2"}, skips: []string{"4: blank text", "5: blank text"}}},
		{name: "csv candidate order", file: "a.csv", content: "question,answer,body\nq,a,b\n",
			want: want{texts: []string{"b"}}},
		{name: "csv answer before question", file: "a.csv", content: "question,answer\nq?,a.\n",
			want: want{texts: []string{"a."}}},
		{name: "csv all columns joined", file: "a.csv", content: "x,y,z\n1,,three four\n,,\n",
			want: want{texts: []string{"1 three four"}, skips: []string{"3: no text in any column"}}},
		{name: "csv BOM", file: "a.csv", content: "\ufefftext\n本文です\n", want: want{texts: []string{"本文です"}}},
		{name: "csv upper-case extension", file: "A.CSV", content: "text\nx\n", want: want{texts: []string{"x"}}},
		{name: "csv header only", file: "a.csv", content: "text\n", want: want{err: "!no documents"}},
		{name: "csv empty file", file: "a.csv", content: " \n", want: want{skips: []string{"empty file"}, err: "!no documents"}},
		{name: "csv bad field count", file: "a.csv", content: "a,b\n1,2\n3\n", want: want{err: ":3: wrong number of fields: got 1, the header has 2"}},
		{name: "csv bad quote", file: "a.csv", content: "a,b\n1,x\"y\n", want: want{err: ":2:4: bad CSV: bare \" in non-quoted-field"}},

		// TXT
		{name: "txt lines", file: "a.txt", content: "  first   line \r\n\n\t\nsecond\u3000line\n   \n“third”",
			want: want{texts: []string{"first line", "second line", `"third"`}, lines: []string{"1", "4", "6"}}},
		{name: "txt .text extension", file: "a.text", content: "x\ny\n", want: want{texts: []string{"x", "y"}}},
		{name: "txt wrapped prose gets a note", file: "a.txt", content: "The river moves\nwhen it floods, and\nthe town moves too.\n\nSecond paragraph\nis here.\n",
			want: want{texts: []string{"The river moves", "when it floods, and", "the town moves too.", "Second paragraph", "is here."}, notes: 1}},
		{name: "txt one sentence per line: no note", file: "a.txt", content: "One.\nTwo!\n\nThree?\nFour。\n",
			want: want{texts: []string{"One.", "Two!", "Three?", "Four。"}}},
		{name: "txt file mode keeps paragraphs", file: "a.txt", content: "\ufeff\n\n  Title line\r\n\r\nFirst  paragraph\r\nwraps.\r\n\r\nSecond.  \n\n",
			opts: InputOptions{TxtMode: TxtFile},
			want: want{texts: []string{"Title line\n\nFirst  paragraph\nwraps.\n\nSecond."}, titles: []string{""}, lines: []string{"3"}}},
		{name: "txt empty", file: "a.txt", content: "\n \n", want: want{skips: []string{"empty file"}, err: "!no documents"}},
		{name: "txt file mode empty", file: "a.txt", content: "", opts: InputOptions{TxtMode: TxtFile}, want: want{skips: []string{"empty file"}, err: "!no documents"}},
		{name: "txt invalid UTF-8", file: "a.txt", content: "ok\nbad \xe3\x81 here\n", want: want{err: ":2:5: invalid UTF-8 (byte 0xE3)"}},

		// Markdown
		{name: "md front matter and title", file: "a.md", content: "---\ntitle: \"From front matter\"\ndate: 2025-01-01\n---\n\n# Heading\n\nPara  one\nwraps.\n\nPara two.\n",
			want: want{texts: []string{"# Heading\n\nPara  one\nwraps.\n\nPara two."}, titles: []string{"From front matter"}, lines: []string{"6"}}},
		{name: "md heading title", file: "a.markdown", content: "Intro text.\n\n## Section ##\n\nBody.\n",
			want: want{texts: []string{"Intro text.\n\n## Section ##\n\nBody."}, titles: []string{"Section"}, lines: []string{"1"}}},
		{name: "md unterminated front matter kept", file: "a.md", content: "---\nnot front matter\n",
			want: want{texts: []string{"---\nnot front matter"}, titles: []string{""}}},
		{name: "md only front matter", file: "a.md", content: "---\ntitle: x\n---\n\n", want: want{skips: []string{"empty file"}, err: "!no documents"}},

		// JSON
		{name: "json list of objects", file: "a.json", content: "[\n  {\"title\": \"A\", \"text\": \"one\\ntwo\"},\n  {\"title\": \"B\", \"text\": null},\n  {\"text\": 3.5},\n  {\"text\": \"  \"}\n]\n",
			want: want{texts: []string{"one two", "3.5"}, titles: []string{"A", ""}, lines: []string{"2", "4"}, skips: []string{"3: blank text", "5: blank text"}}},
		{name: "json list of strings (not cleaned)", file: "a.json", content: `["first\n\npara", "", "second"]`,
			want: want{texts: []string{"first\n\npara", "second"}, lines: []string{"1", "1"}, skips: []string{"1: blank string"}}},
		{name: "json object is one row", file: "a.json", content: "\ufeff\n{\"content\": \"body text\", \"title\": \"T\"}",
			want: want{texts: []string{"body text"}, titles: []string{"T"}, lines: []string{"2"}}},
		{name: "json text column chosen over all rows", file: "a.json", content: `[{"content": "only content"}, {"text": "has text"}]`,
			want: want{texts: []string{"has text"}, skips: []string{"1: blank text"}}},
		{name: "json all values joined in column order", file: "a.json", content: `[{"b": 2, "a": [1, 2]}, {"c": true, "a": {"k": "v"}, "b": null}]`,
			want: want{texts: []string{"2 [1,2]", `{"k":"v"} true`}}},
		{name: "json duplicate keys: last value", file: "a.json", content: `{"text": "old", "text": "new"}`,
			want: want{texts: []string{"new"}}},
		{name: "json syntax error", file: "a.json", content: "[\n  {\"text\": \"a\"},\n  {\"text\": \"b\",}\n]\n", want: want{err: ":3:16: invalid JSON: invalid character '}'"}},
		{name: "json truncated", file: "a.json", content: "[{\"text\": \"a\"}", want: want{err: ":1:15: invalid JSON: unexpected end of JSON input"}},
		{name: "json scalar", file: "a.json", content: "\n\"just a string\"", want: want{err: ":2:1: a JSON file must hold a list or an object, got a string"}},
		{name: "json bad element", file: "a.json", content: "[\"ok\",\n 42]", want: want{err: ":2: element 1: expected a JSON object or a string, got a number"}},
		{name: "json empty list", file: "a.json", content: "[]", want: want{err: "!no documents"}},

		// JSONL
		{name: "jsonl rows", file: "a.jsonl", content: "\ufeff{\"text\": \"one\"}\n\n  \n{\"text\": \"\"}\r\n\"plain\"\n{\"answer\": \"x\"}\n",
			want: want{texts: []string{"one", "plain"}, lines: []string{"1", "5"}, skips: []string{"4: blank text", "6: blank text"}}},
		{name: "jsonl bad line", file: "a.jsonl", content: "{\"text\": \"one\"}\n{\"text\": \"two\"\n", want: want{err: ":2:15: invalid JSON: unexpected end of JSON input"}},
		{name: "jsonl trailing garbage", file: "a.jsonl", content: "{\"text\": \"one\"} x\n", want: want{err: ":1:17: invalid JSON: invalid character 'x' after top-level value"}},
		{name: "jsonl array line", file: "a.jsonl", content: "{\"text\": \"one\"}\n[1]\n", want: want{err: ":2: expected a JSON object or a string, got an array"}},
		{name: "jsonl UTF-16", file: "a.jsonl", content: "\xfe\xff\x00{", want: want{err: ":1:1: file is UTF-16"}},

		// Options
		{name: "unsupported type", file: "a.pdf", content: "%PDF", want: want{err: `: unsupported file type ".pdf"`}},
		{name: "bad txt mode", file: "a.txt", content: "x", opts: InputOptions{TxtMode: "para"}, want: want{err: `!unknown txt mode "para"`}},
		{name: "bad lang", file: "a.txt", content: "x", opts: InputOptions{Lang: "fr"}, want: want{err: `!unsupported language "fr"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), tc.file, tc.content)
			c, err := LoadInput(path, 0, tc.opts)
			w := tc.want
			if w.err != "" {
				ok := err != nil
				if ok && strings.HasPrefix(w.err, "!") {
					ok = strings.Contains(err.Error(), w.err[1:])
				} else if ok {
					ok = strings.HasPrefix(err.Error(), path+w.err)
				}
				if !ok {
					t.Fatalf("err = %v\nwant %s", err, strings.TrimPrefix(w.err, "!"))
				}
				if !errors.Is(err, ErrNoDocuments) {
					return
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var texts, titles, lines, skips []string
			for _, d := range c.Docs {
				texts = append(texts, d.Text)
				titles = append(titles, d.Title)
				lines = append(lines, strings.TrimPrefix(d.Source, path+":"))
			}
			for _, s := range c.Skips {
				skips = append(skips, strings.TrimPrefix(strings.TrimPrefix(s.String(), path), ":"))
				skips[len(skips)-1] = strings.TrimPrefix(skips[len(skips)-1], " ")
			}
			if !slices.Equal(texts, w.texts) {
				t.Errorf("texts %q\nwant  %q", texts, w.texts)
			}
			if w.titles != nil && !slices.Equal(titles, w.titles) {
				t.Errorf("titles %q, want %q", titles, w.titles)
			}
			if w.lines != nil && !slices.Equal(lines, w.lines) {
				t.Errorf("lines %q, want %q", lines, w.lines)
			}
			if !slices.Equal(skips, w.skips) {
				t.Errorf("skips %q, want %q", skips, w.skips)
			}
			if len(c.Notes) != w.notes {
				t.Errorf("notes %q", c.Notes)
			}
		})
	}
}

func TestLoadInputDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "b.txt", "b one\nb two\n")
	writeFile(t, dir, "a/z.md", "# Z\n\nzed\n")
	writeFile(t, dir, "a.csv", "text\ncsv row\n\"\"\n")
	writeFile(t, dir, "a/b/deep.jsonl", "\"深い\"\n")
	writeFile(t, dir, "notes.pdf", "%PDF")
	writeFile(t, dir, "README", "no extension")
	writeFile(t, dir, ".hidden.txt", "secret")
	writeFile(t, dir, ".git/config", "x")
	writeFile(t, dir, "empty.md", "\n")
	if err := os.Symlink(filepath.Join(dir, "b.txt"), filepath.Join(dir, "c-link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "d-link")); err != nil {
		t.Fatal(err)
	}
	c, err := LoadInput(dir, 0, InputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rel := func(s string) string { return strings.TrimPrefix(s, dir+"/") }
	var got []string
	for _, d := range c.Docs {
		got = append(got, itoa(d.Index)+" "+d.ID+" "+d.Lang+" "+rel(d.Source)+" "+d.Text)
	}
	want := []string{
		"0 custom_upload_0 en a.csv:2 csv row",
		"1 custom_upload_1 ja a/b/deep.jsonl:1 深い",
		"2 custom_upload_2 en a/z.md:1 # Z\n\nzed",
		"3 custom_upload_3 en b.txt:1 b one",
		"4 custom_upload_4 en b.txt:2 b two",
		"5 custom_upload_5 en c-link.txt:1 b one",
		"6 custom_upload_6 en c-link.txt:2 b two",
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs\n%q\nwant\n%q", got, want)
	}
	var skips []string
	for _, s := range c.Skips {
		skips = append(skips, rel(s.String()))
	}
	wantSkips := []string{
		"README: unsupported file type (no extension)",
		"a.csv:3: blank text",
		"d-link: symbolic link to a directory (not followed)",
		"empty.md: empty file",
		"notes.pdf: unsupported file type .pdf",
	}
	if !slices.Equal(skips, wantSkips) {
		t.Errorf("skips %q\nwant %q", skips, wantSkips)
	}
	var files []string
	for _, f := range c.Files {
		files = append(files, rel(f))
	}
	if wantFiles := []string{"a.csv", "a/b/deep.jsonl", "a/z.md", "b.txt", "c-link.txt", "empty.md"}; !slices.Equal(files, wantFiles) {
		t.Errorf("files %q, want %q", files, wantFiles)
	}
	if len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "ignored hidden files and directories") || !strings.HasSuffix(c.Notes[0], ": 2") {
		t.Errorf("notes %q", c.Notes)
	}
	if c.Config.Name != "ローカルファイル ("+filepath.Base(dir)+")" || c.Config.Lang != "en" {
		t.Errorf("config %+v", c.Config)
	}
	// A broken file anywhere fails the load, naming it.
	writeFile(t, dir, "zz.jsonl", "{\n")
	if _, err := LoadInput(dir, 0, InputOptions{}); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "zz.jsonl")+":1:") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadInputMaxDocs(t *testing.T) {
	path := writeFile(t, t.TempDir(), "a.jsonl", `"a"`+"\n"+`""`+"\n"+`"b"`+"\n"+`""`+"\n"+`"c"`+"\n")
	for _, tc := range []struct {
		max   int
		texts string
		skips int
	}{
		{0, "abc", 2}, {-1, "abc", 2}, {1, "a", 0}, {2, "ab", 1}, {3, "abc", 2}, {10, "abc", 2},
	} {
		c, err := LoadInput(path, tc.max, InputOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var texts string
		for i, d := range c.Docs {
			texts += d.Text
			if d.Index != i {
				t.Errorf("max %d: index %d at %d", tc.max, d.Index, i)
			}
		}
		if texts != tc.texts || len(c.Skips) != tc.skips || c.Total != 3 {
			t.Errorf("max %d: texts %q skips %v total %d", tc.max, texts, c.Skips, c.Total)
		}
	}
}

func TestLoadInputLang(t *testing.T) {
	path := writeFile(t, t.TempDir(), "mixed.txt", "これは日本語の文です。\nThis is English.\n日本語がもう一行。\nEnglish again, with 東京.\n")
	for _, tc := range []struct {
		lang, want, cfg string
	}{
		{"", "jeje", "ja"}, // tie: the first document's language
		{"auto", "jeje", "ja"},
		{"en", "eeee", "en"},
		{"ja", "jjjj", "ja"},
	} {
		c, err := LoadInput(path, 0, InputOptions{Lang: tc.lang})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, d := range c.Docs {
			got += d.Lang[:1]
			if cfg := c.ConfigFor(d); cfg.Lang != d.Lang || !cfg.Upload || cfg.Name != c.Config.Name {
				t.Errorf("ConfigFor(%s) = %+v", d.Lang, cfg)
			}
		}
		if got != tc.want || c.Config.Lang != tc.cfg {
			t.Errorf("lang %q: docs %s config %s", tc.lang, got, c.Config.Lang)
		}
	}
	c, _ := LoadInput(path, 1, InputOptions{}) // majority of the kept documents
	if c.Config.Lang != "ja" {
		t.Errorf("max 1: config lang %s", c.Config.Lang)
	}
	path2 := writeFile(t, t.TempDir(), "x.txt", "English first.\n日本語。\n日本語２。\n")
	if c, _ := LoadInput(path2, 0, InputOptions{}); c.Config.Lang != "ja" {
		t.Errorf("majority: %s", c.Config.Lang)
	}
}

func TestLoadInputMissing(t *testing.T) {
	_, err := LoadInput(filepath.Join(t.TempDir(), "nope.csv"), 0, InputOptions{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.csv") {
		t.Errorf("err = %v", err)
	}
}

func TestPyStem(t *testing.T) {
	for in, want := range map[string]string{
		"a/b/data.csv": "data", "data.tar.gz": "data.tar", ".bashrc": ".bashrc", "dir/": "dir", "corpus.d/": "corpus", "x": "x", "ファイル.txt": "ファイル",
	} {
		if got := pyStem(in); got != want {
			t.Errorf("pyStem(%q) = %q, want %q", in, got, want)
		}
	}
}

// The sample files cover both BOM cases.
func TestTestdataBOM(t *testing.T) {
	for f, bom := range map[string]bool{
		"ja.csv": true, "en.csv": false,
		"OUTPUT/preprocessed_livedoor_20250101_120000.csv": true,
		"OUTPUT/preprocessed_cc_news.csv":                  false,
	} {
		data, err := os.ReadFile(filepath.Join(corpusDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.HasPrefix(string(data), "\ufeff"); got != bom {
			t.Errorf("%s: BOM %v, want %v", f, got, bom)
		}
	}
}
