package docs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/qagen/qagen/config"
)

// timestamped matches the names the Streamlit UI gives preprocessed files:
// preprocessed_<dataset>_<YYYYMMDD_HHMMSS>.csv.
var timestamped = regexp.MustCompile(`_(\d{8}_\d{6})\.csv$`)

// ResolveDatasetFile returns the preprocessed CSV of a built-in dataset:
// inputDir/preprocessed_<name>.csv if it exists, else the newest
// inputDir/preprocessed_<name>_<YYYYMMDD_HHMMSS>.csv (the last by file
// name). inputDir "" means "OUTPUT". Python globbed
// preprocessed_<name>_*.csv; names that do not carry a timestamp (a
// "_backup" copy, say) are ignored here rather than chosen by the sort, and
// the error for a missing file lists them.
func ResolveDatasetFile(name, inputDir string) (string, error) {
	cfg, ok := config.Dataset(name)
	if !ok {
		return "", fmt.Errorf("unknown dataset %q (one of %s)", name, strings.Join(config.DatasetNames(), ", "))
	}
	if inputDir == "" {
		inputDir = config.DefaultInputDir
	}
	base := filepath.Base(cfg.File) // preprocessed_<name>.csv
	fixed := filepath.Join(inputDir, base)
	switch st, err := os.Stat(fixed); {
	case err == nil && st.Mode().IsRegular():
		return fixed, nil
	case err == nil:
		return "", fmt.Errorf("dataset %s: %s is not a regular file", name, fixed)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("dataset %s: %w", name, err)
	}
	stem := strings.TrimSuffix(base, ".csv")
	pattern := stem + "_YYYYMMDD_HHMMSS.csv"
	entries, err := os.ReadDir(inputDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("dataset %s: input directory %s does not exist (looked for %s and %s; use the input directory option to point elsewhere)",
				name, inputDir, fixed, filepath.Join(inputDir, pattern))
		}
		return "", fmt.Errorf("dataset %s: %w", name, err)
	}
	var found, ignored []string
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, stem+"_") || !strings.HasSuffix(n, ".csv") || e.IsDir() {
			continue
		}
		if m := timestamped.FindStringSubmatchIndex(n); m != nil && m[0] == len(stem) {
			found = append(found, n)
		} else {
			ignored = append(ignored, n)
		}
	}
	if len(found) == 0 {
		msg := fmt.Sprintf("dataset %s: no preprocessed file: looked for %s and %s", name, fixed, filepath.Join(inputDir, pattern))
		if len(ignored) > 0 {
			msg += fmt.Sprintf(" (ignored, no timestamp: %s)", strings.Join(ignored, ", "))
		}
		return "", errors.New(msg + "; create it with the Python download/preprocess step or use the input directory option")
	}
	sort.Strings(found)
	return filepath.Join(inputDir, found[len(found)-1]), nil
}

// LoadDataset loads a built-in dataset (wikipedia_ja, japanese_text,
// cc_news, livedoor) from its preprocessed CSV in inputDir ("" means
// "OUTPUT"), as a02's load_preprocessed_data and create_document_chunks do:
// the Combined_Text column is required; rows whose Combined_Text is blank
// are skipped (reported in Skips) without renumbering the others; doc_id
// carries the first 30 characters of the title column when it has a value;
// every document gets the dataset's language. maxDocs > 0 keeps the first
// maxDocs documents.
func LoadDataset(name, inputDir string, maxDocs int) (*Corpus, error) {
	path, err := ResolveDatasetFile(name, inputDir)
	if err != nil {
		return nil, err
	}
	cfg, _ := config.Dataset(name)
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	t, err := readCSV(path, data)
	if err != nil {
		return nil, err
	}
	if t.empty {
		return nil, fileErrorf(path, 0, 0, "empty file (no header row with a %s column)", cfg.TextColumn)
	}
	textCol := t.col(cfg.TextColumn)
	if textCol < 0 {
		return nil, fileErrorf(path, 1, 0, "no %s column (columns: %s)", cfg.TextColumn, strings.Join(t.cols, ", "))
	}
	corpus := &Corpus{DatasetType: name, Config: cfg}
	c := &collector{files: []string{path}}
	titleCol := -1
	if cfg.TitleColumn != "" {
		if titleCol = t.col(cfg.TitleColumn); titleCol < 0 {
			c.note("%s has no %s column: doc ids carry no titles", path, cfg.TitleColumn)
		}
	}
	for i := range t.rows {
		row := &t.rows[i]
		text, _ := row.value(textCol)
		if isBlank(text) {
			c.skip(source(path, row.line), "blank "+cfg.TextColumn)
			continue
		}
		title, _ := row.value(titleCol)
		c.doc(Document{
			Index:  i,
			ID:     docID(name, i, title, titleCol >= 0),
			Text:   text,
			Title:  title,
			Lang:   cfg.Lang,
			Source: source(path, row.line),
		})
	}
	c.finish(corpus, maxDocs)
	return corpus, noDocuments(corpus, path)
}
