package fakellm

import (
	"strings"
	"testing"
	"time"

	"github.com/qagen/qagen/llm"
)

func TestParseJobs(t *testing.T) {
	type want struct {
		index int
		n     int
		text  string // prefix
	}
	for _, tc := range []struct {
		name           string
		system, prompt string
		batch          bool
		want           []want
	}{
		{"english single", "", "Write 4 question-answer pairs from this text.\n\nText:\nAlpha beta. Gamma.", false,
			[]want{{0, 4, "Alpha beta. Gamma."}}},
		{"japanese single", "", "次の本文から質問と回答の組を３個作成してください。\n\n本文：\n猫は動物である。", false,
			[]want{{0, 3, "猫は動物である。"}}},
		{"count from the system prompt", "write exactly 5 question-answer pairs", "Text:\nA b c.", false,
			[]want{{0, 5, "A b c."}}},
		{"no count, no heading", "", "Just some text. Another sentence.", false,
			[]want{{0, DefaultPairs, "Just some text."}}},
		{"english batch", "", "Write 3 question-answer pairs in total from these 2 texts.\n\n[0] (2 pairs)\nText:\nFirst text.\n\n[1] (1 pairs)\nText:\nSecond text.\n", true,
			[]want{{0, 2, "First text."}, {1, 1, "Second text."}}},
		{"japanese batch", "", "次の2個の本文から、合計3個の質問と回答の組を作成してください。\n\n[0]（1個）\n本文:\n一つ目。\n\n[1]（2個）\n本文:\n二つ目。\n", true,
			[]want{{0, 1, "一つ目。"}, {1, 2, "二つ目。"}}},
		{"batch sections without counts or headings", "", "Write 2 pairs for each.\n[0]\nOne.\n[1]\nTwo.", true,
			[]want{{0, 2, "One."}, {1, 2, "Two."}}},
		{"batch without sections", "", "Write 2 pairs.\nText:\nOnly one.", true,
			[]want{{0, 2, "Only one."}}},
		{"huge counts are bounded", "", "Write 5000 questions.\nText:\nX.", false,
			[]want{{0, maxPairs, "X."}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseJobs(tc.system, tc.prompt, tc.batch)
			if len(got) != len(tc.want) {
				t.Fatalf("jobs %+v", got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.index != w.index || g.n != w.n || !strings.HasPrefix(g.text, w.text) {
					t.Errorf("job %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestPairsFor(t *testing.T) {
	pairs := pairsFor("", "[0] (2 pairs)\nText:\nCats sleep a lot. Dogs bark because they are alert. Birds fly.\n[1] (1 pairs)\n本文:\n猫はよく眠る。犬は吠える。", true)
	if len(pairs) != 3 || *pairs[0].ChunkIndex != 0 || *pairs[2].ChunkIndex != 1 || !strings.HasPrefix(pairs[2].Question, "本文") {
		t.Fatalf("pairs %+v", pairs)
	}
	if pairs := pairsFor("", "Text:\n", false); pairs == nil || len(pairs) != 0 {
		t.Fatalf("empty text: %#v", pairs)
	}
}

func TestTokens(t *testing.T) {
	for s, want := range map[string]int{"": 0, "abcd": 1, "abcde": 2, "猫は動物": 4, "猫 is a cat": 1 + 3} {
		if got := Tokens(s); got != want {
			t.Errorf("Tokens(%q) = %d, want %d", s, got, want)
		}
	}
	s := strings.Repeat("word ", 100)
	if cut := llm.TruncateTokens(s, 10); Tokens(cut) > 10 || Tokens(cut) < 9 {
		t.Fatalf("truncated to %d tokens", Tokens(cut))
	}
	if cut := llm.TruncateTokens("猫は動物である", 3); cut != "猫は動" {
		t.Fatalf("cut %q", cut)
	}
}

func TestParseLatency(t *testing.T) {
	ms := time.Millisecond
	for in, want := range map[string]Latency{
		"": {}, "0": {}, "200ms": {200 * ms, 200 * ms}, "200ms±50ms": {150 * ms, 250 * ms},
		"100ms+-200ms": {0, 300 * ms}, "uniform:100ms-300ms": {100 * ms, 300 * ms}, " 1s ": {time.Second, time.Second},
	} {
		got, err := ParseLatency(in)
		if err != nil || got != want {
			t.Errorf("ParseLatency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"fast", "-1s", "uniform:3s-1s", "uniform:1s", "1s±x"} {
		if _, err := ParseLatency(bad); err == nil {
			t.Errorf("ParseLatency(%q) accepted", bad)
		}
	}
	l := Latency{Min: 100 * ms, Max: 300 * ms}
	if l.draw(0) != 100*ms || l.draw(0.5) != 200*ms || l.String() != "uniform:100ms-300ms" {
		t.Fatal(l.draw(0), l.draw(0.5), l)
	}
}

func TestFaults(t *testing.T) {
	kinds, err := ParseFaults("500, timeout,malformed,empty,500")
	if err != nil || len(kinds) != 4 {
		t.Fatal(kinds, err)
	}
	if all, _ := ParseFaults("all"); len(all) != len(AllFaults) {
		t.Fatal(all)
	}
	if _, err := ParseFaults("500,oops"); err == nil {
		t.Fatal("unknown fault accepted")
	}
	probs, err := SpreadFailRate(0.19, []Fault{FaultServerError, FaultEmpty})
	if err != nil || probs[FaultServerError] < 0.099 || probs[FaultServerError] > 0.101 {
		t.Fatal(probs, err)
	}
	if _, err := SpreadFailRate(1.5, kinds); err == nil {
		t.Fatal("rate 1.5 accepted")
	}
}
