package chunk

import (
	"math"
	"math/bits"
	"sync"
	"unicode"
	"unicode/utf8"
)

// bpe is a byte-level BPE tokenizer with the cl100k_base pre-tokenizer:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// implemented as a hand-written scanner (nextPiece) instead of a
// backtracking regexp, followed by tiktoken's merge: a piece found in the
// vocabulary is one token, otherwise the adjacent pair with the lowest rank
// (leftmost on ties) is merged until no pair is in the vocabulary. It is
// immutable after newBPE and safe for concurrent use.
type bpe struct {
	ranks map[string]uint32 // every token
	// Faster lookups by length: most lookups of the merge loop are 2 to 7
	// bytes long, and these tables are several times faster than a
	// map[string] lookup (and small enough to stay mostly in cache).
	single [256]uint32 // 1 byte
	pairs  []uint32    // 2 bytes b0 b1, at b0<<8|b1
	mid    midTable    // 3 to 5 bytes
	wide   wideTable   // 6 and 7 bytes
	// filter is a one-hash Bloom filter over the tokens of 3 or more bytes:
	// most lookups of the merge loop are misses, and the filter (256 KiB)
	// answers most of them without touching the larger tables.
	filter []uint64
}

const filterBits = 21

// filterKey returns a key for the Bloom filter of a string of 3 or more
// bytes (short ones are packed exactly, long ones summarised by length,
// head and tail).
func filterKey(s string) uint64 {
	if len(s) <= 7 {
		return packShort(s)
	}
	return uint64(len(s))<<56 ^ le64(s) ^ bits.RotateLeft64(le64(s[len(s)-8:]), 29)
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func filterSlot(k uint64) uint64 { return (k * 0xD6E8FEB86659FD93) >> (64 - filterBits) }

func newBPE(ranks map[string]uint32) *bpe {
	classOnce.Do(initClasses)
	b := &bpe{ranks: ranks, pairs: make([]uint32, 1<<16), filter: make([]uint64, 1<<filterBits/64)}
	for i := range b.single {
		b.single[i] = noRank
	}
	for i := range b.pairs {
		b.pairs[i] = noRank
	}
	nMid, nWide := 0, 0
	for s := range ranks {
		switch {
		case len(s) >= 3 && len(s) <= 5:
			nMid++
		case len(s) == 6 || len(s) == 7:
			nWide++
		}
	}
	b.mid.init(nMid)
	b.wide.init(nWide)
	for s, r := range ranks {
		if len(s) >= 3 {
			h := filterSlot(filterKey(s))
			b.filter[h/64] |= 1 << (h % 64)
		}
		switch len(s) {
		case 1:
			b.single[s[0]] = r
		case 2:
			b.pairs[uint16(s[0])<<8|uint16(s[1])] = r
		case 3, 4, 5:
			b.mid.put(packShort(s), r)
		case 6, 7:
			b.wide.put(packShort(s), r)
		}
	}
	return b
}

// rank returns the rank of token s, or noRank.
func (b *bpe) rank(s string) uint32 {
	switch len(s) {
	case 1:
		return b.single[s[0]]
	case 2:
		return b.pairs[uint16(s[0])<<8|uint16(s[1])]
	}
	k := filterKey(s)
	if h := filterSlot(k); b.filter[h/64]&(1<<(h%64)) == 0 {
		return noRank
	}
	switch len(s) {
	case 3, 4, 5:
		return b.mid.get(k)
	case 6, 7:
		return b.wide.get(k)
	}
	if r, ok := b.ranks[s]; ok {
		return r
	}
	return noRank
}

// packShort packs a string of at most 7 bytes and its length into a
// non-zero uint64 (bytes little-endian, length in the top byte).
func packShort(s string) uint64 {
	k := uint64(len(s)) << 56
	for i := 0; i < len(s); i++ {
		k |= uint64(s[i]) << (8 * i)
	}
	return k
}

func hashSlot(k uint64, shift uint) uint64 { return (k * 0x9E3779B97F4A7C15) >> shift }

func tableBits(n int) uint {
	bits := uint(4)
	for 1<<bits < 3*n {
		bits++
	}
	return bits
}

// midTable is an open-addressing hash table for keys of 3 to 5 bytes:
// the packed key (at most 43 bits: 40 of bytes, the length above) and the
// rank (17 bits) share one uint64 slot; 0 is an empty slot.
type midTable struct {
	slots []uint64
	shift uint
}

const rankBits = 17 // ranks are below 1<<17

func midKey(k uint64) uint64 { return k&(1<<40-1) | k>>56<<40 }

func (t *midTable) init(n int) {
	bits := tableBits(n)
	t.slots = make([]uint64, 1<<bits)
	t.shift = 64 - bits
}

func (t *midTable) put(k uint64, v uint32) {
	k = midKey(k)
	mask := uint64(len(t.slots) - 1)
	for i := hashSlot(k, t.shift); ; i = (i + 1) & mask {
		if t.slots[i] == 0 || t.slots[i]>>rankBits == k {
			t.slots[i] = k<<rankBits | uint64(v)
			return
		}
	}
}

func (t *midTable) get(k uint64) uint32 {
	k = midKey(k)
	mask := uint64(len(t.slots) - 1)
	for i := hashSlot(k, t.shift); ; i = (i + 1) & mask {
		sl := t.slots[i]
		if sl>>rankBits == k {
			return uint32(sl & (1<<rankBits - 1))
		}
		if sl == 0 {
			return noRank
		}
	}
}

// wideTable is an open-addressing hash table for keys of 6 and 7 bytes;
// key 0 marks an empty slot.
type wideTable struct {
	slots []wideSlot
	shift uint
}

type wideSlot struct {
	key uint64
	val uint32
}

func (t *wideTable) init(n int) {
	bits := tableBits(n)
	t.slots = make([]wideSlot, 1<<bits)
	t.shift = 64 - bits
}

func (t *wideTable) put(k uint64, v uint32) {
	mask := uint64(len(t.slots) - 1)
	for i := hashSlot(k, t.shift); ; i = (i + 1) & mask {
		if t.slots[i].key == 0 || t.slots[i].key == k {
			t.slots[i] = wideSlot{k, v}
			return
		}
	}
}

func (t *wideTable) get(k uint64) uint32 {
	mask := uint64(len(t.slots) - 1)
	for i := hashSlot(k, t.shift); ; i = (i + 1) & mask {
		switch t.slots[i].key {
		case k:
			return t.slots[i].val
		case 0:
			return noRank
		}
	}
}

// Character classes of the pre-tokenizer: \p{L}, \p{N}, \s, anything else.
const (
	clsOther uint8 = iota
	clsLetter
	clsNumber
	clsSpace
)

var (
	classOnce sync.Once
	bmpClass  []uint8 // class of every rune below 0x10000
)

func initClasses() {
	bmpClass = make([]uint8, 0x10000)
	for r := range rune(0x10000) {
		bmpClass[r] = slowClass(r)
	}
}

func slowClass(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

func class(r rune) uint8 {
	if r < 0x10000 {
		return bmpClass[r]
	}
	return slowClass(r)
}

// decodeAt decodes the rune at s[i] (inlined ASCII fast path).
func decodeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return decodeMulti(s, i)
}

func decodeMulti(s string, i int) (rune, int) { return utf8.DecodeRuneInString(s[i:]) }

// nextPiece returns the end of the pre-tokenizer piece starting at i
// (i < len(s)), and ext: the scan read only s[i:ext], so the piece is the
// same in any string that agrees with s on s[:ext] (a prefix s[:b] with
// b >= ext in particular). The alternatives are tried in the regexp's
// order, with its backtracking resolved by hand.
func nextPiece(s string, i int) (end, ext int) {
	r, n := decodeAt(s, i)
	j := i + n
	if r == '\'' && j < len(s) {
		if m := contraction(s[j:]); m > 0 {
			return j + m, after(s, j+m)
		}
	}
	c := class(r)
	switch c {
	case clsLetter: // [^\r\n\p{L}\p{N}]? matches empty, then \p{L}+
		e := runEnd(s, j, clsLetter)
		return e, after(s, e)
	case clsNumber: // \p{N}{1,3}
		for k := 1; k < 3 && j < len(s); k++ {
			r2, n2 := decodeAt(s, j)
			if class(r2) != clsNumber {
				break
			}
			j += n2
		}
		return j, after(s, j)
	}
	// r is whitespace or "other": one such rune (not CR/LF) before letters.
	if r != '\r' && r != '\n' && j < len(s) {
		if r2, n2 := decodeAt(s, j); class(r2) == clsLetter {
			e := runEnd(s, j+n2, clsLetter)
			return e, after(s, e)
		}
	}
	if c == clsOther { // [^\s\p{L}\p{N}]+[\r\n]*
		e := newlinesEnd(s, runEnd(s, j, clsOther))
		return e, after(s, e)
	}
	if r == ' ' && j < len(s) { // " " then [^\s\p{L}\p{N}]+[\r\n]*
		if r2, n2 := decodeAt(s, j); class(r2) == clsOther {
			e := newlinesEnd(s, runEnd(s, j+n2, clsOther))
			return e, after(s, e)
		}
	}
	// Whitespace run [i, k).
	k, last, lastNL := i, i, -1
	for k < len(s) {
		r2, n2 := decodeAt(s, k)
		if class(r2) != clsSpace {
			break
		}
		if r2 == '\r' || r2 == '\n' {
			lastNL = k
		}
		last = k
		k += n2
	}
	ext = after(s, k)
	switch {
	case lastNL >= 0: // \s*[\r\n]+ : up to the last CR/LF of the run
		return lastNL + 1, ext
	case k == len(s): // \s+(?!\S) at the end of the text
		return k, ext
	case last > i: // \s+(?!\S) : all but the last whitespace rune
		return last, ext
	}
	return j, ext // \s+ : a single whitespace rune before a non-space
}

// after returns the end of the rune at i, or i at the end of s.
func after(s string, i int) int {
	if i >= len(s) {
		return i
	}
	_, n := decodeAt(s, i)
	return i + n
}

// contraction matches 's 't 're 've 'm 'll 'd (ASCII case-insensitive)
// after the apostrophe and returns its length without the apostrophe.
func contraction(t string) int {
	switch t[0] | 0x20 {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(t) > 1 && t[1]|0x20 == 'e' {
			return 2
		}
	case 'l':
		if len(t) > 1 && t[1]|0x20 == 'l' {
			return 2
		}
	}
	return 0
}

func runEnd(s string, j int, cls uint8) int {
	for j < len(s) {
		if c := s[j]; c < utf8.RuneSelf {
			if bmpClass[c] != cls {
				break
			}
			j++
			continue
		}
		r, n := decodeMulti(s, j)
		if class(r) != cls {
			break
		}
		j += n
	}
	return j
}

func newlinesEnd(s string, j int) int {
	for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
		j++
	}
	return j
}

// Count returns the number of cl100k_base tokens in text.
func (b *bpe) Count(text string) int { return b.count(text, math.MaxInt) }

// CountUpTo implements LimitCounter: it stops tokenizing once more than
// limit tokens have been seen.
func (b *bpe) CountUpTo(text string, limit int) int { return b.count(text, limit) }

func (b *bpe) count(text string, limit int) int {
	var sc *scratch
	n := 0
	for i := 0; i < len(text) && n <= limit; {
		j, _ := nextPiece(text, i)
		n += b.pieceCount(text[i:j], &sc)
		i = j
	}
	if sc != nil {
		scratchPool.Put(sc)
	}
	return n
}

// TokenEnds implements Tokenizer.
func (b *bpe) TokenEnds(dst []int, text string) []int {
	var sc *scratch
	for i := 0; i < len(text); {
		j, _ := nextPiece(text, i)
		dst = b.appendEnds(dst, text, i, j, &sc)
		i = j
	}
	if sc != nil {
		scratchPool.Put(sc)
	}
	return dst
}

// pieceCount returns the number of tokens of piece p. *sc is taken from
// scratchPool when a merge needs it (the caller puts it back).
func (b *bpe) pieceCount(p string, sc **scratch) int {
	if b.rank(p) != noRank {
		return 1
	}
	if *sc == nil {
		*sc = scratchPool.Get().(*scratch)
	}
	return len(b.merge(p, *sc)) - 1
}

// appendEnds appends the token ends (offsets in text) of the piece
// text[i:j], taking *sc as pieceCount does.
func (b *bpe) appendEnds(dst []int, text string, i, j int, sc **scratch) []int {
	if b.rank(text[i:j]) != noRank {
		return append(dst, j)
	}
	if *sc == nil {
		*sc = scratchPool.Get().(*scratch)
	}
	for _, q := range b.merge(text[i:j], *sc)[1:] {
		dst = append(dst, i+int(q.start))
	}
	return dst
}

// encode returns the token IDs of text (tests compare them with the
// library's codec).
func (b *bpe) encode(text string) []int {
	var ids []int
	ends := b.TokenEnds(nil, text)
	start := 0
	for _, e := range ends {
		ids = append(ids, int(b.rank(text[start:e])))
		start = e
	}
	return ids
}

// part is a boundary of the merge: the token starting at start; rank is
// the rank of the token formed by merging it with the next part.
type part struct {
	start int32
	rank  uint32
}

const noRank = math.MaxUint32

// heapThreshold is the piece length (bytes) from which merge uses the
// O(n log n) heap instead of tiktoken's O(n²) scan. Letter runs without
// spaces (Japanese) can be whole paragraphs long.
const heapThreshold = 8

type scratch struct {
	parts []part
	next  []int32
	prev  []int32
	rank  []uint32
	heap  []uint64
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// merge returns the parts of piece p after byte-pair merging, with a
// sentinel part at len(p): part k is p[parts[k].start:parts[k+1].start].
// The result aliases sc.
func (b *bpe) merge(p string, sc *scratch) []part {
	if len(p) >= heapThreshold {
		return b.mergeHeap(p, sc)
	}
	return b.mergeScan(p, sc)
}

// mergeScan is tiktoken's byte_pair_merge: find the lowest-ranked pair by
// a linear scan, merge it, repeat.
func (b *bpe) mergeScan(p string, sc *scratch) []part {
	parts := sc.parts[:0]
	for i := 0; i <= len(p); i++ {
		parts = append(parts, part{int32(i), noRank})
	}
	for i := 0; i+2 < len(parts); i++ {
		parts[i].rank = b.rank(p[parts[i].start:parts[i+2].start])
	}
	for {
		minRank, minI := uint32(noRank), -1
		for i, q := range parts[:len(parts)-1] {
			if q.rank < minRank {
				minRank, minI = q.rank, i
			}
		}
		if minI < 0 {
			break
		}
		parts = append(parts[:minI+1], parts[minI+2:]...)
		parts[minI].rank = noRank
		if minI+2 < len(parts) {
			parts[minI].rank = b.rank(p[parts[minI].start:parts[minI+2].start])
		}
		if minI > 0 {
			parts[minI-1].rank = b.rank(p[parts[minI-1].start:parts[minI+1].start])
		}
	}
	sc.parts = parts
	return parts
}

// mergeHeap is merge with a linked list of parts and a min-heap of
// (rank, start) keys, so ties still go to the leftmost pair and the result
// equals the scan's. Stale heap entries (a part merged away, or whose rank
// changed) are skipped when popped: distinct pairs starting at the same
// part are distinct strings and so have distinct ranks.
func (b *bpe) mergeHeap(p string, sc *scratch) []part {
	n := len(p)
	next, prev, rank := grow(sc.next, n+1), grow(sc.prev, n+1), grow(sc.rank, n+1)
	h := sc.heap[:0]
	for i := 0; i <= n; i++ {
		next[i], prev[i], rank[i] = int32(i+1), int32(i-1), noRank
	}
	next[n] = -1
	for i := 0; i+2 <= n; i++ {
		if r := b.rank(p[i : i+2]); r != noRank {
			rank[i] = r
			h = append(h, uint64(r)<<32|uint64(i))
		}
	}
	heapify(h)
	pairRank := func(i int32) uint32 {
		j := next[i]
		if j < 0 || next[j] < 0 {
			return noRank
		}
		return b.rank(p[i:next[j]])
	}
	for len(h) > 0 {
		var key uint64
		key, h = heapPop(h)
		r, i := uint32(key>>32), int32(key&0xffffffff)
		if rank[i] != r { // merged away (rank noRank) or re-ranked
			continue
		}
		j := next[i]
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		next[j], rank[j] = -1, noRank // dead
		if rank[i] = pairRank(i); rank[i] != noRank {
			h = heapPush(h, uint64(rank[i])<<32|uint64(i))
		}
		if pi := prev[i]; pi >= 0 {
			if rank[pi] = pairRank(pi); rank[pi] != noRank {
				h = heapPush(h, uint64(rank[pi])<<32|uint64(pi))
			}
		}
	}
	parts := sc.parts[:0]
	for i := int32(0); i >= 0; i = next[i] {
		parts = append(parts, part{start: i})
	}
	sc.next, sc.prev, sc.rank, sc.heap, sc.parts = next, prev, rank, h, parts
	return parts
}

// grow returns s resized to n, reallocated only when too small (the
// contents are not kept).
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func heapify(h []uint64) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
}

func siftDown(h []uint64, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r] < h[l] {
			m = r
		}
		if h[i] <= h[m] {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func heapPush(h []uint64, k uint64) []uint64 {
	h = append(h, k)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

func heapPop(h []uint64) (uint64, []uint64) {
	k := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	siftDown(h, 0)
	return k, h
}
