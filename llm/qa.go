package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Question types the prompts ask for.
var QuestionTypes = []string{"fact", "reason", "comparison", "application"}

// QAPair is one generated pair as models return it. ChunkIndex attributes a
// pair to its source in multi-chunk (batched) requests.
type QAPair struct {
	Question     string `json:"question"`
	Answer       string `json:"answer"`
	QuestionType string `json:"question_type"`
	ChunkIndex   *int   `json:"chunk_index,omitempty"`
}

// QASchema is the structured-output schema of a single-chunk request.
var QASchema = qaSchema(false)

// BatchQASchema adds chunk_index, for requests covering several chunks.
var BatchQASchema = qaSchema(true)

func qaSchema(batch bool) *Schema {
	props := map[string]any{
		"question":      map[string]any{"type": "string", "description": "a clear, specific question answerable from the text"},
		"answer":        map[string]any{"type": "string", "description": "a concise answer of one or two sentences, faithful to the text"},
		"question_type": map[string]any{"type": "string", "enum": QuestionTypes},
	}
	required := []any{"question", "answer", "question_type"}
	name := "qa_pairs"
	if batch {
		props["chunk_index"] = map[string]any{"type": "integer", "description": "number of the text the pair comes from"}
		required = append(required, "chunk_index")
		name = "qa_pairs_batch"
	}
	return &Schema{Name: name, JSON: map[string]any{
		"type": "object",
		"properties": map[string]any{
			"qa_pairs": map[string]any{
				"type": "array",
				"items": map[string]any{
					"type": "object", "properties": props, "required": required, "additionalProperties": false,
				},
			},
		},
		"required":             []any{"qa_pairs"},
		"additionalProperties": false,
	}}
}

// ErrBadPairs wraps every reason a Q&A answer is rejected.
var ErrBadPairs = errors.New("unusable Q&A answer")

// ParseQAPairs decodes and checks {"qa_pairs": [...]}. An answer without
// pairs, or with an empty question or answer, is an error — the Python
// system stored such answers as successes with zero pairs. A missing or
// unknown question_type becomes "fact".
func ParseQAPairs(raw json.RawMessage) ([]QAPair, error) {
	var doc struct {
		QAPairs *[]QAPair `json:"qa_pairs"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: not the expected JSON object: %v", ErrBadPairs, err)
	}
	if doc.QAPairs == nil {
		return nil, fmt.Errorf("%w: no qa_pairs in the answer", ErrBadPairs)
	}
	pairs := *doc.QAPairs
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%w: qa_pairs is empty", ErrBadPairs)
	}
	for i := range pairs {
		p := &pairs[i]
		p.Question, p.Answer = strings.TrimSpace(p.Question), strings.TrimSpace(p.Answer)
		if p.Question == "" || p.Answer == "" {
			return nil, fmt.Errorf("%w: pair %d has an empty question or answer", ErrBadPairs, i+1)
		}
		p.QuestionType = strings.ToLower(strings.TrimSpace(p.QuestionType))
		if !slices.Contains(QuestionTypes, p.QuestionType) {
			p.QuestionType = "fact"
		}
	}
	return pairs, nil
}

// ExtractivePairs writes up to n pairs from text without a model: each
// question is built from one of the text's own sentences and its answer
// quotes that sentence. The result is deterministic. It serves the offline
// provider and the fake LLM server.
func ExtractivePairs(text string, n int, lang string) []QAPair {
	sentences := SplitSentences(text)
	if n <= 0 || len(sentences) == 0 {
		return nil
	}
	// Spread the picks over the text: sentence k*len/n for k = 0..n-1.
	picks := make([]string, 0, n)
	seen := map[int]bool{}
	for k := 0; k < n && len(picks) < len(sentences); k++ {
		i := k * len(sentences) / n
		for seen[i] && i < len(sentences)-1 {
			i++
		}
		if seen[i] {
			break
		}
		seen[i] = true
		picks = append(picks, sentences[i])
	}
	out := make([]QAPair, 0, len(picks))
	for _, s := range picks {
		typ := classify(s)
		out = append(out, QAPair{Question: questionFor(s, typ, lang), Answer: s, QuestionType: typ})
	}
	return out
}

// classify picks a question type from cue words.
func classify(s string) string {
	l := strings.ToLower(s)
	switch {
	case containsAny(l, "because", "therefore", "due to", "so that", "ため", "から", "理由", "によって"):
		return "reason"
	case containsAny(l, " than ", "compared", "whereas", "unlike", "より", "比べ", "違い", "一方"):
		return "comparison"
	case containsAny(l, "used to", "can be used", "allows", "helps", "使う", "使わ", "利用", "用い", "活用", "できる"):
		return "application"
	}
	return "fact"
}

func containsAny(s string, words ...string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func questionFor(sentence, typ, lang string) string {
	topic := topicOf(sentence, lang)
	if lang == "ja" {
		switch typ {
		case "reason":
			return "本文によると、" + topic + "の理由は何ですか？"
		case "comparison":
			return "本文では、" + topic + "はどのように比較されていますか？"
		case "application":
			return "本文によると、" + topic + "はどのように活用されますか？"
		}
		return "本文によると、" + topic + "について何が述べられていますか？"
	}
	switch typ {
	case "reason":
		return "According to the text, why is it that " + topic + "?"
	case "comparison":
		return "How does the text compare " + topic + "?"
	case "application":
		return "According to the text, how is " + topic + " used?"
	}
	return "What does the text say about " + topic + "?"
}

// topicOf is the opening of a sentence: its first words, or for Japanese
// the part before the first particle-like break, bounded in length.
func topicOf(sentence, lang string) string {
	s := strings.TrimRight(sentence, "。．.！!？? ")
	if lang == "ja" {
		for _, sep := range []string{"は", "が", "を", "、"} {
			if i := strings.Index(s, sep); i > 0 && utf8.RuneCountInString(s[:i]) <= 20 {
				return "「" + s[:i] + "」"
			}
		}
		r := []rune(s)
		if len(r) > 20 {
			r = r[:20]
		}
		return "「" + string(r) + "」"
	}
	words := strings.Fields(s)
	if len(words) > 8 {
		words = words[:8]
	}
	t := strings.Join(words, " ")
	if t != "" {
		r, size := utf8.DecodeRuneInString(t)
		if unicode.IsUpper(r) && !(len(words) > 0 && isAllCaps(words[0])) {
			t = string(unicode.ToLower(r)) + t[size:]
		}
	}
	return "\"" + t + "\""
}

func isAllCaps(w string) bool {
	n := 0
	for _, r := range w {
		if unicode.IsLower(r) {
			return false
		}
		if unicode.IsUpper(r) {
			n++
		}
	}
	return n > 1
}

// SplitSentences splits text at sentence ends: 。．！？!? always, and "."
// when followed by a space and not part of a number or a common
// abbreviation.
func SplitSentences(text string) []string {
	var out []string
	start := 0
	rs := []rune(text)
	flush := func(end int) {
		s := strings.TrimSpace(string(rs[start:end]))
		if s != "" {
			out = append(out, s)
		}
		start = end
	}
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '。', '．', '！', '？', '!', '?', '\n':
			j := i + 1
			for j < len(rs) && strings.ContainsRune("」』）)\"'", rs[j]) {
				j++
			}
			flush(j)
			i = j - 1
		case '.':
			if i+1 < len(rs) && !unicode.IsSpace(rs[i+1]) {
				continue // 3.5, e.g., URLs
			}
			if isAbbreviation(rs[start:i]) {
				continue
			}
			flush(i + 1)
		}
	}
	flush(len(rs))
	return out
}

var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "dr": true, "prof": true, "sr": true, "jr": true, "st": true,
	"vs": true, "etc": true, "e.g": true, "i.e": true, "inc": true, "ltd": true, "co": true, "corp": true,
	"u.s": true, "u.k": true, "no": true, "fig": true, "al": true, "jan": true, "feb": true, "mar": true,
	"apr": true, "jun": true, "jul": true, "aug": true, "sep": true, "sept": true, "oct": true, "nov": true, "dec": true,
}

func isAbbreviation(before []rune) bool {
	s := string(before)
	i := strings.LastIndexFunc(s, unicode.IsSpace)
	word := strings.ToLower(strings.Trim(s[i+1:], "(\"'"))
	if abbreviations[word] {
		return true
	}
	// Single capital letters: initials such as "J. R. R."
	r := []rune(word)
	return len(r) == 1 && unicode.IsLetter(r[0])
}
