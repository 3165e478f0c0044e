package segment

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	mrand "math/rand/v2"
	"reflect"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/shale-dev/shale/segment/segmenttest"
)

var codecNames = map[int8]string{CompressionNone: "none", CompressionGzip: "gzip", CompressionSnappy: "snappy", CompressionLZ4: "lz4", CompressionZstd: "zstd"}

// sampleBatch is an idempotent, transactional batch with keys, values and
// distinct timestamps, compressible enough for every codec to shrink it.
func sampleBatch(t testing.TB) []byte {
	t.Helper()
	var values, keys [][]byte
	for i := range 50 {
		values = append(values, bytes.Repeat(fmt.Appendf(nil, "value %d ", i), 20))
		keys = append(keys, fmt.Appendf(nil, "key-%d", i%7))
	}
	return segmenttest.Batch(segmenttest.BatchOptions{Values: values, Keys: keys, BaseOffset: 0, Timestamp: 1_700_000_000_000,
		Idempotent: true, ProducerID: 77, ProducerEpoch: 3, BaseSequence: 1200, Transactional: true, LeaderEpoch: 5})
}

// independentPayload decompresses a batch's payload with decoders other
// than the package's own (the standard library's gzip among them).
func independentPayload(t *testing.T, b []byte) []byte {
	t.Helper()
	h, err := ParseBatchHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	in := b[BatchHeaderSize:h.Length]
	var r io.Reader
	switch h.Compression() {
	case CompressionNone:
		return in
	case CompressionGzip:
		if r, err = stdgzip.NewReader(bytes.NewReader(in)); err != nil {
			t.Fatal(err)
		}
	case CompressionSnappy:
		out, err := s2.Decode(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case CompressionLZ4:
		r = lz4.NewReader(bytes.NewReader(in))
	case CompressionZstd:
		d, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		out, err := d.DecodeAll(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRecompressEveryCodecPair proves a batch recompressed from any codec
// to any other keeps every header field but length, CRC and codec bits
// (producer ID, epoch, base sequence, timestamps, leader epoch,
// transactional bit) and exactly the same record bytes, has a valid CRC,
// and decodes to the same records; and that levels are honoured.
func TestRecompressEveryCodecPair(t *testing.T) {
	orig := sampleBatch(t)
	oh, _ := ParseBatchHeader(orig)
	plain := orig[BatchHeaderSize:]
	want, err := DecodeRecords(orig)
	if err != nil {
		t.Fatal(err)
	}
	for from := CompressionNone; from <= CompressionZstd; from++ {
		src, err := Recompress(orig, Codec{Type: from, Level: DefaultLevel})
		if err != nil {
			t.Fatal(err)
		}
		for to := CompressionNone; to <= CompressionZstd; to++ {
			t.Run(codecNames[from]+"-to-"+codecNames[to], func(t *testing.T) {
				got, err := Recompress(src, Codec{Type: to, Level: DefaultLevel})
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyBatchCRC(got); err != nil {
					t.Fatal(err)
				}
				h, _ := ParseBatchHeader(got)
				if h.Compression() != to || int(h.Length) != len(got) {
					t.Fatalf("codec %d length %d of %d bytes", h.Compression(), h.Length, len(got))
				}
				wh := oh
				wh.Attributes, wh.Length, wh.CRC = oh.Attributes|int16(to), h.Length, h.CRC
				if h != wh {
					t.Fatalf("header %+v, want %+v", h, wh)
				}
				if p := independentPayload(t, got); !bytes.Equal(p, plain) {
					t.Fatal("record bytes changed")
				}
				recs, err := DecodeRecords(got)
				if err != nil || !reflect.DeepEqual(recs, want) {
					t.Fatalf("records differ: %v", err)
				}
				if to != CompressionNone && len(got) >= len(orig) {
					t.Fatalf("%s batch of %d bytes, uncompressed %d", codecNames[to], len(got), len(orig))
				}
				if from == to && !bytes.Equal(got, src) {
					t.Fatal("a batch already in the codec was rewritten")
				}
			})
		}
	}
	low, _ := Recompress(orig, Codec{Type: CompressionZstd, Level: 1})
	high, _ := Recompress(orig, Codec{Type: CompressionZstd, Level: 19})
	if len(high) > len(low) {
		t.Errorf("zstd level 19 gave %d bytes, level 1 %d", len(high), len(low))
	}
	for _, c := range []Codec{{CompressionGzip, 1}, {CompressionGzip, 9}, {CompressionLZ4, 1}, {CompressionLZ4, 17}, {CompressionZstd, -5}, {CompressionZstd, 22}} {
		b, err := Recompress(orig, c)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if recs, err := DecodeRecords(b); err != nil || !reflect.DeepEqual(recs, want) {
			t.Fatalf("%+v: records differ: %v", c, err)
		}
	}
}

// TestRecompressKeepsControlAndSameCodec proves a produce blob of several
// batches is rewritten batch by batch: control batches and batches already
// in the codec are copied unchanged, and a blob needing no change is
// returned as is.
func TestRecompressKeepsControlAndSameCodec(t *testing.T) {
	a := sampleBatch(t)
	ctl := segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Control: true, Transactional: true})
	z, _ := Recompress(a, Codec{Type: CompressionZstd, Level: DefaultLevel})
	blob := segmenttest.Concat([][]byte{a, ctl, z})
	got, err := Recompress(blob, Codec{Type: CompressionZstd, Level: DefaultLevel})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := SplitBatches(got, true)
	if err != nil || len(bs) != 3 {
		t.Fatalf("%d batches: %v", len(bs), err)
	}
	if !bytes.Equal(bs[0].Raw, z) || !bytes.Equal(bs[1].Raw, ctl) || !bytes.Equal(bs[2].Raw, z) {
		t.Fatal("batches not as expected")
	}
	same := segmenttest.Concat([][]byte{z, ctl})
	if got, _ := Recompress(same, Codec{Type: CompressionZstd, Level: DefaultLevel}); &got[0] != &same[0] {
		t.Fatal("a blob needing no change was copied")
	}
}

// TestRecompressRefusesBadInput proves a batch with a wrong CRC or a
// payload that does not decompress is refused with the package's errors.
func TestRecompressRefusesBadInput(t *testing.T) {
	a := sampleBatch(t)
	bad := append([]byte(nil), a...)
	bad[len(bad)-1] ^= 0xff
	if _, err := Recompress(bad, Codec{Type: CompressionGzip, Level: DefaultLevel}); !errors.Is(err, ErrCRC) {
		t.Fatalf("bad CRC: %v", err)
	}
	z, _ := Recompress(a, Codec{Type: CompressionZstd, Level: DefaultLevel})
	z = append([]byte(nil), z...)
	z[BatchHeaderSize+4] ^= 0xff
	// Fix the CRC so the payload itself is what fails.
	z2, err := Recompress(z, Codec{Type: CompressionZstd, Level: DefaultLevel})
	if err != nil || !bytes.Equal(z2, z) {
		t.Fatal("same codec must not be checked or rewritten")
	}
	setCRC(z)
	if _, err := Recompress(z, Codec{Type: CompressionNone}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt zstd payload: %v", err)
	}
}

// FuzzRecompress proves Recompress never panics on any input and only
// returns the package's errors; what it accepts decodes as the input does.
func FuzzRecompress(f *testing.F) {
	a := segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Value: []byte("fuzz fuzz fuzz")})
	f.Add(a, int8(CompressionZstd))
	z, _ := Recompress(a, Codec{Type: CompressionZstd, Level: DefaultLevel})
	f.Add(z, int8(CompressionNone))
	g, _ := Recompress(a, Codec{Type: CompressionGzip, Level: DefaultLevel})
	f.Add(g, int8(CompressionLZ4))
	f.Add([]byte{}, int8(CompressionGzip))
	f.Fuzz(func(t *testing.T, data []byte, to int8) {
		if to < CompressionNone || to > CompressionZstd {
			to = CompressionNone
		}
		out, err := Recompress(data, Codec{Type: to, Level: DefaultLevel})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMagic) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCRC) {
				t.Fatalf("error matches no sentinel: %v", err)
			}
			return
		}
		// Batches left as they were are not checked; rewritten ones get a
		// valid CRC, so a valid input gives a valid output.
		if _, err := SplitBatches(out, false); err != nil {
			t.Fatalf("output does not split: %v", err)
		}
		if _, err := SplitBatches(data, true); err == nil {
			if _, err := SplitBatches(out, true); err != nil {
				t.Fatalf("valid input, invalid output: %v", err)
			}
		}
	})
}

// setCRC recomputes the CRC of the batch b.
func setCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[batchCRCStart:], castagnoli))
}

// BenchmarkRecompress measures the produce-path cost of compression.type:
// recompressing a 64 KiB batch of 1 KiB records (half random, as make
// bench writes them) from uncompressed into each codec at its default
// level; the stored/produced ratio is reported as "ratio".
func BenchmarkRecompress(b *testing.B) {
	var values [][]byte
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 64 {
		v := make([]byte, 1024)
		for i := range 512 {
			v[i] = byte(r.Uint32())
		}
		values = append(values, v)
	}
	batch := segmenttest.Batch(segmenttest.BatchOptions{Values: values, Idempotent: true, ProducerID: 1})
	for to := CompressionGzip; to <= CompressionZstd; to++ {
		b.Run(codecNames[to], func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			var out []byte
			for b.Loop() {
				var err error
				if out, err = Recompress(batch, Codec{Type: to, Level: DefaultLevel}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out))/float64(len(batch)), "ratio")
		})
	}
}
