package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/shale-dev/shale/metrics"
)

// StageStat is one ack stage's share of a run, from the agent's
// shale_produce_stage_seconds histogram (the difference between a scrape
// before and after producing). Percentiles are interpolated within the
// histogram's buckets (as Prometheus' histogram_quantile does), so they are
// approximate; the mean is exact.
type StageStat struct {
	Stage  string  `json:"stage"`
	Count  float64 `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
}

// stageHist is one stage's cumulative histogram as scraped.
type stageHist struct {
	les   []float64 // bucket bounds, seconds, ascending (+Inf last)
	cum   []float64 // cumulative counts per bound
	sum   float64
	count float64
}

const stageMetric = "shale_produce_stage_seconds"

// scrapeStages reads the stage histograms of an agent's admin server.
func scrapeStages(admin string) (map[string]*stageHist, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]*stageHist{}
	get := func(stage string) *stageHist {
		h := out[stage]
		if h == nil {
			h = &stageHist{}
			out[stage] = h
		}
		return h
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, stageMetric) {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		lv := parseLabels(strings.TrimSuffix(labels, "}"))
		h := get(lv["stage"])
		switch strings.TrimPrefix(name, stageMetric) {
		case "_bucket":
			le, err := strconv.ParseFloat(lv["le"], 64)
			if err != nil {
				continue
			}
			h.les = append(h.les, le)
			h.cum = append(h.cum, v)
		case "_sum":
			h.sum = v
		case "_count":
			h.count = v
		}
	}
	return out, sc.Err()
}

func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// stageStats is what happened between two scrapes, in metrics.Stages order.
func stageStats(before, after map[string]*stageHist) []StageStat {
	var out []StageStat
	for _, st := range metrics.Stages {
		a := after[st]
		if a == nil {
			continue
		}
		d := stageHist{les: a.les, cum: slices.Clone(a.cum), sum: a.sum, count: a.count}
		if b := before[st]; b != nil && len(b.cum) == len(d.cum) {
			for i := range d.cum {
				d.cum[i] -= b.cum[i]
			}
			d.sum -= b.sum
			d.count -= b.count
		}
		s := StageStat{Stage: st, Count: d.count, MeanMs: -1, P50ms: -1, P99ms: -1}
		if d.count > 0 {
			s.MeanMs = d.sum / d.count * 1000
			s.P50ms = d.quantile(0.50) * 1000
			s.P99ms = d.quantile(0.99) * 1000
		}
		out = append(out, s)
	}
	return out
}

// quantile interpolates linearly within the bucket holding rank q.
func (h *stageHist) quantile(q float64) float64 {
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, le := range h.les {
		if h.cum[i] >= rank {
			if math.IsInf(le, 1) {
				return lower // beyond the last bound: report the bound
			}
			in := h.cum[i] - below
			if in <= 0 {
				return le
			}
			return lower + (le-lower)*(rank-below)/in
		}
		lower, below = le, h.cum[i]
	}
	return lower
}

// stageTable prints the ack budget of the runs that have one: a row per
// stage, mean / p50 / p99 ms per run.
func stageTable(w io.Writer, rs []Result) {
	var with []Result
	for _, r := range rs {
		if len(r.Stages) > 0 {
			with = append(with, r)
		}
	}
	if len(with) == 0 {
		return
	}
	fmt.Fprintln(w, "ack budget per stage (agent histograms, ms: mean / p50 / p99; buffer and reply per produce, the rest per object):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "stage\t")
	for _, r := range with {
		fmt.Fprintf(tw, "%s\t", r.label())
	}
	fmt.Fprintln(tw)
	for i, st := range metrics.Stages {
		fmt.Fprintf(tw, "%s\t", st)
		for _, r := range with {
			if i < len(r.Stages) && r.Stages[i].Stage == st && r.Stages[i].Count > 0 {
				s := r.Stages[i]
				fmt.Fprintf(tw, "%.1f / %.1f / %.1f\t", s.MeanMs, s.P50ms, s.P99ms)
			} else {
				fmt.Fprint(tw, "n/a\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
}
