package tasks

import (
	"fmt"
	"strings"
)

// Prompts ask for what the Python system's prompts ask for — N pairs, clear
// questions, concise and faithful answers, the four question types — in our
// own words, with the instructions as a system instruction and the text in
// the user turn. The schema travels natively (structured output); the
// system text repeats the shape for the plain-text fallback.

const systemEN = `You write question-and-answer material for learners.
From the text the user gives you, write exactly %d question-answer pairs that let a reader check their understanding of it.
- Questions are clear and specific, and can be answered from the text alone.
- Answers are concise (one or two sentences) and faithful to the text; never add facts the text does not contain.
- Mix the question types: "fact" (what the text states), "reason" (why something is so), "comparison" (how things differ or relate), "application" (how something is used or applied).
- Write in English.
Reply with JSON only: {"qa_pairs": [{"question": "...", "answer": "...", "question_type": "fact|reason|comparison|application"}]}`

const systemJA = `あなたは学習者向けの問題と解答を作る専門家です。
ユーザーが示す本文から、内容の理解を確かめるための質問と回答の組をちょうど%d個作成してください。
- 質問は明確かつ具体的にし、本文だけを根拠に答えられるものにしてください。
- 回答は簡潔に（1〜2文）、本文に忠実に書き、本文にない事実を加えないでください。
- 質問の種類を組み合わせてください：「fact」（事実：本文が述べていること）、「reason」（理由：なぜそうなのか）、「comparison」（比較：違いや関係）、「application」（応用：どのように使われるか）。
- 日本語で書いてください。
JSONのみで返答してください：{"qa_pairs": [{"question": "...", "answer": "...", "question_type": "fact|reason|comparison|application"}]}`

// singlePrompt returns the system instruction and user prompt for one chunk.
func singlePrompt(lang, text string, n int) (system, user string) {
	if lang == "ja" {
		return fmt.Sprintf(systemJA, n), fmt.Sprintf("次の本文から質問と回答の組を%d個作成してください。\n\n本文:\n%s", n, text)
	}
	return fmt.Sprintf(systemEN, n), fmt.Sprintf("Write %d question-answer pairs from this text.\n\nText:\n%s", n, text)
}

const batchEN = `You write question-and-answer material for learners.
The user gives you several numbered texts. For each text, write the number of question-answer pairs shown next to it, drawn from that text only, and put the text's number in "chunk_index".
- Questions are clear and specific, and can be answered from their text alone.
- Answers are concise (one or two sentences) and faithful to the text; never add facts the text does not contain.
- Mix the question types: "fact", "reason", "comparison", "application".
- Write in English.
Reply with JSON only: {"qa_pairs": [{"chunk_index": 0, "question": "...", "answer": "...", "question_type": "fact|reason|comparison|application"}]}`

const batchJA = `あなたは学習者向けの問題と解答を作る専門家です。
ユーザーは番号付きの本文を複数示します。各本文について、その横に示した数だけ質問と回答の組をその本文だけから作成し、「chunk_index」に本文の番号を入れてください。
- 質問は明確かつ具体的にし、その本文だけを根拠に答えられるものにしてください。
- 回答は簡潔に（1〜2文）、本文に忠実に書き、本文にない事実を加えないでください。
- 質問の種類を組み合わせてください：「fact」「reason」「comparison」「application」。
- 日本語で書いてください。
JSONのみで返答してください：{"qa_pairs": [{"chunk_index": 0, "question": "...", "answer": "...", "question_type": "fact|reason|comparison|application"}]}`

// batchPrompt returns the prompts for several chunks in one request.
func batchPrompt(lang string, texts []string, counts []int) (system, user string) {
	var b strings.Builder
	total := 0
	for _, n := range counts {
		total += n
	}
	if lang == "ja" {
		fmt.Fprintf(&b, "次の%d個の本文から、合計%d個の質問と回答の組を作成してください。\n", len(texts), total)
		for i, t := range texts {
			fmt.Fprintf(&b, "\n[%d]（%d個）\n本文:\n%s\n", i, counts[i], t)
		}
		return batchJA, b.String()
	}
	fmt.Fprintf(&b, "Write %d question-answer pairs in total from these %d texts.\n", total, len(texts))
	for i, t := range texts {
		fmt.Fprintf(&b, "\n[%d] (%d pairs)\nText:\n%s\n", i, counts[i], t)
	}
	return batchEN, b.String()
}
