package segment

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestParseBatchHeaderFields proves every header field is decoded from the
// offset Kafka defines, on batches encoded by franz-go's kmsg.
func TestParseBatchHeaderFields(t *testing.T) {
	raw := segmenttest.Batch(segmenttest.BatchOptions{
		Records: 3, ExtraOffsets: 2, BaseOffset: 1234, Timestamp: 1_700_000_000_000, LeaderEpoch: 6,
		Idempotent: true, ProducerID: 99, ProducerEpoch: 3, BaseSequence: 17,
		Transactional: true, LogAppendTime: true, Value: []byte("v"),
	})
	h, err := ParseBatchHeader(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := BatchHeader{
		BaseOffset: 1234, Length: int32(len(raw)), LeaderEpoch: 6, Magic: 2,
		CRC: binary.BigEndian.Uint32(raw[17:]), Attributes: 0x18, LastOffsetDelta: 4,
		BaseTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_002,
		ProducerID: 99, ProducerEpoch: 3, BaseSequence: 17, RecordCount: 3,
	}
	if h != want {
		t.Fatalf("header\n got %+v\nwant %+v", h, want)
	}
	if h.Compression() != CompressionNone || h.TimestampType() != TimestampLogAppendTime || !h.IsTransactional() || h.IsControl() {
		t.Fatalf("attribute accessors wrong for %#x", h.Attributes)
	}
	if h.OffsetSpan() != 5 || h.LastOffset() != 1238 {
		t.Fatalf("OffsetSpan %d LastOffset %d, want 5 and 1238", h.OffsetSpan(), h.LastOffset())
	}
	ctl, _ := ParseBatchHeader(segmenttest.Batch(segmenttest.BatchOptions{Control: true}))
	if !ctl.IsControl() || ctl.IsTransactional() || ctl.TimestampType() != TimestampCreateTime {
		t.Fatalf("control batch attributes %#x misread", ctl.Attributes)
	}
}

// TestParseBatchHeaderRejects proves each malformed header is rejected with
// the right sentinel and that no header bytes beyond the input are needed.
func TestParseBatchHeaderRejects(t *testing.T) {
	valid := segmenttest.Batch(segmenttest.BatchOptions{Records: 2})
	patch := func(off int, v ...byte) []byte {
		b := append([]byte(nil), valid...)
		copy(b[off:], v)
		return b
	}
	u32 := func(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"empty", nil, ErrTruncated},
		{"16 bytes", valid[:16], ErrTruncated},
		{"60 bytes", valid[:60], ErrTruncated},
		{"magic 0 (v0 message set)", patch(16, 0), ErrMagic},
		{"magic 1 (v1 message set)", patch(16, 1), ErrMagic},
		{"magic 1, short v1 message", patch(16, 1)[:26], ErrMagic},
		{"magic 3", patch(16, 3), ErrMagic},
		{"batch length below header", patch(8, u32(48)...), ErrCorrupt},
		{"negative batch length", patch(8, u32(-1)...), ErrCorrupt},
		{"batch length overflows int32 total", patch(8, u32(0x7ffffff5)...), ErrCorrupt},
		{"negative record count", patch(57, u32(-1)...), ErrCorrupt},
		{"negative lastOffsetDelta", patch(23, u32(-1)...), ErrCorrupt},
		{"lastOffsetDelta below recordCount-1", patch(57, u32(3)...), ErrCorrupt},
		{"codec 5", patch(22, 5), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBatchHeader(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	// A compacted batch may hold fewer records than it spans, or none.
	for _, rc := range []int32{0, 1} {
		if _, err := ParseBatchHeader(patch(57, u32(rc)...)); err != nil {
			t.Fatalf("recordCount %d with lastOffsetDelta 1: %v", rc, err)
		}
	}
}

// TestVerifyBatchCRC proves the CRC covers attributes to the end and not
// baseOffset, batchLength's neighbours or anything before byte 21.
func TestVerifyBatchCRC(t *testing.T) {
	raw := segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: []byte("x")})
	if err := VerifyBatchCRC(raw); err != nil {
		t.Fatal(err)
	}
	if err := VerifyBatchCRC(withBase(raw, 1<<40)); err != nil {
		t.Fatalf("rewritten baseOffset broke the CRC: %v", err)
	}
	for pos := 21; pos < len(raw); pos++ {
		b := append([]byte(nil), raw...)
		b[pos] ^= 0x01
		err := VerifyBatchCRC(b)
		if err == nil {
			t.Fatalf("flip at %d not detected", pos)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: %v is not ErrCorrupt", pos, err)
		}
	}
	if err := VerifyBatchCRC(raw[:len(raw)-1]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short batch: %v, want ErrTruncated", err)
	}
}

// TestSplitBatches proves produce blobs split into exactly their batches and
// every kind of bad input gets its sentinel and the failing batch position.
func TestSplitBatches(t *testing.T) {
	b1 := segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: []byte("one")})
	b2 := segmenttest.Batch(segmenttest.BatchOptions{Records: 5, Value: []byte("two")})
	badCRC := append([]byte(nil), b2...)
	badCRC[len(badCRC)-1] ^= 0xff
	v1 := append([]byte(nil), b2...)
	v1[16] = 1
	cat := func(bs ...[]byte) []byte { return segmenttest.Concat(bs) }
	tests := []struct {
		name        string
		in          []byte
		verify      bool
		wantBatches int
		wantErr     error
		wantPos     string
	}{
		{"empty", nil, true, 0, nil, ""},
		{"one", b1, true, 1, nil, ""},
		{"two", cat(b1, b2), true, 2, nil, ""},
		{"trailing partial batch", cat(b1, b2[:70]), true, 0, ErrTruncated, "byte 81"},
		{"trailing short header", cat(b1, b2[:10]), true, 0, ErrTruncated, "byte 81"},
		{"bad CRC verified", cat(b1, badCRC), true, 0, ErrCRC, "byte 81"},
		{"bad CRC unverified", cat(b1, badCRC), false, 2, nil, ""},
		{"v1 message", cat(b1, v1), true, 0, ErrMagic, "byte 81"},
	}
	if len(b1) != 81 {
		t.Fatalf("b1 is %d bytes; fix wantPos", len(b1))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitBatches(tt.in, tt.verify)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if got != nil {
					t.Fatalf("batches returned with error")
				}
				if !strings.Contains(err.Error(), tt.wantPos) {
					t.Fatalf("err %q does not name %q", err, tt.wantPos)
				}
				return
			}
			if len(got) != tt.wantBatches {
				t.Fatalf("%d batches, want %d", len(got), tt.wantBatches)
			}
			off := 0
			for i, b := range got {
				if &b.Raw[0] != &tt.in[off] || len(b.Raw) != int(b.Header.Length) || cap(b.Raw) != len(b.Raw) {
					t.Fatalf("batch %d does not alias input at %d with clipped capacity", i, off)
				}
				off += len(b.Raw)
			}
		})
	}
	if !errors.Is(ErrCRC, ErrCorrupt) || !errors.Is(ErrTruncated, ErrCorrupt) || errors.Is(ErrMagic, ErrCorrupt) {
		t.Fatal("sentinel hierarchy wrong")
	}
}

// TestSegmenttestBatchDecodes proves segmenttest batches decode with kmsg to
// the records they were built from, so tests elsewhere build real batches.
func TestSegmenttestBatchDecodes(t *testing.T) {
	raw := segmenttest.Batch(segmenttest.BatchOptions{
		Keys: [][]byte{[]byte("k0"), nil}, Values: [][]byte{[]byte("v0"), []byte("v1")}, Timestamp: 50,
	})
	recs, err := segmenttest.Records(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Key) != "k0" || recs[1].Key != nil || string(recs[1].Value) != "v1" ||
		recs[1].Timestamp != 51 || recs[1].OffsetDelta != 1 {
		t.Fatalf("records %+v", recs)
	}
	if _, err := SplitBatches(raw, true); err != nil {
		t.Fatal(err)
	}
}
