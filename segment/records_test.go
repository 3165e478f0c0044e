package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// compressBatch rewrites an uncompressed batch with its records compressed
// by codec, fixing length, attributes and CRC.
func compressBatch(t testing.TB, raw []byte, codec int8, xerial bool) []byte {
	t.Helper()
	body := raw[BatchHeaderSize:]
	var out []byte
	switch codec {
	case CompressionGzip:
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(body)
		w.Close()
		out = b.Bytes()
	case CompressionSnappy:
		blk := s2.EncodeSnappy(nil, body)
		if !xerial {
			out = blk
			break
		}
		out = append(append([]byte(nil), xerialHeader...), 0, 0, 0, 1, 0, 0, 0, 1)
		out = binary.BigEndian.AppendUint32(out, uint32(len(blk)))
		out = append(out, blk...)
	case CompressionLZ4:
		var b bytes.Buffer
		w := lz4.NewWriter(&b)
		w.Write(body)
		w.Close()
		out = b.Bytes()
	case CompressionZstd:
		enc, _ := zstd.NewWriter(nil)
		out = enc.EncodeAll(body, nil)
	}
	b := append(append([]byte(nil), raw[:BatchHeaderSize]...), out...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	attrs := binary.BigEndian.Uint16(b[21:])
	binary.BigEndian.PutUint16(b[21:], attrs&^7|uint16(codec))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// TestDecodeRecordsEveryCodec proves records decode identically from
// uncompressed, gzip, snappy (raw and xerial-framed), lz4 and zstd batches.
func TestDecodeRecordsEveryCodec(t *testing.T) {
	raw := segmenttest.Batch(segmenttest.BatchOptions{
		Values:    [][]byte{[]byte("a"), []byte("bb"), bytes.Repeat([]byte("c"), 500)},
		Keys:      [][]byte{[]byte("k1"), nil, []byte("k3")},
		Timestamp: 1700000000000,
	})
	want, err := DecodeRecords(raw)
	if err != nil || len(want) != 3 {
		t.Fatalf("uncompressed: %v (%d records)", err, len(want))
	}
	if want[1].Timestamp != 1700000000001 || !want[1].KeyNull || string(want[2].Key) != "k3" {
		t.Fatalf("uncompressed decode wrong: %+v", want[1])
	}
	for _, tc := range []struct {
		name   string
		codec  int8
		xerial bool
	}{{"gzip", CompressionGzip, false}, {"snappy", CompressionSnappy, false}, {"snappy-xerial", CompressionSnappy, true}, {"lz4", CompressionLZ4, false}, {"zstd", CompressionZstd, false}} {
		b := compressBatch(t, raw, tc.codec, tc.xerial)
		if err := VerifyBatchCRC(b); err != nil {
			t.Fatalf("%s: test batch CRC: %v", tc.name, err)
		}
		got, err := DecodeRecords(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d records, want %d", tc.name, len(got), len(want))
		}
		for i := range got {
			if got[i].OffsetDelta != want[i].OffsetDelta || got[i].Timestamp != want[i].Timestamp ||
				!bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) || got[i].KeyNull != want[i].KeyNull {
				t.Fatalf("%s: record %d differs", tc.name, i)
			}
		}
	}
}

// TestDecodeRecordsCorrupt proves damaged compressed data is an ErrCorrupt,
// never a panic.
func TestDecodeRecordsCorrupt(t *testing.T) {
	raw := segmenttest.Batch(segmenttest.BatchOptions{Records: 5, Value: []byte("value")})
	for _, codec := range []int8{CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd, 6} {
		b := append([]byte(nil), raw...)
		if codec != 6 {
			b = compressBatch(t, raw, codec, false)
		} else {
			b[22] |= 6
		}
		// The first bytes of the compressed payload (right after the
		// 61-byte batch header) are each codec's magic, header or length:
		// no codec can decode them flipped, so an error is required.
		b[61] ^= 0xff
		b[62] ^= 0xff
		if _, err := DecodeRecords(b); err == nil {
			t.Fatalf("codec %d: decoded a corrupt payload without error", codec)
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("codec %d: error %v is not ErrCorrupt", codec, err)
		}
	}
}

// fuzzDecoder is shared by every input of FuzzDecodeRecords (one worker
// runs inputs one at a time).
var fuzzDecoder Decoder

func sameRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.OffsetDelta != y.OffsetDelta || x.Timestamp != y.Timestamp || !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) ||
			x.KeyNull != y.KeyNull || x.ValueNull != y.ValueNull || len(x.Headers) != len(y.Headers) {
			return false
		}
		for j := range x.Headers {
			if x.Headers[j].Key != y.Headers[j].Key || !bytes.Equal(x.Headers[j].Value, y.Headers[j].Value) {
				return false
			}
		}
	}
	return true
}

// TestDecoderReuse proves one Decoder decodes a mix of codecs and sizes,
// one after another, exactly as fresh DecodeRecords calls do, including
// after a corrupt batch.
func TestDecoderReuse(t *testing.T) {
	var d Decoder
	for round := range 3 {
		for i, codec := range []int8{CompressionNone, CompressionLZ4, CompressionGzip, CompressionZstd, CompressionSnappy, CompressionLZ4} {
			raw := segmenttest.Batch(segmenttest.BatchOptions{Records: 1 + (i*37+round*11)%200, Value: bytes.Repeat([]byte{byte('a' + i)}, 10+i*300)})
			b := raw
			if codec != CompressionNone {
				b = compressBatch(t, raw, codec, i == 4 && round == 1)
			}
			want, err := DecodeRecords(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Decode(b)
			if err != nil || !sameRecords(want, got) {
				t.Fatalf("round %d codec %d: reused decoder differs (%v)", round, codec, err)
			}
			bad := append([]byte(nil), b...)
			bad[len(bad)-2] ^= 0x5a
			_, _ = d.Decode(bad) // may fail; the next Decode must not care
		}
	}
}

// BenchmarkDecode compares a reused Decoder with DecodeRecords on a 1 MiB
// lz4 batch of 1 KiB records.
func BenchmarkDecode(b *testing.B) {
	raw := compressBatch(b, segmenttest.Batch(segmenttest.BatchOptions{Records: 1024, Value: bytes.Repeat([]byte("0123456789abcdef"), 64)}), CompressionLZ4, false)
	b.Run("fresh", func(b *testing.B) {
		b.SetBytes(1 << 20)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRecords(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reused", func(b *testing.B) {
		b.SetBytes(1 << 20)
		b.ReportAllocs()
		var d Decoder
		for b.Loop() {
			if _, err := d.Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func FuzzDecodeRecords(f *testing.F) {
	raw := segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Value: []byte("v")})
	f.Add(raw)
	for _, c := range []int8{CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd} {
		f.Add(compressBatch(f, raw, c, false))
	}
	f.Add(compressBatch(f, raw, CompressionSnappy, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeRecords(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMagic) {
				t.Fatalf("error %v is not ErrCorrupt, ErrTruncated or ErrMagic", err)
			}
			return
		}
		// A Decoder reused across inputs (state left by earlier ones)
		// decodes exactly as a fresh one does.
		again, err := fuzzDecoder.Decode(b)
		if err != nil || !sameRecords(recs, again) {
			t.Fatalf("reused Decoder differs from DecodeRecords: %v", err)
		}
		// A decoded batch yields exactly the records its header counts; a
		// compressed batch may hold more records than it has bytes, so the
		// bound is on the header's count, not on len(b).
		h, _ := ParseBatchHeader(b)
		if len(recs) != int(h.RecordCount) {
			t.Fatalf("%d records decoded, header says %d", len(recs), h.RecordCount)
		}
		if h.Compression() == CompressionNone && len(recs) > len(b) {
			t.Fatalf("%d uncompressed records from %d bytes", len(recs), len(b))
		}
	})
}

// TestDecodeRecordsMoreRecordsThanBytes proves a well-compressed batch may
// decode to more records than it has bytes (the old fuzz property was wrong
// there) and that every one comes back.
func TestDecodeRecordsMoreRecordsThanBytes(t *testing.T) {
	// 2000 identical empty records (same deltas) compress to a few bytes.
	one := segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Value: []byte{}})
	raw := append([]byte(nil), one...)
	for i := 1; i < 2000; i++ {
		raw = append(raw, one[BatchHeaderSize:]...)
	}
	binary.BigEndian.PutUint32(raw[23:], 1999) // last offset delta
	binary.BigEndian.PutUint32(raw[57:], 2000) // record count
	denser := 0
	for _, codec := range []int8{CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd} {
		b := compressBatch(t, raw, codec, false)
		recs, err := DecodeRecords(b)
		if err != nil {
			t.Fatalf("codec %d: %v", codec, err)
		}
		if len(recs) != 2000 {
			t.Fatalf("codec %d: %d records, want 2000", codec, len(recs))
		}
		if len(b) < len(recs) {
			denser++
		}
	}
	if denser == 0 {
		t.Fatal("no codec packed more records than bytes; the test proves nothing")
	}
}
