package chunk

import (
	"math/rand/v2"
	"strings"
)

// Sample paragraphs for tests and benchmarks (written for this package).

var englishParagraphs = []string{
	"The city council met on Tuesday to discuss the new transit plan. Mr. Alvarez, who chairs the committee, said the proposal would cost about $3.5 million over five years. Critics argued that the money should go to road repairs instead. The vote was postponed until next month.",
	"Researchers at the university have found that bees can recognise human faces. The study, published in the Journal of Experimental Biology, trained honeybees with sugar rewards. \"It was surprising how quickly they learned,\" said Dr. Chen. The results suggest that face recognition does not require a large brain.",
	"Shares of the company rose 4.2% in early trading after it reported better-than-expected earnings. Revenue grew to $12.8 billion, compared with $11.1 billion a year earlier. Analysts, e.g. those at J. P. Morgan, had expected slower growth. The company also raised its forecast for the rest of the year.",
	"Heavy rain caused flooding across the region on Sunday night. Several roads were closed, and hundreds of homes lost power. Emergency crews worked through the night to clear debris! Residents were asked to avoid unnecessary travel until the water recedes. Will the dams hold? Officials say they are monitoring the situation closely.",
	"The novel follows a young woman who leaves her village to study medicine in the capital. Along the way she meets a retired sailor, a street musician and a stubborn cat. Critics have praised its vivid descriptions of city life in the 1920s, i.e. before the war changed everything. It has been translated into more than 30 languages.",
	"In the final match, the home team scored twice in the last ten minutes to win 3-2. The coach called it the best game of the season. Fans celebrated in the streets until late at night. The team will now face the defending champions in the semi-final on Saturday at 7 p.m. local time.",
	"Solar panels installed on school roofs could supply up to 40 percent of the electricity the buildings use, according to a new report. The U.S. Department of Energy funded the pilot program in twelve districts. Teachers have also used the panels in science lessons about renewable energy and climate.",
	"A new species of frog has been discovered in the mountains of Peru. The tiny amphibian, barely 1.5 centimetres long, lives among the moss of cloud forests. Scientists named it after the local community that helped them find it. They warn that habitat loss threatens many similar species.",
}

var japaneseParagraphs = []string{
	"東京都は二十三の特別区と多摩地域、島しょ部から構成されている。人口は約千四百万人で、日本の総人口の一割以上を占める。政治、経済、文化の中心地であり、多くの企業が本社を置いている。",
	"富士山は静岡県と山梨県にまたがる活火山である。標高は3776メートルで、日本最高峰として知られる。2013年には「富士山－信仰の対象と芸術の源泉」として世界文化遺産に登録された。毎年夏には多くの登山者が山頂を目指す。",
	"この研究では、睡眠時間と学習効率の関係を調べた。被験者は大学生120名で、一週間にわたって睡眠記録をつけてもらった。その結果、睡眠時間が6時間未満の学生は記憶テストの成績が低い傾向にあった。研究チームは「十分な睡眠が学習の基礎になる」と述べている。",
	"新しい図書館が来月、駅前にオープンする。蔵書数は約二十万冊で、子ども向けの読書スペースやカフェも併設される。開館時間は午前9時から午後9時までだ！市は「多くの市民に利用してほしい」と話している。駐車場はあるのだろうか？一部の住民からはそんな声も上がっている。",
	"江戸時代の商人は、帳簿を丁寧につけることで信用を築いた。大坂の米市場では、世界でも早い時期に先物取引が行われていたといわれる。こうした商習慣は、明治以降の近代的な金融制度の発展にも影響を与えた。",
	"彼は窓の外を見ながら言った。「明日は雨が降るらしいよ。」妹は首をかしげて答えた。『でも天気予報では晴れって言ってたよ！』二人はしばらく黙って空を眺めていた（結局、翌日は快晴だった）。",
	"人工知能の技術は急速に進歩している。画像認識や音声認識の精度は、特定の課題では人間に匹敵する水準に達した。一方で、判断の根拠を説明できないことや、学習データの偏りが結果に影響することが課題として指摘されている。",
	"北海道の冬は厳しいが、雪まつりには毎年二百万人以上の観光客が訪れる。大通公園には巨大な雪像が並び、夜にはライトアップされる。地元の人々にとっても、冬の楽しみの一つとなっている。",
}

// corpus returns about n bytes of documents built from paragraphs in a
// deterministic pseudo-random order, documents separated by "\n\n\n".
// Half of the documents look like a02's Combined_Text (no newlines: two to
// six paragraphs glued with sep into one long paragraph that needs
// sentence packing), the others have one to four paragraphs separated by
// blank lines.
func corpus(paragraphs []string, sep string, n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var sb strings.Builder
	sb.Grow(n + 4096)
	for sb.Len() < n {
		if rng.IntN(2) == 0 {
			for k := 2 + rng.IntN(5); k > 0; k-- {
				sb.WriteString(paragraphs[rng.IntN(len(paragraphs))])
				if k > 1 {
					sb.WriteString(sep)
				}
			}
		} else {
			for k := 1 + rng.IntN(4); k > 0; k-- {
				sb.WriteString(paragraphs[rng.IntN(len(paragraphs))])
				if k > 1 {
					sb.WriteString("\n\n")
				}
			}
		}
		sb.WriteString("\n\n\n")
	}
	return sb.String()
}

func benchEnglish(n int) string  { return corpus(englishParagraphs, " ", n, 7) }
func benchJapanese(n int) string { return corpus(japaneseParagraphs, "", n, 11) }
