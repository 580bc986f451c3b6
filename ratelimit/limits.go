// Package ratelimit is one rate limit for a whole fleet of workers: requests
// and tokens per minute per LLM provider and model, enforced atomically in
// Redis (GCRA, two buckets per key), plus a shared cool-down that a 429
// from the provider puts the whole fleet on.
package ratelimit

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Limit is the budget of one provider and model.
type Limit struct {
	// RPM and TPM are requests and tokens (input + expected output) per
	// minute; 0 leaves that dimension unlimited.
	RPM int `json:"rpm"`
	TPM int `json:"tpm"`
	// Burst is how many seconds' worth of budget may be spent at once
	// (default 1: no bursts beyond one second of traffic). At least one
	// request always fits.
	BurstSeconds float64 `json:"burst_seconds,omitempty"`
}

// Unlimited reports whether the limit enforces nothing.
func (l Limit) Unlimited() bool { return l.RPM <= 0 && l.TPM <= 0 }

func (l Limit) String() string {
	parts := []string{}
	if l.RPM > 0 {
		parts = append(parts, fmt.Sprintf("%d requests/min", l.RPM))
	}
	if l.TPM > 0 {
		parts = append(parts, fmt.Sprintf("%d tokens/min", l.TPM))
	}
	if len(parts) == 0 {
		return "unlimited"
	}
	if l.BurstSeconds > 1 {
		parts = append(parts, fmt.Sprintf("burst %gs", l.BurstSeconds))
	}
	return strings.Join(parts, ", ")
}

// Key names a budget: provider and model ("*" for every model of a
// provider).
type Key struct {
	Provider string
	Model    string
}

func (k Key) String() string { return k.Provider + "/" + k.Model }

// ParseKey reads "provider/model" ("gemini/*" for a provider default).
func ParseKey(s string) (Key, error) {
	p, m, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || p == "" || m == "" {
		return Key{}, fmt.Errorf("rate limit key %q: want provider/model, e.g. gemini/gemini-2.0-flash or gemini/*", s)
	}
	return Key{Provider: strings.ToLower(p), Model: m}, nil
}

// Defaults are budgets of the models the Python system uses, at the
// providers' first paid tier (Gemini Tier 1; OpenAI Tier 1, the Python
// system's own table). They apply when nothing else is configured; set
// your account's real limits with --llm-rpm/--llm-tpm, a limits file or
// `qagen ratelimit set`.
var Defaults = map[Key]Limit{
	{"gemini", "gemini-2.0-flash"}:      {RPM: 2000, TPM: 4_000_000},
	{"gemini", "gemini-2.0-flash-lite"}: {RPM: 4000, TPM: 4_000_000},
	{"gemini", "gemini-2.5-flash"}:      {RPM: 1000, TPM: 1_000_000},
	{"gemini", "gemini-2.5-pro"}:        {RPM: 150, TPM: 2_000_000},
	{"gemini", "gemini-1.5-flash"}:      {RPM: 2000, TPM: 4_000_000},
	{"gemini", "gemini-1.5-pro"}:        {RPM: 1000, TPM: 4_000_000},
	{"openai", "gpt-4o-mini"}:           {RPM: 500, TPM: 200_000},
	{"openai", "gpt-4o"}:                {RPM: 500, TPM: 30_000},
	{"openai", "gpt-4"}:                 {RPM: 500, TPM: 40_000},
}

// Table maps keys to limits; lookups fall back from provider/model to
// provider/* to the defaults.
type Table map[Key]Limit

// Lookup finds the limit of a provider and model: the table's entry, else
// the built-in default.
func (t Table) Lookup(k Key) (Limit, bool) {
	if l, ok := t.Find(k); ok {
		return l, true
	}
	l, ok := Defaults[k]
	return l, ok
}

// Find finds the table's own entry for a provider and model: the model's,
// else the provider's ("provider/*").
func (t Table) Find(k Key) (Limit, bool) {
	if l, ok := t[k]; ok {
		return l, true
	}
	l, ok := t[Key{k.Provider, "*"}]
	return l, ok
}

// LoadFile reads a limits file: a JSON object mapping "provider/model" (or
// "provider/*") to {"rpm": N, "tpm": N, "burst_seconds": S}.
func LoadFile(path string) (Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("limits file: %w", err)
	}
	var raw map[string]Limit
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("limits file %s: want {\"provider/model\": {\"rpm\": N, \"tpm\": N}}: %w", path, err)
	}
	t := Table{}
	for s, l := range raw {
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("limits file %s: %w", path, err)
		}
		if l.RPM < 0 || l.TPM < 0 || l.BurstSeconds < 0 {
			return nil, fmt.Errorf("limits file %s: %s: negative limit", path, s)
		}
		t[k] = l
	}
	return t, nil
}

// Keys returns the table's keys, sorted.
func (t Table) Keys() []Key {
	keys := make([]Key, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	return sortKeys(keys)
}

// sortKeys orders keys by their "provider/model" form.
func sortKeys(keys []Key) []Key {
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}
