package producer

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress counts units as they finish and shows it: a bar redrawn in
// place on a terminal, plain lines otherwise (in the Python producer's
// "進捗: 完了=X/N" form, which old tooling greps for).
type Progress struct {
	out      io.Writer
	terminal bool
	every    time.Duration

	mu        sync.Mutex // guards the fields below
	total     int
	succeeded int
	failed    int
	retries   int
	start     time.Time
	lastDraw  time.Time
	lastLen   int
}

// NewProgress reports on out; terminal selects the in-place bar.
func NewProgress(out io.Writer, terminal bool, total int) *Progress {
	every := 5 * time.Second
	if terminal {
		every = 200 * time.Millisecond
	}
	return &Progress{out: out, terminal: terminal, every: every, total: total, start: time.Now()}
}

// Done records a finished unit.
func (p *Progress) Done(u *Unit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u.State == StateSucceeded {
		p.succeeded++
	} else {
		p.failed++
	}
	p.maybeDraw(false)
}

// Retry records a retry of a unit.
func (p *Progress) Retry(*Unit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retries++
	p.maybeDraw(false)
}

// Tick redraws if it is time (call it periodically while waiting).
func (p *Progress) Tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maybeDraw(false)
}

// Finish draws the final state and ends the bar's line.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maybeDraw(true)
	if p.terminal {
		fmt.Fprintln(p.out)
	}
}

func (p *Progress) maybeDraw(force bool) {
	now := time.Now()
	if !force && now.Sub(p.lastDraw) < p.every {
		return
	}
	p.lastDraw = now
	done := p.succeeded + p.failed
	pending := p.total - done
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed
	}
	eta := "?"
	if rate > 0 && pending > 0 {
		eta = time.Duration(float64(pending) / rate * float64(time.Second)).Round(time.Second).String()
	} else if pending == 0 {
		eta = "0s"
	}
	if !p.terminal {
		fmt.Fprintf(p.out, "進捗: 完了=%d/%d (成功=%d, 失敗=%d, 処理中=%d, 再試行=%d) %.1f tasks/s, ETA %s, 経過=%.0f秒\n",
			done, p.total, p.succeeded, p.failed, pending, p.retries, rate, eta, elapsed)
		return
	}
	const width = 30
	filled := 0
	if p.total > 0 {
		filled = done * width / p.total
	}
	line := fmt.Sprintf("[%s%s] %d/%d  ok %d  failed %d  pending %d  retries %d  %.1f/s  ETA %s",
		strings.Repeat("#", filled), strings.Repeat("-", width-filled), done, p.total,
		p.succeeded, p.failed, pending, p.retries, rate, eta)
	pad := ""
	if n := p.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.lastLen = len(line)
	fmt.Fprintf(p.out, "\r%s%s", line, pad)
}
