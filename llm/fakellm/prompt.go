package fakellm

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/qagen/qagen/llm"
)

// DefaultPairs is the number of pairs written when the prompt names none.
const DefaultPairs = 3

// maxPairs bounds what one text can ask for.
const maxPairs = 50

// job is one text to write pairs from.
type job struct {
	index int
	text  string
	n     int
}

var (
	// countRE finds "Write 3 question-answer pairs", "(2 pairs)", "5
	// questions", "3個", "3組", "3問".
	countRE = regexp.MustCompile(`(?i)(\d+)\s*(?:(?:question-answer|question[- ]and[- ]answer|q\s*&\s*a|qa)\s+)?(?:pairs?\b|questions?\b|個|組|問)`)
	// headingRE finds the line that introduces the source text.
	headingRE = regexp.MustCompile(`(?mi)^[ \t]*(?:#+[ \t]*)?(?:source[ \t]+)?(?:texts?|本文|テキスト)[ \t]*[:：][ \t]*\n?`)
	// sectionRE finds the "[0] ..." lines of a batch prompt.
	sectionRE = regexp.MustCompile(`(?m)^[ \t]*\[(\d+)\][^\n]*$`)
)

// parseJobs reads what a Q&A prompt asks for. The count is the first "N
// pairs" / "N個" phrase of the user prompt, else of the system prompt, else
// DefaultPairs. The text follows a "Text:" / "本文:" heading, else it is
// the whole user prompt. A batch prompt has numbered sections "[0] (2
// pairs)" each with its own count (else the global one) and text.
func parseJobs(system, prompt string, batch bool) []job {
	n := findCount(prompt)
	if n == 0 {
		n = findCount(system)
	}
	if n == 0 {
		n = DefaultPairs
	}
	if batch {
		if locs := sectionRE.FindAllStringSubmatchIndex(prompt, -1); len(locs) > 0 {
			var jobs []job
			for i, loc := range locs {
				idx, _ := strconv.Atoi(prompt[loc[2]:loc[3]])
				header := prompt[loc[0]:loc[1]]
				end := len(prompt)
				if i+1 < len(locs) {
					end = locs[i+1][0]
				}
				body := prompt[loc[1]:end]
				cnt := findCount(header)
				if cnt == 0 {
					cnt = n
				}
				jobs = append(jobs, job{index: idx, text: afterHeading(body), n: cnt})
			}
			return jobs
		}
	}
	return []job{{index: 0, text: afterHeading(prompt), n: n}}
}

func findCount(s string) int {
	m := countRE.FindStringSubmatch(toASCIIDigits(s))
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0
	}
	return min(n, maxPairs)
}

// toASCIIDigits maps full-width digits (３個) to ASCII.
func toASCIIDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '０' && r <= '９' {
			return '0' + (r - '０')
		}
		return r
	}, s)
}

func afterHeading(s string) string {
	if loc := headingRE.FindStringIndex(s); loc != nil {
		return strings.TrimSpace(s[loc[1]:])
	}
	return strings.TrimSpace(s)
}

// detectLang says "ja" for text with kana or kanji, else "en".
func detectLang(s string) string {
	for _, r := range s {
		if unicode.In(r, unicode.Hiragana, unicode.Katakana, unicode.Han) {
			return "ja"
		}
	}
	return "en"
}

// pairsFor writes the pairs a prompt asks for, with chunk_index for
// batches.
func pairsFor(system, prompt string, batch bool) []llm.QAPair {
	pairs := []llm.QAPair{}
	for _, j := range parseJobs(system, prompt, batch) {
		for _, p := range llm.ExtractivePairs(j.text, j.n, detectLang(j.text)) {
			if batch {
				idx := j.index
				p.ChunkIndex = &idx
			}
			pairs = append(pairs, p)
		}
	}
	return pairs
}

// Tokens is what the fake server bills: llm.EstimateTokens.
func Tokens(s string) int { return llm.EstimateTokens(s) }

// hasChunkIndex reports whether a response schema has a chunk_index
// property anywhere (a batch schema).
func hasChunkIndex(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		if props, ok := x["properties"].(map[string]any); ok {
			if _, ok := props["chunk_index"]; ok {
				return true
			}
		}
		for _, e := range x {
			if hasChunkIndex(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasChunkIndex(e) {
				return true
			}
		}
	}
	return false
}
