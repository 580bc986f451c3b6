package llm

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSplitSentences(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"One. Two! Three?", []string{"One.", "Two!", "Three?"}},
		{"Mr. Smith paid 3.5 dollars. Then he left.", []string{"Mr. Smith paid 3.5 dollars.", "Then he left."}},
		{"See e.g. the docs at example.com. Done.", []string{"See e.g. the docs at example.com.", "Done."}},
		{"J. R. R. Tolkien wrote it. Yes.", []string{"J. R. R. Tolkien wrote it.", "Yes."}},
		{"東京は首都です。大阪は大きい！本当？", []string{"東京は首都です。", "大阪は大きい！", "本当？"}},
		{"「こんにちは。」と言った。", []string{"「こんにちは。」", "と言った。"}},
		{"no end", []string{"no end"}},
		{"  ", nil},
	} {
		got := SplitSentences(tc.in)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("SplitSentences(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExtractivePairsAreDeterministicAndQuoted(t *testing.T) {
	text := "Redis is an in-memory store. It is fast because data stays in RAM. Redis is faster than disk databases. It can be used to queue tasks. Persistence is optional."
	a := ExtractivePairs(text, 3, "en")
	b := ExtractivePairs(text, 3, "en")
	if len(a) != 3 {
		t.Fatalf("%d pairs", len(a))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("not deterministic")
		}
		if !strings.Contains(text, a[i].Answer) || a[i].Question == "" || !slices.Contains(QuestionTypes, a[i].QuestionType) {
			t.Errorf("pair %+v", a[i])
		}
	}
	types := map[string]bool{}
	for _, p := range ExtractivePairs(text, 5, "en") {
		types[p.QuestionType] = true
	}
	for _, want := range []string{"fact", "reason", "comparison", "application"} {
		if !types[want] {
			t.Errorf("no %s question among %v", want, types)
		}
	}
	ja := ExtractivePairs("東京は日本の首都です。人口が多いため、交通網が発達している。", 2, "ja")
	if len(ja) != 2 || !strings.HasPrefix(ja[0].Question, "本文によると") || ja[1].QuestionType != "reason" {
		t.Fatalf("japanese %+v", ja)
	}
	if got := ExtractivePairs("One sentence.", 4, "en"); len(got) != 1 {
		t.Fatalf("more pairs than sentences: %d", len(got))
	}
}

func TestExtractJSONObject(t *testing.T) {
	obj := `{"qa_pairs": [{"question": "Q?", "answer": "A {x}", "question_type": "fact"}]}`
	for name, in := range map[string]string{
		"bare":        obj,
		"fenced":      "Here you go:\n```json\n" + obj + "\n```\nThanks {:}",
		"prose":       "Sure: " + obj + " done.",
		"prose brace": "Note {this}: " + obj,
	} {
		got, err := ExtractJSONObject(in)
		if err != nil || !json.Valid(got) || !strings.Contains(string(got), "qa_pairs") {
			t.Errorf("%s: %s %v", name, got, err)
		}
	}
	for _, in := range []string{"no json here", "{broken", ""} {
		if _, err := ExtractJSONObject(in); !errors.Is(err, ErrNoJSON) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestParseQAPairs(t *testing.T) {
	pairs, err := ParseQAPairs(json.RawMessage(`{"qa_pairs": [{"question": " Q? ", "answer": "A.", "question_type": "Definition"}, {"question": "Q2?", "answer": "A2."}]}`))
	if err != nil || pairs[0].Question != "Q?" || pairs[0].QuestionType != "fact" || pairs[1].QuestionType != "fact" {
		t.Fatalf("%+v %v", pairs, err)
	}
	for _, bad := range []string{`{"qa": []}`, `{"qa_pairs": []}`, `{"qa_pairs": [{"question": "", "answer": "A"}]}`, `[1]`, `{"qa_pairs": "x"}`} {
		if _, err := ParseQAPairs(json.RawMessage(bad)); !errors.Is(err, ErrBadPairs) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestOfflineProvider(t *testing.T) {
	var p Provider = Offline{}
	resp, err := p.Generate(context.Background(), Request{Source: []SourceChunk{{ID: "a", Text: "One. Two. Three.", Pairs: 2}, {ID: "b", Text: "Four. Five."}}, Pairs: 1, Lang: "en"})
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := ParseQAPairs(json.RawMessage(resp.Text))
	if err != nil || len(pairs) != 3 || *pairs[0].ChunkIndex != 0 || *pairs[2].ChunkIndex != 1 || resp.Usage.Provider != OfflineName {
		t.Fatalf("%s %v", resp.Text, err)
	}
	if _, err := p.Generate(context.Background(), Request{}); KindOf(err) != KindPermanent {
		t.Fatalf("no source: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Generate(ctx, Request{Source: []SourceChunk{{Text: "x."}}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
