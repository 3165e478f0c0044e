package cli

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress shows a long task's advance on a terminal: one line rewritten
// in place at most every 200 ms, and a last one when done. Written to
// something that is not a terminal, it prints only the last line.
type progress struct {
	w          io.Writer
	what       string
	total, cur int64
	tty        bool
	last       time.Time
	start      time.Time
}

func newProgress(w io.Writer, what string, total int64) *progress {
	p := &progress{w: w, what: what, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) set(n int64) {
	p.cur = n
	if p.tty && time.Since(p.last) >= 200*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.w, "\r%s", p.line())
	}
}

func (p *progress) line() string {
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.cur) / float64(p.total)
	}
	const width = 30
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if float64(i) < pct*width/100 {
			bar[i] = '#'
		}
	}
	return fmt.Sprintf("%s [%s] %d/%d (%.0f%%)", p.what, bar, p.cur, p.total, pct)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprint(p.w, "\r")
	}
	fmt.Fprintf(p.w, "%s in %v\n", p.line(), time.Since(p.start).Round(time.Millisecond))
}
