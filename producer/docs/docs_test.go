package docs

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/qagen/qagen/config"
)

func TestDocID(t *testing.T) {
	for _, tc := range []struct {
		typ       string
		idx       int
		title     string
		withTitle bool
		want      string
	}{
		{"cc_news", 0, "Daughter Duo is Dancing in The Streets Tonight", true, "cc_news_0_Daughter Duo is Dancing in The"},
		{"cc_news", 12, "", true, "cc_news_12"},
		{"cc_news", 3, "Short", false, "cc_news_3"},
		{"livedoor", 7, "日本語のタイトル", true, "livedoor_7_日本語のタイトル"},
		{"livedoor", 7, "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめも", true, "livedoor_7_あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほ"},
		{"wikipedia_ja", 1, "exactly thirty characters long", true, "wikipedia_ja_1_exactly thirty characters long"},
		{"wikipedia_ja", 1, "😀🎌" + "x", true, "wikipedia_ja_1_😀🎌x"},
		{"custom_upload", 4, "ignored", false, "custom_upload_4"},
	} {
		if got := docID(tc.typ, tc.idx, tc.title, tc.withTitle); got != tc.want {
			t.Errorf("docID(%q, %d, %q) = %q, want %q", tc.typ, tc.idx, tc.title, got, tc.want)
		}
	}
	if got := firstRunes("ab", 0); got != "" {
		t.Errorf("firstRunes(ab, 0) = %q", got)
	}
}

func TestCorpusHelpers(t *testing.T) {
	cfg, _ := config.Dataset("cc_news")
	c := &Corpus{DatasetType: "cc_news", Config: cfg, Files: []string{"f.csv"}, Total: 5,
		Docs:  []Document{{Lang: "en"}, {Lang: "ja"}, {Lang: "en"}},
		Skips: []Skip{{"f.csv:3", "blank Combined_Text"}, {"f.csv:9", "blank Combined_Text"}, {"g", "empty file"}},
	}
	if got, want := c.Summary(), "3 documents of 5 (--max-docs) (en 2, ja 1) from 1 file; 3 skipped (blank Combined_Text 2, empty file 1)"; got != want {
		t.Errorf("Summary() = %q\nwant %q", got, want)
	}
	if got := c.ConfigFor(c.Docs[0]); got != cfg {
		t.Errorf("ConfigFor(en) changed the config")
	}
	if got := c.ConfigFor(c.Docs[1]); got.Lang != "ja" || c.Config.Lang != "en" || got.Name != cfg.Name {
		t.Errorf("ConfigFor(ja) = %+v", got)
	}
	empty := &Corpus{}
	if got := empty.Summary(); got != "0 documents from 0 files" {
		t.Errorf("empty Summary() = %q", got)
	}
	if err := noDocuments(empty, "x"); !errors.Is(err, ErrNoDocuments) || err.Error() != "no documents in x" {
		t.Errorf("noDocuments = %v", err)
	}
	empty.Skips = c.Skips
	if err := noDocuments(empty, "x"); err.Error() != "no documents in x: 3 items skipped (first: f.csv:3: blank Combined_Text)" {
		t.Errorf("noDocuments = %v", err)
	}
	if majorityLang(nil) != "ja" {
		t.Error("majorityLang(nil)")
	}
}

func TestFileError(t *testing.T) {
	base := fs.ErrInvalid
	for _, tc := range []struct {
		e    *FileError
		want string
	}{
		{&FileError{File: "a.csv", Err: base}, "a.csv: invalid argument"},
		{&FileError{File: "a.csv", Line: 3, Err: base}, "a.csv:3: invalid argument"},
		{&FileError{File: "a.csv", Line: 3, Col: 7, Err: base}, "a.csv:3:7: invalid argument"},
	} {
		if tc.e.Error() != tc.want || !errors.Is(tc.e, base) {
			t.Errorf("%q, want %q", tc.e.Error(), tc.want)
		}
	}
}

func TestParseTxtMode(t *testing.T) {
	for in, want := range map[string]TxtMode{"": TxtLines, "line": TxtLines, "file": TxtFile} {
		if got, err := ParseTxtMode(in); err != nil || got != want {
			t.Errorf("ParseTxtMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseTxtMode("lines"); err == nil {
		t.Error("lines accepted")
	}
}
