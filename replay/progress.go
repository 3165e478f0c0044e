package replay

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/shale-dev/shale/internal/units"
)

// StartProgress redraws a one-line progress bar on w (a terminal) every
// interval: bytes read of total, records written, rate and ETA. stop
// draws the final state, ends the line and returns once drawing stopped.
func StartProgress(w io.Writer, st *Stats, total int64, interval time.Duration) (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r%s\n", ProgressLine(st.Bytes.Load(), total, st.Records.Load(), time.Since(start)))
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%s", ProgressLine(st.Bytes.Load(), total, st.Records.Load(), time.Since(start)))
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// ProgressLine renders one progress bar line.
func ProgressLine(bytes, total, records int64, elapsed time.Duration) string {
	const width = 24
	frac := 1.0
	if total > 0 {
		frac = min(float64(bytes)/float64(total), 1)
	}
	filled := int(frac * width)
	bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(bytes) / s
	}
	eta := "--"
	if rate > 0 && total > bytes {
		eta = time.Duration(float64(total-bytes) / rate * float64(time.Second)).Round(time.Second).String()
	} else if total <= bytes {
		eta = "0s"
	}
	return fmt.Sprintf("[%s] %3.0f%%  %s / %s  %d records  %s/s  ETA %s   ",
		bar, frac*100, units.HumanBytes(bytes), units.HumanBytes(total), records, units.HumanBytes(int64(rate)), eta)
}
