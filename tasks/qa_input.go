package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// chunkInput is the part of a02's chunk dict the task reads. Other keys
// (type, sentences, doc_idx, merged, original_chunks) are accepted and
// ignored.
type chunkInput struct {
	ID          string
	Text        string
	Tokens      int
	DocID       any // string as a02 sends it; passed through as given
	DatasetType any
	ChunkIdx    json.RawMessage // int, or "3-4" for merged chunks
}

// configInput is the part of the dataset config dict the task reads.
type configInput struct {
	Lang       string
	QAPerChunk int
}

// errInput marks input that cannot be processed; the task fails fast on
// it, without an LLM call and without retries.
var errInput = errors.New("invalid task input")

func inputError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInput, fmt.Sprintf(format, args...))
}

func jsonKind(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "" || s == "null":
		return "null"
	case s[0] == '"':
		return "a string"
	case s[0] == '{':
		return "an object"
	case s[0] == '[':
		return "a list"
	case s == "true" || s == "false":
		return "a boolean"
	}
	return "a number"
}

// parseChunk checks a chunk dict. text and id are required strings; tokens
// defaults to 100 as in the Python worker.
func parseChunk(raw json.RawMessage, what string) (chunkInput, error) {
	var c chunkInput
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return c, inputError("%s must be an object (a chunk dict), got %s", what, jsonKind(raw))
	}
	if err := str(m, "text", &c.Text, what); err != nil {
		return c, err
	}
	if strings.TrimSpace(c.Text) == "" {
		return c, inputError("%s.text is empty", what)
	}
	if err := str(m, "id", &c.ID, what); err != nil {
		return c, err
	}
	c.Tokens = 100
	if t, ok := m["tokens"]; ok && jsonKind(t) != "null" {
		var f float64
		if err := json.Unmarshal(t, &f); err != nil || f < 0 || f != math.Trunc(f) {
			return c, inputError("%s.tokens must be a non-negative integer, got %s", what, abbreviate(t))
		}
		c.Tokens = int(f)
	}
	for key, dst := range map[string]*any{"doc_id": &c.DocID, "dataset_type": &c.DatasetType} {
		if v, ok := m[key]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return c, inputError("%s.%s: %v", what, key, err)
			}
		}
	}
	c.ChunkIdx = json.RawMessage("0")
	if v, ok := m["chunk_idx"]; ok && jsonKind(v) != "null" {
		if k := jsonKind(v); k != "a number" && k != "a string" {
			return c, inputError("%s.chunk_idx must be a number or a string, got %s", what, k)
		}
		c.ChunkIdx = v
	}
	return c, nil
}

// str reads a required string field of a dict.
func str(m map[string]json.RawMessage, key string, dst *string, what string) error {
	v, ok := m[key]
	if !ok || jsonKind(v) == "null" {
		return inputError("%s has no %q", what, key)
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return inputError("%s.%s must be a string, got %s", what, key, jsonKind(v))
	}
	return nil
}

// parseConfig checks the dataset config dict. lang is required (the
// Python worker failed on a missing lang too, but only after retrying);
// qa_per_chunk defaults to 2.
func parseConfig(raw json.RawMessage) (configInput, error) {
	var c configInput
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return c, inputError("config must be an object (the dataset config dict), got %s", jsonKind(raw))
	}
	if err := str(m, "lang", &c.Lang, "config"); err != nil {
		return c, err
	}
	c.Lang = strings.ToLower(strings.TrimSpace(c.Lang))
	if c.Lang == "" {
		return c, inputError("config.lang is empty")
	}
	c.QAPerChunk = 2
	if v, ok := m["qa_per_chunk"]; ok && jsonKind(v) != "null" {
		var f float64
		if err := json.Unmarshal(v, &f); err != nil || f < 1 || f > 50 || f != math.Trunc(f) {
			return c, inputError("config.qa_per_chunk must be an integer from 1 to 50, got %s", abbreviate(v))
		}
		c.QAPerChunk = int(f)
	}
	return c, nil
}

// pairsFor is the Python worker's determine_qa_count: fewer pairs for
// short chunks, one more for long ones.
func pairsFor(tokens, perChunk int) int {
	switch {
	case tokens < 50:
		return max(1, perChunk-1)
	case tokens > 150:
		return perChunk + 1
	}
	return perChunk
}

func abbreviate(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
