package docs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/qagen/qagen/config"
)

// TxtMode says how .txt/.text files are split into documents.
type TxtMode string

const (
	// TxtLines makes every non-blank line a document, cleaned with
	// CleanText (Python's loader). The default.
	TxtLines TxtMode = "line"
	// TxtFile makes the whole file one document, keeping its paragraph
	// breaks (as for Markdown files).
	TxtFile TxtMode = "file"
)

// ParseTxtMode parses "line" (or "") and "file".
func ParseTxtMode(s string) (TxtMode, error) {
	switch TxtMode(s) {
	case "", TxtLines:
		return TxtLines, nil
	case TxtFile:
		return TxtFile, nil
	}
	return "", fmt.Errorf("unknown txt mode %q (line or file)", s)
}

// InputOptions tune LoadInput.
type InputOptions struct {
	// TxtMode is TxtLines (default) or TxtFile.
	TxtMode TxtMode
	// Lang "en" or "ja" gives every document that language; "" or "auto"
	// detects it per document (DetectLang).
	Lang string
}

// textCandidates are the columns Python builds Combined_Text from when it
// is absent, first present wins.
var textCandidates = []string{"text", "content", "body", "document", "answer", "question"}

// Extensions LoadInput reads (case-insensitive).
var inputExts = map[string]bool{".csv": true, ".txt": true, ".text": true, ".json": true, ".jsonl": true, ".md": true, ".markdown": true}

// LoadInput loads --input-file: a .csv, .txt/.text, .json, .jsonl or
// .md/.markdown file, or a directory, whose files of those types are read
// recursively in the byte order of their paths (entries whose names start
// with "." are ignored; other files are reported in Skips). See the package
// documentation for each format. The dataset type is "custom_upload";
// documents are numbered 0, 1, 2, … over the whole input; maxDocs > 0
// keeps the first maxDocs documents.
func LoadInput(path string, maxDocs int, opts InputOptions) (*Corpus, error) {
	mode, err := ParseTxtMode(string(opts.TxtMode))
	if err != nil {
		return nil, err
	}
	opts.TxtMode = mode
	switch opts.Lang {
	case "", "auto":
		opts.Lang = ""
	case LangEnglish, LangJapanese:
	default:
		return nil, fmt.Errorf("unsupported language %q (en, ja or auto)", opts.Lang)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	c := &collector{}
	if st.IsDir() {
		err = loadDir(c, path, opts)
	} else {
		ext := strings.ToLower(filepath.Ext(path))
		if !inputExts[ext] {
			return nil, fmt.Errorf("%s: unsupported file type %q (supported: .csv, .txt, .text, .json, .jsonl, .md, .markdown, or a directory)", path, ext)
		}
		err = loadFile(c, path, opts)
	}
	if err != nil {
		return nil, err
	}
	for i := range c.docs {
		d := &c.docs[i]
		d.Index = i
		d.ID = docID(config.UploadDatasetType, i, "", false)
		if d.Lang = opts.Lang; d.Lang == "" {
			d.Lang = DetectLang(d.Text)
		}
	}
	corpus := &Corpus{DatasetType: config.UploadDatasetType}
	c.finish(corpus, maxDocs)
	lang := opts.Lang
	if lang == "" {
		lang = majorityLang(corpus.Docs)
	}
	corpus.Config = config.UploadConfig(pyStem(path), lang)
	return corpus, noDocuments(corpus, path)
}

// majorityLang is the language of most documents; a tie goes to the first
// document's language; no documents gives "ja" (Python's upload default).
func majorityLang(docs []Document) string {
	if len(docs) == 0 {
		return LangJapanese
	}
	n := map[string]int{}
	for _, d := range docs {
		n[d.Lang]++
	}
	best := docs[0].Lang
	for lang, k := range n {
		if k > n[best] {
			best = lang
		}
	}
	return best
}

// pyStem is Python's Path(p).stem: the last element without its last
// suffix (".bashrc" keeps its name).
func pyStem(p string) string {
	base := filepath.Base(p)
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		return base[:i]
	}
	return base
}

func loadDir(c *collector, root string, opts InputOptions) error {
	type entry struct{ rel, path string }
	var files []entry
	hidden := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			hidden++
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, entry{filepath.ToSlash(rel), p})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	if hidden > 0 {
		c.note("%s: ignored hidden files and directories (names starting with \".\"): %d", root, hidden)
	}
	for _, f := range files {
		st, err := os.Stat(f.path) // follows symlinks
		if err != nil {
			return err
		}
		ext := strings.ToLower(filepath.Ext(f.path))
		switch {
		case st.IsDir():
			c.skip(f.path, "symbolic link to a directory (not followed)")
			continue
		case !st.Mode().IsRegular():
			c.skip(f.path, "not a regular file")
			continue
		case ext == "":
			c.skip(f.path, "unsupported file type (no extension)")
			continue
		case !inputExts[ext]:
			c.skip(f.path, fmt.Sprintf("unsupported file type %s", ext))
			continue
		}
		if err := loadFile(c, f.path, opts); err != nil {
			return err
		}
	}
	return nil
}

func loadFile(c *collector, path string, opts InputOptions) error {
	data, err := readFile(path)
	if err != nil {
		return err
	}
	c.files = append(c.files, path)
	var t *table
	switch strings.ToLower(filepath.Ext(path)) {
	case ".txt", ".text":
		if opts.TxtMode == TxtFile {
			loadWholeFile(c, path, data, false)
		} else {
			loadLines(c, path, data)
		}
		return nil
	case ".md", ".markdown":
		loadWholeFile(c, path, data, true)
		return nil
	case ".csv":
		t, err = readCSV(path, data)
	case ".json":
		t, err = readJSON(path, data)
	case ".jsonl":
		t, err = readJSONL(path, data)
	}
	if err != nil {
		return err
	}
	loadTable(c, t)
	return nil
}

// loadTable turns rows into documents as a02's load_uploaded_file does:
// Combined_Text as is when that column exists; else the first present of
// textCandidates, cleaned with CleanText; else all non-missing values
// joined with spaces. A bare JSON string is its own text.
func loadTable(c *collector, t *table) {
	if t.empty {
		c.skip(t.file, "empty file")
		return
	}
	textCol, clean, what := t.col("Combined_Text"), false, "Combined_Text"
	if textCol < 0 {
		for _, name := range textCandidates {
			if textCol = t.col(name); textCol >= 0 {
				clean, what = true, name
				break
			}
		}
	}
	titleCol := t.col("title")
	for i := range t.rows {
		row := &t.rows[i]
		var text, reason string
		switch {
		case row.plain:
			text, reason = row.vals[0], "blank string"
		case textCol >= 0:
			text, _ = row.value(textCol)
			if clean {
				text = CleanText(text)
			}
			reason = fmt.Sprintf("blank %s", what)
		default:
			var parts []string
			for j := range row.vals {
				if v, ok := row.value(j); ok && !isBlank(v) {
					parts = append(parts, v)
				}
			}
			text, reason = strings.Join(parts, " "), "no text in any column"
		}
		if isBlank(text) {
			c.skip(source(t.file, row.line), reason)
			continue
		}
		title, _ := row.value(titleCol)
		c.doc(Document{Text: text, Title: title, Source: source(t.file, row.line)})
	}
}

// loadLines is Python's txt loader: each line stripped, blank lines
// dropped (they separate documents and are not reported), text cleaned.
// When most lines that are followed by another line stop mid-sentence,
// the file is probably wrapped prose and a Note suggests TxtFile.
func loadLines(c *collector, path string, data []byte) {
	n, docs, pairs, continued := 0, 0, 0, 0
	prev := "" // the previous line, stripped; "" after a blank line
	for line := range bytes.Lines(data) {
		n++
		s := trimPy(string(line))
		if s != "" && prev != "" {
			pairs++
			if !endsSentence(prev) {
				continued++
			}
		}
		prev = s
		if s == "" {
			continue
		}
		c.doc(Document{Text: CleanText(s), Source: source(path, n)})
		docs++
	}
	if docs == 0 {
		c.skip(path, "empty file")
		return
	}
	if continued >= 2 && 2*continued >= pairs {
		c.note("%s: %d of its lines stop mid-sentence and continue on the next line, yet each line became a document; use txt mode \"file\" (--txt-mode file) to load the file as one document", path, continued)
	}
}

// endsSentence reports whether a line ends with sentence-final punctuation
// or a closing quote or bracket.
func endsSentence(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return strings.ContainsRune(".!?。！？…\"”'’」』)）:：", r)
}

var (
	headingRE = regexp.MustCompile(`^#{1,6}[ \t]+(.*?)[ \t#]*$`)
	fmTitleRE = regexp.MustCompile(`^title:[ \t]*(.*?)[ \t]*$`)
)

// loadWholeFile makes a file one document: line endings normalised to \n,
// surrounding blank space trimmed, paragraph breaks kept, no CleanText. For
// Markdown a leading YAML front matter block (--- … ---) is dropped, and
// the title is its title: field or else the first heading.
func loadWholeFile(c *collector, path string, data []byte, markdown bool) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	line := 1
	title := ""
	if markdown && strings.HasPrefix(text, "---\n") {
		lines := strings.SplitAfter(text, "\n")
		for i := 1; i < len(lines); i++ {
			l := strings.TrimRight(lines[i], " \t\n")
			if l == "---" || l == "..." {
				for _, fm := range lines[1:i] {
					if m := fmTitleRE.FindStringSubmatch(strings.TrimRight(fm, "\n")); m != nil && title == "" {
						title = strings.Trim(m[1], `"'`)
					}
				}
				text = strings.Join(lines[i+1:], "")
				line += i + 1
				break
			}
		}
	}
	trimmed := strings.TrimLeftFunc(text, isPySpace)
	line += strings.Count(text[:len(text)-len(trimmed)], "\n")
	text = strings.TrimRightFunc(trimmed, isPySpace)
	if text == "" {
		c.skip(path, "empty file")
		return
	}
	if markdown && title == "" {
		for l := range strings.Lines(text) {
			if m := headingRE.FindStringSubmatch(strings.TrimRight(l, "\n")); m != nil {
				title = m[1]
				break
			}
		}
	}
	c.doc(Document{Text: text, Title: title, Source: source(path, line)})
}
