package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
)

type row struct {
	name string
	get  func(Result) float64
	f    string
}

var rows = []row{
	{"produce MB/s", func(r Result) float64 { return r.ProduceMBps }, "%.1f"},
	{"produce records/s", func(r Result) float64 { return r.ProduceRecPerS }, "%.0f"},
	{"produce latency p50 ms", func(r Result) float64 { return r.ProduceP50ms }, "%.1f"},
	{"produce latency p99 ms", func(r Result) float64 { return r.ProduceP99ms }, "%.1f"},
	{"produce latency p99.9 ms", func(r Result) float64 { return r.ProduceP999ms }, "%.1f"},
	{"end-to-end latency p50 ms", func(r Result) float64 { return r.E2EP50ms }, "%.1f"},
	{"end-to-end latency p99 ms", func(r Result) float64 { return r.E2EP99ms }, "%.1f"},
	{"consume MB/s", func(r Result) float64 { return r.ConsumeMBps }, "%.1f"},
	{"S3 PUT/s", func(r Result) float64 { return r.S3PutsPerS }, "%.1f"},
	{"S3 GET/s", func(r Result) float64 { return r.S3GetsPerS }, "%.1f"},
	{"etcd txns/s", func(r Result) float64 { return r.EtcdTxnsPerS }, "%.1f"},
	{"server CPU (cores)", func(r Result) float64 { return r.CPUCores }, "%.2f"},
	{"server peak RSS MiB", func(r Result) float64 { return r.PeakRSSMiB }, "%.0f"},
}

func cell(v float64, f string) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf(f, v)
}

// table writes one scenario: a column per target, then each shale
// target's ratio to the first (kfake).
func table(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "metric\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t", r.Target)
	}
	for _, r := range rs[1:] {
		fmt.Fprintf(tw, "%s/%s\t", r.Target, rs[0].Target)
	}
	fmt.Fprintln(tw)
	for _, rw := range rows {
		fmt.Fprintf(tw, "%s\t", rw.name)
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t", cell(rw.get(r), rw.f))
		}
		base := rw.get(rs[0])
		for _, r := range rs[1:] {
			v := rw.get(r)
			if base > 0 && v >= 0 {
				fmt.Fprintf(tw, "%.2f\t", v/base)
			} else {
				fmt.Fprint(tw, "n/a\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func printTable(w io.Writer, rep Report) {
	fmt.Fprintf(w, "shale benchmark, %s — %s\n\n", rep.When.Format("2006-01-02 15:04 UTC"), rep.Options)
	for _, sc := range []struct {
		title string
		rs    []Result
	}{{"maximum throughput", rep.Max}, {"paced", rep.Paced}, {"paced, many partitions", rep.Many}} {
		if len(sc.rs) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: %d partitions, producers offer %s\n", sc.title, sc.rs[0].Partitions, offered(sc.rs[0].OfferedRecPerS))
		table(w, sc.rs)
		fmt.Fprintln(w)
		stageTable(w, sc.rs)
	}
	curveTable(w, rep.Curve)
	if len(rep.Clients) > 0 {
		fmt.Fprintf(w, "librdkafka producer (confluent-kafka, linger.ms=5): %d partitions, offers %s, default flush\n", rep.Clients[0].Partitions, offered(rep.Clients[0].OfferedRecPerS))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tclient\tproduce p50 ms\tp99 ms\tp99.9 ms\trecords/s\terrors\t")
		for _, r := range rep.Clients {
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.0f\t%d\t\n", r.Target, r.Client, r.ProduceP50ms, r.ProduceP99ms, r.ProduceP999ms, r.ProduceRecPerS, r.ProduceErrors)
		}
		tw.Flush()
		fmt.Fprintln(w)
		stageTable(w, rep.Clients)
	}
	groupsTable(w, rep.Groups)
	txnTable(w, rep.Txn)
	if rep.RawMinIOPutMBps > 0 {
		fmt.Fprintf(w, "raw MinIO (4 MiB objects, 4 at a time): PUT %.1f MB/s, GET %.1f MB/s\n", rep.RawMinIOPutMBps, rep.RawMinIOGetMBps)
		for _, r := range rep.Max {
			if r.Target == "shale-minio" {
				fmt.Fprintf(w, "shale-minio maximum produce MB/s / raw MinIO PUT MB/s: %.2f\n", r.ProduceMBps/rep.RawMinIOPutMBps)
			}
		}
	}
	if rep.RawPutMBps <= 0 {
		return
	}
	fmt.Fprintf(w, "raw S3 (same versitygw, %.0f MiB objects, 4 at a time): PUT %.1f MB/s, GET %.1f MB/s\n", rep.RawObjectMB, rep.RawPutMBps, rep.RawGetMBps)
	for _, r := range rep.Max {
		if r.Target == "shale-s3" && rep.RawPutMBps > 0 {
			fmt.Fprintf(w, "shale-s3 maximum produce MB/s / raw PUT MB/s: %.2f\n", r.ProduceMBps/rep.RawPutMBps)
		}
	}
	fmt.Fprintln(w, "(the S3 server and etcd of shale-s3 run outside the agent: its CPU and RSS are the agent's alone)")
}

// latencySVG plots produce and end-to-end latency percentiles per target
// as grouped bars on a log scale.
func latencySVG(rep Report) []byte {
	type bar struct {
		label string
		v     float64
	}
	const w, h, left, bottom = 760, 360, 60, 60
	series := []struct {
		name  string
		get   func(Result) float64
		color string
	}{
		{"produce p50", func(r Result) float64 { return r.ProduceP50ms }, "#4c78a8"},
		{"produce p99", func(r Result) float64 { return r.ProduceP99ms }, "#72b7b2"},
		{"produce p99.9", func(r Result) float64 { return r.ProduceP999ms }, "#54a24b"},
		{"e2e p50", func(r Result) float64 { return r.E2EP50ms }, "#f58518"},
		{"e2e p99", func(r Result) float64 { return r.E2EP99ms }, "#e45756"},
	}
	maxV := 1.0
	for _, r := range rep.Paced {
		for _, s := range series {
			maxV = max(maxV, s.get(r))
		}
	}
	logMax := math.Log10(maxV * 2)
	y := func(v float64) float64 {
		if v < 0.1 {
			v = 0.1
		}
		return float64(h-bottom) - (math.Log10(v)+1)/(logMax+1)*float64(h-bottom-20)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="14">Latency percentiles, ms (log scale), producers offering %s — %s</text>`+"\n", left, offeredOf(rep.Paced), rep.Options)
	for _, tick := range []float64{0.1, 1, 10, 100, 1000, 10000} {
		if math.Log10(tick) > logMax {
			break
		}
		ty := y(tick)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="5" y="%.1f">%g</text>`+"\n", left, w-10, ty, ty, ty+4, tick)
	}
	groupW := float64(w-left-20) / float64(max(1, len(rep.Paced)))
	barW := groupW / float64(len(series)+1)
	for i, r := range rep.Paced {
		gx := float64(left) + float64(i)*groupW
		for j, s := range series {
			v := s.get(r)
			if v < 0 {
				continue
			}
			x := gx + float64(j)*barW
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.1f ms</title></rect>`+"\n",
				x, y(v), barW-2, float64(h-bottom)-y(v), s.color, r.Target, s.name, v)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", gx+groupW/3, h-bottom+16, r.Target)
	}
	for j, s := range series {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			left+j*130, h-22, s.color, left+j*130+14, h-13, s.name)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func offeredOf(rs []Result) string {
	if len(rs) == 0 {
		return "-"
	}
	return offered(rs[0].OfferedRecPerS)
}

// curveTable prints produce latency per flush interval, a column per target.
func curveTable(w io.Writer, rs []Result) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "latency curve: %d partitions, producers offer %s, produce latency p50 / p99 ms\n", rs[0].Partitions, offered(rs[0].OfferedRecPerS))
	var names []string
	var flushes []float64
	cells := map[string]string{}
	for _, r := range rs {
		if !slices.Contains(names, r.Target) {
			names = append(names, r.Target)
		}
		if !slices.Contains(flushes, r.FlushMs) {
			flushes = append(flushes, r.FlushMs)
		}
		cells[fmt.Sprint(r.Target, r.FlushMs)] = fmt.Sprintf("%.1f / %.1f", r.ProduceP50ms, r.ProduceP99ms)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "flush interval\t")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t", n)
	}
	fmt.Fprintln(tw)
	for _, f := range flushes {
		fmt.Fprintf(tw, "%g ms\t", f)
		for _, n := range names {
			c, ok := cells[fmt.Sprint(n, f)]
			if !ok {
				c = "n/a"
			}
			fmt.Fprintf(tw, "%s\t", c)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
	stageTable(w, rs)
}
