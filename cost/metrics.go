package cost

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Counters are the figures of one agent's /metrics that the bill needs.
type Counters struct {
	// Put counts PUT-class requests (put, list); Get GET-class ones (get,
	// head). Deletes are free on S3 and not counted.
	Put, Get float64
	// OutBytes is the record bytes the agent returned to consumers.
	OutBytes float64
	// Lifecycle is what this agent's compaction, retention and garbage
	// collection did since it started.
	Lifecycle Lifecycle
	// Start is the process start (process_start_time_seconds); zero when
	// the agent does not export it.
	Start time.Time
}

// ParseMetrics reads the Prometheus text format and keeps what Counters
// holds; other lines are ignored.
func ParseMetrics(r io.Reader) (Counters, error) {
	var c Counters
	sc := bufio.NewScanner(io.LimitReader(r, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name, val := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "shale_s3_requests_total{"):
			switch {
			case strings.Contains(name, `op="put"`), strings.Contains(name, `op="list"`):
				c.Put += v
			case strings.Contains(name, `op="get"`), strings.Contains(name, `op="head"`):
				c.Get += v
			}
		case name == "shale_bytes_out_total":
			c.OutBytes = v
		case name == "shale_compaction_entries_replaced_total":
			c.Lifecycle.EntriesReplaced = v
		case name == "shale_compaction_segments_total":
			c.Lifecycle.Segments = v
		case name == "shale_gc_objects_deleted_total":
			c.Lifecycle.GCObjects = v
		case name == "shale_gc_bytes_deleted_total":
			c.Lifecycle.GCBytes = v
		case name == "shale_retention_offsets_dropped_total":
			c.Lifecycle.RetentionOffsets = v
		case name == "process_start_time_seconds" && v > 0 && v < 1e11: // a Unix time, not garbage
			c.Start = time.Unix(0, int64(v*1e9))
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("read metrics: %w", err)
	}
	return c, nil
}

// Scrape GETs url (an admin server's /metrics) and parses it.
func Scrape(ctx context.Context, client *http.Client, url string) (Counters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Counters{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Counters{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Counters{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// PerDay turns counters into daily rates. With a later sample (window > 0)
// it is the rate between the two; otherwise the average since the process
// started (now - c.Start), which needs Start. ok is false when neither
// gives a positive interval.
func PerDay(c Counters, later *Counters, window time.Duration, now time.Time) (put, get, out float64, ok bool) {
	if later != nil && window > 0 {
		d := window.Seconds() / 86400
		return (later.Put - c.Put) / d, (later.Get - c.Get) / d, (later.OutBytes - c.OutBytes) / d, true
	}
	if c.Start.IsZero() || !now.After(c.Start) {
		return 0, 0, 0, false
	}
	d := now.Sub(c.Start).Seconds() / 86400
	return c.Put / d, c.Get / d, c.OutBytes / d, true
}

// Lifecycle sums the agents' lifecycle counters: what compaction,
// retention and garbage collection did since each agent started (etcd
// keeps no history of it).
type Lifecycle struct {
	// EntriesReplaced index entries were replaced by Segments compacted
	// segments (one index key each).
	EntriesReplaced float64 `json:"compaction_entries_replaced"`
	Segments        float64 `json:"compaction_segments"`
	// GCObjects and GCBytes were deleted by garbage collection (objects
	// compaction replaced or retention dropped, once unreferenced).
	GCObjects float64 `json:"gc_objects_deleted"`
	GCBytes   float64 `json:"gc_bytes_deleted"`
	// RetentionOffsets is the offsets retention dropped.
	RetentionOffsets float64 `json:"retention_offsets_dropped"`
}

// Add sums two agents' counters.
func (l Lifecycle) Add(o Lifecycle) Lifecycle {
	return Lifecycle{l.EntriesReplaced + o.EntriesReplaced, l.Segments + o.Segments,
		l.GCObjects + o.GCObjects, l.GCBytes + o.GCBytes, l.RetentionOffsets + o.RetentionOffsets}
}

// KeysBefore is the index keys there would be without the compactions the
// counters saw: each segment took one key in place of the entries it
// replaced.
func (l Lifecycle) KeysBefore(now int) int {
	return now + int(l.EntriesReplaced-l.Segments)
}
