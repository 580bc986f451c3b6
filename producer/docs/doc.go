// Package docs loads the documents qagen generates Q&A pairs from: a
// built-in dataset's preprocessed CSV (--dataset) or local files
// (--input-file), as a02_make_qa_para.py's load_preprocessed_data,
// load_uploaded_file and the document loop of create_document_chunks do,
// with the deviations listed below.
//
// # API
//
//	LoadDataset(name, inputDir string, maxDocs int) (*Corpus, error)
//	LoadInput(path string, maxDocs int, opts InputOptions) (*Corpus, error)
//	ResolveDatasetFile(name, inputDir string) (string, error)
//	DetectLang(text string) string  // "en" or "ja"
//	CleanText(s string) string      // helper_rag.clean_text
//
// A Corpus holds the dataset type ("cc_news", …, or "custom_upload"), the
// config dict sent to the workers (config.DatasetConfig, JSON in Python's
// key order), the Documents (Index = doc_idx, ID = doc_id, Text, Title,
// Lang, Source "file:line"), the Skips (blank documents, unusable files,
// each with "file:line" and a reason), the files read, Total (documents
// before the --max-docs cut) and Notes (hints for the user). Corpus.ConfigFor
// returns a document's config: the corpus config with the document's
// language. Summary gives a one-line account for logs.
//
// Errors: a broken input is a *FileError whose message starts with
// "file:line:col: ". A load that yields no document returns the Corpus
// (with its Skips) and an error wrapping ErrNoDocuments — Python exits 1
// on an empty chunk list too.
//
// # Datasets
//
// The file is inputDir/preprocessed_<name>.csv, else the newest
// inputDir/preprocessed_<name>_<YYYYMMDD_HHMMSS>.csv by file name (names
// without that timestamp are ignored; Python's glob would have taken them);
// inputDir defaults to "OUTPUT". The Combined_Text column is required, the
// config's title column (title; none for japanese_text) is optional. Index
// is the pandas row label: the position of the row among the CSV records,
// blank lines not counted; rows with a blank Combined_Text are skipped
// (and reported) without renumbering the rest. doc_id is
// "{dataset}_{index}_{title[:30]}" (30 code points of the raw title) when
// the title cell is non-empty, else "{dataset}_{index}". Every document
// has the dataset's language. The config's "file" stays Python's value
// ("OUTPUT/preprocessed_<name>.csv") whatever file was read.
//
// # Input files
//
// By extension, case-insensitive:
//
//   - .csv: a header row and one document per record. The text is the
//     Combined_Text column as is; without it, the first present of the
//     columns text, content, body, document, answer, question, cleaned
//     with CleanText; without those, all non-empty cells joined with
//     spaces. A title column, if any, fills Document.Title.
//   - .json: a list whose elements (objects or strings) are rows, or one
//     object, one row. Columns are the union of the object keys in order of
//     first appearance and the text is chosen as for CSV; a string element
//     is its own text. Numbers keep their JSON spelling, nested values
//     become compact JSON, null is missing.
//   - .jsonl: one JSON object or string per non-blank line, as .json.
//   - .txt, .text: with TxtMode "line" (the default, Python's rule) one
//     document per non-blank line, stripped and cleaned; with TxtMode
//     "file" the whole file is one document with its paragraph breaks
//     kept. Line mode is kept as the default because it is what the Python
//     loader does and what one-document-per-line exports need; when most
//     lines of a file stop mid-sentence and continue on the next line
//     (wrapped prose), a Note suggests the file mode.
//   - .md, .markdown: the whole file is one document, paragraph breaks kept
//     (so the chunker can split at them), CleanText not applied; a leading
//     YAML front matter block is dropped; Title is its title: field or the
//     first heading.
//   - a directory: every file of those types below it, in the byte order
//     of the slash-separated relative paths; names starting with "." are
//     ignored (counted in a Note); other files and symbolic links to
//     directories (not followed) are reported as Skips.
//
// Documents are numbered 0, 1, 2, … over the whole input after blank
// ones are dropped (Python's reset_index); doc_id is "custom_upload_{index}"
// (title_column is null for uploads). Each document's language is
// DetectLang of its text unless InputOptions.Lang forces one; the config
// is a02's {name: "ローカルファイル ({stem})", text_column: "Combined_Text",
// title_column: null, lang, chunk_size: 300, qa_per_chunk: 3} with lang
// the language of most documents (a tie: the first document's).
//
// # Language
//
// DetectLang says "ja" when at least 20% of the letters are Japanese
// script (kana, kanji, full-width Latin), else "en" — also for text
// without letters. Letters, not words, are counted, so Japanese prose with
// English terms stays "ja" and English prose quoting a Japanese name stays
// "en"; very short texts are decided by their few letters ("はい" is ja,
// "OK" is en).
//
// # Errors and skips
//
//   - A file that is not UTF-8 is an error naming the line and column of
//     the first bad byte (a Shift_JIS or UTF-16 file would otherwise lose
//     most of its text silently). A UTF-8 byte order mark is dropped in every
//     format (Python kept it in .txt and failed on it in .json).
//   - CSV: a record with more or fewer fields than the header, a bare quote
//     in an unquoted field or an unterminated quoted field is an error with
//     file:line:col (pandas pads short rows and accepts bare quotes).
//     Blank and whitespace-only lines between records are not rows, as in
//     pandas.
//   - JSON/JSONL: a syntax error is an error with file:line:col; an element
//     that is neither an object nor a string is an error with its line.
//   - Skipped and reported: rows, objects and strings whose text is blank
//     (missing, null or white space — Python's "nan" documents are not
//     produced), empty files, and in a directory the files of other types.
//     Blank lines of .txt/.jsonl files separate items and are not
//     reported. Skips after the --max-docs cut are not reported.
//
// Deviations from pandas kept on purpose: cells such as "NA", "null" or
// "None" are text, not missing values; column types are not inferred (a
// title "2019" stays "2019").
//
// --max-docs: maxDocs > 0 keeps the first maxDocs documents after blank
// filtering (Python's df.head); the whole input is still read and checked.
// Files are read whole into memory.
package docs
