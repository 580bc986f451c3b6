package docs

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/qagen/qagen/config"
)

// Document is one document of a corpus.
type Document struct {
	// Index is doc_idx: the pandas index label Python would give the row.
	// Datasets keep the row position in the file (blank rows dropped, index
	// not reset); uploads are numbered 0, 1, 2, … over the kept documents.
	Index int
	// ID is doc_id: "{dataset_type}_{Index}" plus "_{first 30 runes of
	// Title}" when the config has a title column and the value is non-empty.
	ID string
	// Text is the document text (Combined_Text), never blank.
	Text string
	// Title is the title column value (raw). For uploads it is informational
	// only (a "title" column or field, a Markdown heading): upload doc ids
	// never carry titles, as in Python (title_column is null).
	Title string
	// Lang is "en" or "ja": the dataset's language, or for uploads the
	// detected one (DetectLang) unless InputOptions.Lang forces it.
	Lang string
	// Source is where the document starts, "file:line", for messages.
	Source string
}

// Skip is an input item that did not become a document.
type Skip struct {
	Source string // "file:line" or "file"
	Reason string
}

func (s Skip) String() string { return s.Source + ": " + s.Reason }

// Corpus is the result of loading a dataset or an input file.
type Corpus struct {
	// DatasetType is the dataset key, or "custom_upload" for --input-file.
	DatasetType string
	// Config is the dict sent to the workers. For uploads its Lang is the
	// language of most documents (ties: the first document's); use
	// ConfigFor to get a document's own config.
	Config config.DatasetConfig
	// Files are the files read, in reading order.
	Files []string
	// Docs are the documents, at most maxDocs of them.
	Docs []Document
	// Skips are the blank documents and unusable files met before the last
	// kept document (those after the --max-docs cut are not reported).
	Skips []Skip
	// Total is the number of documents before the --max-docs cut.
	Total int
	// Notes are hints worth showing the user (e.g. a dataset file without
	// its title column, a .txt file that looks like paragraphs).
	Notes []string
}

// ConfigFor returns the config to send with d's chunks: Config with d's
// language.
func (c *Corpus) ConfigFor(d Document) config.DatasetConfig {
	if d.Lang == "" || d.Lang == c.Config.Lang {
		return c.Config
	}
	return c.Config.WithLang(d.Lang)
}

// Summary is a one-line account of the load, e.g. "12 documents (en 7, ja
// 5) from 3 files; 2 skipped (blank text 2)".
func (c *Corpus) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d document%s", len(c.Docs), plural(len(c.Docs)))
	if c.Total > len(c.Docs) {
		fmt.Fprintf(&b, " of %d (--max-docs)", c.Total)
	}
	langs := map[string]int{}
	for _, d := range c.Docs {
		langs[d.Lang]++
	}
	if len(langs) > 0 {
		b.WriteString(" (" + countList(langs) + ")")
	}
	fmt.Fprintf(&b, " from %d file%s", len(c.Files), plural(len(c.Files)))
	if len(c.Skips) > 0 {
		reasons := map[string]int{}
		for _, s := range c.Skips {
			reasons[s.Reason]++
		}
		fmt.Fprintf(&b, "; %d skipped (%s)", len(c.Skips), countList(reasons))
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + strconv.Itoa(m[k])
	}
	return strings.Join(parts, ", ")
}

// ErrNoDocuments is wrapped by the error of a load that found no document.
// The corpus is returned along with it so its skips can be reported.
var ErrNoDocuments = errors.New("no documents")

// FileError is a problem at a place in an input file. Its message starts
// with "file:line:col: " (line and column when known; both 1-based, the
// column counted in bytes).
type FileError struct {
	File string
	Line int // 0 if unknown
	Col  int // 0 if unknown
	Err  error
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":" + strconv.Itoa(e.Col))
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

func fileErrorf(file string, line, col int, format string, args ...any) *FileError {
	return &FileError{File: file, Line: line, Col: col, Err: fmt.Errorf(format, args...)}
}

func source(file string, line int) string {
	if line <= 0 {
		return file
	}
	return file + ":" + strconv.Itoa(line)
}

// collector gathers documents and skips in input order and applies the
// --max-docs cut.
type collector struct {
	docs   []Document
	skips  []Skip
	skipAt []int // len(docs) when the skip was met
	notes  []string
	files  []string
}

func (c *collector) doc(d Document) { c.docs = append(c.docs, d) }

func (c *collector) skip(src, reason string) {
	c.skips = append(c.skips, Skip{Source: src, Reason: reason})
	c.skipAt = append(c.skipAt, len(c.docs))
}

func (c *collector) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

// finish fills corpus with the first maxDocs documents (all if maxDocs <=
// 0) and the skips met before the last of them.
func (c *collector) finish(corpus *Corpus, maxDocs int) {
	corpus.Total = len(c.docs)
	corpus.Files = c.files
	corpus.Notes = c.notes
	docs, skips := c.docs, c.skips
	if maxDocs > 0 && len(docs) > maxDocs {
		docs = docs[:maxDocs:maxDocs]
		n := 0
		for n < len(skips) && c.skipAt[n] < maxDocs {
			n++
		}
		skips = skips[:n:n]
	}
	corpus.Docs = docs
	corpus.Skips = skips
}

// noDocuments returns the error for a corpus without documents, nil if
// it has some.
func noDocuments(corpus *Corpus, what string) error {
	if len(corpus.Docs) > 0 {
		return nil
	}
	if len(corpus.Skips) == 0 {
		return fmt.Errorf("%w in %s", ErrNoDocuments, what)
	}
	first := corpus.Skips[0].String()
	return fmt.Errorf("%w in %s: %d item%s skipped (first: %s)", ErrNoDocuments, what, len(corpus.Skips), plural(len(corpus.Skips)), first)
}

// docID is Python's doc_id: f"{dataset_type}_{idx}_{str(title)[:30]}" or
// f"{dataset_type}_{idx}".
func docID(datasetType string, idx int, title string, withTitle bool) string {
	id := datasetType + "_" + strconv.Itoa(idx)
	if withTitle && title != "" {
		id += "_" + firstRunes(title, 30)
	}
	return id
}

// firstRunes is Python's s[:n]: the first n code points.
func firstRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
