package testenv

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"testing"
)

// ReadJSON decodes the JSON file at path into v and returns its bytes;
// it fails the test when the file is missing or is not valid JSON.
func ReadJSON(t testing.TB, path string, v any) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

// ReadCSV reads the CSV file at path. The Python system's files have no
// byte-order mark, so one is an error.
func ReadCSV(t testing.TB, path string) [][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		t.Errorf("%s starts with a BOM", path)
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}
