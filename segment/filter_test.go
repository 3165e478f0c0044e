package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// filterInput is an idempotent producer's batch of six records at base
// offset 100 with keys, headers and a tombstone (record 3), in codec c.
func filterInput(t testing.TB, c int8) []byte {
	t.Helper()
	var keys, values [][]byte
	var headers [][]kmsg.Header
	for i := range 6 {
		keys = append(keys, fmt.Appendf(nil, "key-%d", i%3))
		values = append(values, bytes.Repeat(fmt.Appendf(nil, "value %d ", i), 30))
		headers = append(headers, []kmsg.Header{{Key: "h", Value: fmt.Appendf(nil, "%d", i)}, {Key: "null"}})
	}
	raw := segmenttest.Batch(segmenttest.BatchOptions{Keys: keys, Values: values, Headers: headers, Tombstones: []bool{3: true},
		BaseOffset: 100, Timestamp: 1_700_000_000_000, Idempotent: true, ProducerID: 7, ProducerEpoch: 2, BaseSequence: 40, LeaderEpoch: 3})
	out, err := Recompress(raw, Codec{Type: c, Level: DefaultLevel})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFilterRecords proves, for every codec, that a filtered batch keeps
// exactly the chosen records byte for byte (keys, null values, headers,
// timestamps, offset deltas), stays in its codec, keeps the header fields
// offsets and producer state depend on, recomputes record count and max
// timestamp, and carries a valid CRC.
func TestFilterRecords(t *testing.T) {
	for c, name := range codecNames {
		t.Run(name, func(t *testing.T) {
			in := filterInput(t, c)
			inRecs, err := DecodeRecords(in)
			if err != nil {
				t.Fatal(err)
			}
			inRecs = append([]Record(nil), inRecs...)
			out, kept, err := FilterRecords(in, func(r Record) bool { return r.OffsetDelta%2 == 1 })
			if err != nil || kept != 3 {
				t.Fatalf("kept %d (%v), want 3", kept, err)
			}
			bs, err := SplitBatches(out, true)
			if err != nil || len(bs) != 1 {
				t.Fatalf("filtered batch: %d batches, %v", len(bs), err)
			}
			hi, _ := ParseBatchHeader(in)
			ho := bs[0].Header
			if ho.Compression() != c || ho.RecordCount != 3 || ho.MaxTimestamp != inRecs[5].Timestamp {
				t.Errorf("codec %d, %d records, max timestamp %d; want %d, 3, %d", ho.Compression(), ho.RecordCount, ho.MaxTimestamp, c, inRecs[5].Timestamp)
			}
			same := func(h BatchHeader) [8]int64 {
				return [8]int64{h.BaseOffset, int64(h.LastOffsetDelta), h.BaseTimestamp, h.ProducerID, int64(h.ProducerEpoch), int64(h.BaseSequence), int64(h.LeaderEpoch), int64(h.Attributes)}
			}
			if same(hi) != same(ho) {
				t.Errorf("header %v, want %v", same(ho), same(hi))
			}
			got, err := DecodeRecords(out)
			if err != nil {
				t.Fatal(err)
			}
			want := []Record{inRecs[1], inRecs[3], inRecs[5]}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("records %+v, want %+v", got, want)
			}
			if !got[1].ValueNull || got[1].KeyNull {
				t.Errorf("tombstone: value null %v, key null %v", got[1].ValueNull, got[1].KeyNull)
			}
		})
	}
}

// TestFilterRecordsEdges proves the edges: keeping every record returns the
// batch itself; keeping none leaves an uncompressed header-only batch
// spanning the same offsets with the original max timestamp, which readers
// split and decode to no record; a control batch is returned untouched
// without asking keep; a damaged batch is an error and returns nothing.
func TestFilterRecordsEdges(t *testing.T) {
	in := filterInput(t, CompressionZstd)
	out, kept, err := FilterRecords(in, func(Record) bool { return true })
	if err != nil || kept != 6 || &out[0] != &in[0] || len(out) != len(in) {
		t.Errorf("keep all: kept %d, same bytes %v, err %v", kept, len(out) == len(in) && &out[0] == &in[0], err)
	}

	out, kept, err = FilterRecords(in, func(Record) bool { return false })
	if err != nil || kept != 0 || len(out) != BatchHeaderSize {
		t.Fatalf("keep none: %d bytes, kept %d, %v; want a %d-byte header", len(out), kept, err, BatchHeaderSize)
	}
	bs, err := SplitBatches(out, true)
	hi, _ := ParseBatchHeader(in)
	if err != nil || len(bs) != 1 || bs[0].Header.Compression() != CompressionNone || bs[0].Header.RecordCount != 0 ||
		bs[0].Header.LastOffset() != hi.LastOffset() || bs[0].Header.MaxTimestamp != hi.MaxTimestamp || bs[0].Header.ProducerID != 7 {
		t.Errorf("empty batch: %+v (%v)", bs, err)
	}
	if recs, err := DecodeRecords(out); err != nil || len(recs) != 0 {
		t.Errorf("empty batch decodes to %d records, %v", len(recs), err)
	}

	ctrl := segmenttest.Batch(segmenttest.BatchOptions{Control: true, Transactional: true, Keys: [][]byte{{0, 0, 0, 1}}, Values: [][]byte{{0, 0, 0, 0, 0, 0}}})
	out, _, err = FilterRecords(ctrl, func(Record) bool { t.Error("keep called for a control batch"); return false })
	if err != nil || !bytes.Equal(out, ctrl) {
		t.Errorf("control batch: %v, changed %v", err, !bytes.Equal(out, ctrl))
	}

	bad := append([]byte(nil), in...)
	bad[len(bad)-3] ^= 0x40
	if out, _, err := FilterRecords(bad, func(Record) bool { return false }); !errors.Is(err, ErrCRC) || out != nil {
		t.Errorf("damaged batch: %d bytes, %v; want nothing and ErrCRC", len(out), err)
	}
}

// FuzzFilterRecords proves FilterRecords never panics on any input, and
// that whatever it returns is one valid batch spanning the input's offsets.
func FuzzFilterRecords(f *testing.F) {
	for c := range codecNames {
		f.Add(filterInput(f, c), uint8(0b101010))
	}
	f.Add(segmenttest.Batch(segmenttest.BatchOptions{Records: 3}), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, mask uint8) {
		out, _, err := FilterRecords(raw, func(r Record) bool { return mask&(1<<(uint(r.OffsetDelta)%8)) != 0 })
		if err != nil {
			return
		}
		bs, err := SplitBatches(out, true)
		if err != nil || len(bs) != 1 {
			t.Fatalf("output: %d batches, %v", len(bs), err)
		}
		hi, _ := ParseBatchHeader(raw)
		if bs[0].Header.BaseOffset != hi.BaseOffset || bs[0].Header.LastOffsetDelta != hi.LastOffsetDelta {
			t.Fatalf("output spans %d+%d, input %d+%d", bs[0].Header.BaseOffset, bs[0].Header.LastOffsetDelta, hi.BaseOffset, hi.LastOffsetDelta)
		}
		if _, err := DecodeRecords(out); err != nil && !hi.IsControl() {
			t.Fatalf("output does not decode: %v", err)
		}
	})
}

// TestCoalesceEmpty proves two emptied batches merge into one header-only
// batch spanning both (CRC valid, no producer, no transactional bit, the
// larger max timestamp), and that batches holding a record, control
// batches and spans beyond int32 are refused; EmptyBatch turns a marker
// into such a header.
func TestCoalesceEmpty(t *testing.T) {
	empty := func(o segmenttest.BatchOptions) []byte {
		out, _, err := FilterRecords(segmenttest.Batch(o), func(Record) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a := empty(segmenttest.BatchOptions{Keys: [][]byte{{1}, {2}}, Values: [][]byte{{1}, {2}}, Timestamp: 100, Idempotent: true, ProducerID: 7, Transactional: true})
	b := empty(segmenttest.BatchOptions{Keys: [][]byte{{1}, {2}, {3}}, Values: [][]byte{{1}, {2}, {3}}, Timestamp: 500})
	m, ok := CoalesceEmpty(a, b)
	if !ok {
		t.Fatal("two emptied batches not merged")
	}
	h, err := ParseBatchHeader(m)
	if err != nil || VerifyBatchCRC(m) != nil || len(m) != BatchHeaderSize || h.RecordCount != 0 || h.OffsetSpan() != 5 ||
		h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 || h.IsTransactional() || h.IsControl() ||
		h.BaseTimestamp != 100 || h.MaxTimestamp != 502 {
		t.Fatalf("merged: %+v (%v, CRC %v)", h, err, VerifyBatchCRC(m))
	}
	if m2, ok := CoalesceEmpty(m, a); !ok || func() int64 { h, _ := ParseBatchHeader(m2); return h.OffsetSpan() }() != 7 {
		t.Error("a merged batch does not merge again")
	}
	full := segmenttest.Batch(segmenttest.BatchOptions{Keys: [][]byte{{1}}, Values: [][]byte{{1}}})
	ctrl := segmenttest.Batch(segmenttest.BatchOptions{Control: true, Transactional: true, Keys: [][]byte{{0, 0, 0, 1}}, Values: [][]byte{{0, 0, 0, 0, 0, 0}}})
	// A marker replaced by EmptyBatch merges like any emptied batch.
	em, err := EmptyBatch(ctrl)
	he, _ := ParseBatchHeader(em)
	hc, _ := ParseBatchHeader(ctrl)
	if err != nil || VerifyBatchCRC(em) != nil || len(em) != BatchHeaderSize || he.IsControl() || he.IsTransactional() || he.RecordCount != 0 ||
		he.OffsetSpan() != hc.OffsetSpan() || he.ProducerID != -1 {
		t.Errorf("EmptyBatch of a marker: %+v (%v)", he, err)
	}
	if _, ok := CoalesceEmpty(a, em); !ok {
		t.Error("an emptied marker does not merge")
	}
	huge := append([]byte(nil), a...)
	binary.BigEndian.PutUint32(huge[offLastDelta:], math.MaxInt32)
	binary.BigEndian.PutUint32(huge[offCRC:], crc32.Checksum(huge[batchCRCStart:], castagnoli))
	for name, pair := range map[string][2][]byte{"a record": {a, full}, "control": {ctrl, a}, "beyond int32": {huge, b}, "truncated": {a[:40], b}} {
		if _, ok := CoalesceEmpty(pair[0], pair[1]); ok {
			t.Errorf("%s: merged", name)
		}
	}
}
