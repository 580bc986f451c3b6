package ratelimit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	for in, want := range map[string]Key{
		"gemini/gemini-2.0-flash": {"gemini", "gemini-2.0-flash"},
		" OpenAI/gpt-4o ":         {"openai", "gpt-4o"},
		"gemini/*":                {"gemini", "*"},
		"openai/ft:gpt-4o/abc":    {"openai", "ft:gpt-4o/abc"},
	} {
		got, err := ParseKey(in)
		if err != nil || got != want {
			t.Errorf("ParseKey(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "gemini", "gemini/", "/model", "/"} {
		if _, err := ParseKey(in); err == nil || !strings.Contains(err.Error(), "want provider/model") {
			t.Errorf("ParseKey(%q): error %v, want a usage error", in, err)
		}
	}
	if s := (Key{"gemini", "*"}).String(); s != "gemini/*" {
		t.Errorf("Key.String() = %q", s)
	}
}

func TestLimitString(t *testing.T) {
	for _, tc := range []struct {
		l    Limit
		want string
	}{
		{Limit{}, "unlimited"},
		{Limit{RPM: 120}, "120 requests/min"},
		{Limit{TPM: 9000}, "9000 tokens/min"},
		{Limit{RPM: 120, TPM: 9000, BurstSeconds: 1}, "120 requests/min, 9000 tokens/min"},
		{Limit{RPM: 120, BurstSeconds: 5}, "120 requests/min, burst 5s"},
	} {
		if got := tc.l.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.l, got, tc.want)
		}
	}
	if !(Limit{}).Unlimited() || (Limit{TPM: 1}).Unlimited() || (Limit{RPM: 1}).Unlimited() {
		t.Error("Unlimited")
	}
}

func TestTableLookupFallback(t *testing.T) {
	flash := Key{"gemini", "gemini-2.0-flash"}
	pro := Key{"gemini", "gemini-2.5-pro"}
	other := Key{"gemini", "some-new-model"}
	gpt := Key{"openai", "gpt-4o-mini"}
	unknown := Key{"acme", "m1"}
	tab := Table{
		flash:                  {RPM: 10},
		{"gemini", "*"}:        {RPM: 20},
		{"openai", "gpt-4o"}:   {RPM: 30},
		{"acme", "other-mode"}: {RPM: 40},
	}
	for _, tc := range []struct {
		k    Key
		want Limit
		ok   bool
	}{
		{flash, Limit{RPM: 10}, true}, // the model's own entry
		{pro, Limit{RPM: 20}, true},   // provider/* before the defaults
		{other, Limit{RPM: 20}, true}, // provider/*
		{gpt, Defaults[gpt], true},    // no entry: the built-in default
		{unknown, Limit{}, false},     // nothing at all: unlimited
		{Key{"openai", "gpt-4o"}, Limit{RPM: 30}, true},
	} {
		got, ok := tab.Lookup(tc.k)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v, %v", tc.k, got, ok, tc.want, tc.ok)
		}
	}
	// A nil table is the defaults.
	if got, ok := Table(nil).Lookup(flash); !ok || got != Defaults[flash] {
		t.Errorf("nil table: %+v %v", got, ok)
	}
	keys := tab.Keys()
	if len(keys) != 4 || keys[0].String() != "acme/other-mode" || keys[3].String() != "openai/gpt-4o" {
		t.Errorf("Keys() = %v, want sorted", keys)
	}
	for k, l := range Defaults {
		if l.RPM <= 0 || l.TPM <= 0 || k.Model == "*" {
			t.Errorf("default %s: %+v", k, l)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"gemini/gemini-2.0-flash": {"rpm": 120, "tpm": 90000, "burst_seconds": 2},
		"OpenAI/*": {"tpm": 5000}}`)
	tab, err := LoadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := tab[Key{"gemini", "gemini-2.0-flash"}]; got != (Limit{RPM: 120, TPM: 90000, BurstSeconds: 2}) {
		t.Errorf("gemini: %+v", got)
	}
	if got, _ := tab.Lookup(Key{"openai", "gpt-4o"}); got != (Limit{TPM: 5000}) {
		t.Errorf("openai/* (provider lowercased): %+v", got)
	}

	for name, tc := range map[string]struct{ body, want string }{
		"not json":     {`{"gemini/x": `, "want {\"provider/model\""},
		"list":         {`[1, 2]`, "want {\"provider/model\""},
		"string limit": {`{"gemini/x": {"rpm": "fast"}}`, "want {\"provider/model\""},
		"bad key":      {`{"gemini": {"rpm": 1}}`, "want provider/model"},
		"negative rpm": {`{"gemini/x": {"rpm": -1}}`, "negative limit"},
		"negative tpm": {`{"gemini/x": {"tpm": -5}}`, "negative limit"},
		"neg burst":    {`{"gemini/x": {"rpm": 5, "burst_seconds": -1}}`, "negative limit"},
	} {
		p := write(strings.ReplaceAll(name, " ", "_")+".json", tc.body)
		if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming the file and saying %q", name, err, tc.want)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "limits file") {
		t.Errorf("missing file: %v", err)
	}
}
