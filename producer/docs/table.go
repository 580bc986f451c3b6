package docs

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// table is a CSV file or a list of JSON rows, the way pandas would see it:
// columns in order of first appearance and, per row, the cell values with
// a flag for missing ones (an empty CSV cell, a JSON null or absent key —
// pandas' NaN).
type table struct {
	file string
	cols []string
	rows []tableRow
	// empty is set for a file with no content at all.
	empty bool
}

type tableRow struct {
	line int // 1-based line where the row starts
	vals []string
	has  []bool
	// plain is set for a JSON string element: its text is vals[0] and it
	// has no columns.
	plain bool
}

// col returns the index of the first column named name, or -1.
func (t *table) col(name string) int {
	for i, c := range t.cols {
		if c == name {
			return i
		}
	}
	return -1
}

// value returns row r's value in column i ("" when missing or i < 0).
func (r *tableRow) value(i int) (string, bool) {
	if i < 0 || r.plain || i >= len(r.vals) || !r.has[i] {
		return "", false
	}
	return r.vals[i], true
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// readFile reads a text file: UTF-8, with or without a byte order mark
// (dropped). Bytes that are not UTF-8 are an error naming the line.
func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return checkText(path, data)
}

func checkText(path string, data []byte) ([]byte, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return nil, fileErrorf(path, 1, 1, "file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8")
	}
	if utf8.Valid(data) {
		return data, nil
	}
	off := 0
	for off < len(data) {
		r, n := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		off += n
	}
	line, col := lineCol(data, off)
	return nil, fileErrorf(path, line, col, "invalid UTF-8 (byte 0x%02X): the file must be UTF-8 (convert it, e.g. iconv -f SHIFT_JIS -t UTF-8)", data[off])
}

// lineCol returns the 1-based line and byte column of offset off.
func lineCol(data []byte, off int) (int, int) {
	off = min(off, len(data))
	before := data[:off]
	line := 1 + bytes.Count(before, []byte{'\n'})
	col := off - bytes.LastIndexByte(before, '\n')
	return line, col
}

// lineCounter turns increasing offsets into line numbers in one pass.
type lineCounter struct {
	data []byte
	off  int
	line int
}

func (c *lineCounter) lineAt(off int) int {
	if c.line == 0 {
		c.line = 1
	}
	if off < c.off { // not expected; recount
		c.off, c.line = 0, 1
	}
	off = min(off, len(c.data))
	c.line += bytes.Count(c.data[c.off:off], []byte{'\n'})
	c.off = off
	return c.line
}

// readCSV parses a CSV file as pandas.read_csv does with its defaults: a
// header row, "," separators, "" quoting; blank and whitespace-only lines
// between records are not rows. Deviations (all reported as errors with
// file:line): a row with more or fewer fields than the header (pandas pads
// short rows), a bare or unterminated quote.
func readCSV(file string, data []byte) (*table, error) {
	t := &table{file: file}
	if isBlankBytes(data) {
		t.empty = true
		return t, nil
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, csvError(file, err)
	}
	t.cols = header
	prev := r.InputOffset()
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(file, err)
		}
		off := r.InputOffset()
		raw := data[prev:off]
		prev = off
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && isBlankBytes(raw) {
			continue // a whitespace-only line: pandas skips it
		}
		if len(rec) != len(header) {
			return nil, fileErrorf(file, line, 0, "wrong number of fields: got %d, the header has %d", len(rec), len(header))
		}
		row := tableRow{line: line, vals: rec, has: make([]bool, len(rec))}
		for i, v := range rec {
			row.has[i] = v != "" // pandas reads an empty cell as NaN
		}
		t.rows = append(t.rows, row)
	}
	return t, nil
}

func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrQuote) && pe.StartLine != pe.Line {
			msg += fmt.Sprintf(" (the quoted field starts on line %d)", pe.StartLine)
		}
		return fileErrorf(file, pe.Line, pe.Column, "bad CSV: %s", msg)
	}
	return &FileError{File: file, Err: err}
}

// jsonRows builds a table from JSON values (objects and strings) the way
// pd.DataFrame(list) does: the columns are the union of the object keys
// in order of first appearance.
type jsonRows struct {
	t      *table
	colIdx map[string]int
	fields [][]jsonField // per row; nil for plain rows
}

type jsonField struct {
	key string
	val string
	has bool
}

func newJSONRows(file string) *jsonRows {
	return &jsonRows{t: &table{file: file}, colIdx: map[string]int{}}
}

// add adds the JSON value raw (valid JSON, no surrounding white space)
// found at line; prefix starts its error messages ("element 3: " or "").
func (j *jsonRows) add(raw []byte, line int, prefix string) error {
	switch raw[0] {
	case '{':
		fields := objectFields(raw)
		for _, f := range fields {
			if _, ok := j.colIdx[f.key]; !ok {
				j.colIdx[f.key] = len(j.t.cols)
				j.t.cols = append(j.t.cols, f.key)
			}
		}
		j.t.rows = append(j.t.rows, tableRow{line: line})
		j.fields = append(j.fields, fields)
	case '"':
		j.t.rows = append(j.t.rows, tableRow{line: line, vals: []string{jsonString(raw)}, has: []bool{true}, plain: true})
		j.fields = append(j.fields, nil)
	default:
		return fileErrorf(j.t.file, line, 0, "%sexpected a JSON object or a string, got %s", prefix, jsonKind(raw))
	}
	return nil
}

// table aligns the rows with the columns.
func (j *jsonRows) table() *table {
	for i := range j.t.rows {
		row := &j.t.rows[i]
		if row.plain {
			continue
		}
		row.vals = make([]string, len(j.t.cols))
		row.has = make([]bool, len(j.t.cols))
		for _, f := range j.fields[i] {
			c := j.colIdx[f.key]
			row.vals[c], row.has[c] = f.val, f.has
		}
	}
	return j.t
}

// The scanners below walk JSON that json.Valid has accepted, so they do
// not check syntax.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanString returns the end of the string starting at b[i] == '"'.
func scanString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// scanValue returns the end of the value starting at b[i].
func scanValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = scanString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
		i++
	}
	return i
}

// jsonString decodes a JSON string literal.
func jsonString(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]) // no escapes; the file is UTF-8
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// elements returns the start and end offsets of the elements of the array
// at b[i] == '['.
func elements(b []byte, i int) [][2]int {
	var out [][2]int
	i = skipSpace(b, i+1)
	for b[i] != ']' {
		end := scanValue(b, i)
		out = append(out, [2]int{i, end})
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return out
}

// objectFields returns the members of a JSON object in order. A repeated key
// keeps its first position and its last value (as Python's json).
func objectFields(raw []byte) []jsonField {
	var fields []jsonField
	var seen map[string]int
	i := skipSpace(raw, 1)
	for raw[i] != '}' {
		end := scanString(raw, i)
		key := jsonString(raw[i:end])
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // ':'
		end = scanValue(raw, i)
		val, has := jsonText(raw[i:end])
		i = skipSpace(raw, end)
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		if k, ok := seen[key]; ok {
			fields[k].val, fields[k].has = val, has
			continue
		}
		if seen == nil {
			seen = map[string]int{}
		}
		seen[key] = len(fields)
		fields = append(fields, jsonField{key: key, val: val, has: has})
	}
	return fields
}

// jsonText is a JSON value as a cell: a string as is, a number as written,
// true/false, nested arrays and objects as compact JSON; null is missing.
func jsonText(v []byte) (string, bool) {
	switch v[0] {
	case 'n':
		return "", false
	case '"':
		return jsonString(v), true
	case '{', '[':
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return b.String(), true
		}
	}
	return string(v), true
}

func jsonKind(v []byte) string {
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// jsonSyntaxError returns the error for invalid JSON data[base:end] as a
// FileError with line and column.
func jsonSyntaxError(file string, data []byte, base, end int) error {
	var v any
	err := json.Unmarshal(data[base:end], &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := base + int(se.Offset)
		if off > base && !strings.HasPrefix(se.Error(), "unexpected end") {
			off-- // Offset is just past the offending byte
		}
		line, col := lineCol(data, off)
		return fileErrorf(file, line, col, "invalid JSON: %v", se)
	}
	line, col := lineCol(data, base)
	return fileErrorf(file, line, col, "invalid JSON: %v", err)
}

// readJSON parses a .json file: a list (each object or string a row) or an
// object (one row).
func readJSON(file string, data []byte) (*table, error) {
	if isBlankBytes(data) {
		return &table{file: file, empty: true}, nil
	}
	if !json.Valid(data) {
		return nil, jsonSyntaxError(file, data, 0, len(data))
	}
	start := skipSpace(data, 0)
	j := newJSONRows(file)
	switch data[start] {
	case '{':
		if err := j.add(data[start:scanValue(data, start)], lineAt(data, start), ""); err != nil {
			return nil, err
		}
	case '[':
		lines := &lineCounter{data: data}
		for i, el := range elements(data, start) {
			if err := j.add(data[el[0]:el[1]], lines.lineAt(el[0]), fmt.Sprintf("element %d: ", i)); err != nil {
				return nil, err
			}
		}
	default:
		line, col := lineCol(data, start)
		return nil, fileErrorf(file, line, col, "a JSON file must hold a list or an object, got %s", jsonKind(data[start:]))
	}
	return j.table(), nil
}

func lineAt(data []byte, off int) int {
	line, _ := lineCol(data, off)
	return line
}

// readJSONL parses a .jsonl file: one JSON object or string per non-blank
// line.
func readJSONL(file string, data []byte) (*table, error) {
	if isBlankBytes(data) {
		return &table{file: file, empty: true}, nil
	}
	j := newJSONRows(file)
	off := 0
	for n := 1; off < len(data); n++ {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off
		}
		line := data[off:end]
		if !isBlankBytes(line) {
			if !json.Valid(line) {
				return nil, jsonSyntaxError(file, data, off, end)
			}
			if err := j.add(bytes.TrimSpace(line), n, ""); err != nil {
				return nil, err
			}
		}
		off = end + 1
	}
	return j.table(), nil
}
