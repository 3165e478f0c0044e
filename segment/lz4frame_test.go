package segment

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// lz4Frame compresses data with pierrec/lz4's Writer (what franz-go's lz4
// codec uses) and the given options.
func lz4Frame(t testing.TB, data []byte, opts ...lz4.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	if err := w.Apply(opts...); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lz4Content is n bytes, half random and half repeated text.
func lz4Content(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]byte, n)
	for i := range out {
		if i%1024 < 512 {
			out[i] = byte(rng.Uint32())
		} else {
			out[i] = "shale replays "[i%14]
		}
	}
	return out
}

// TestLZ4FrameFastPath proves that the in-place decoder decodes the frames
// Kafka clients write (every block size, with and without block and
// content checksums, with and without the content size, empty content,
// blocks stored uncompressed) to exactly their content, appended to what
// dst held.
func TestLZ4FrameFastPath(t *testing.T) {
	sizes := []lz4.BlockSize{lz4.Block64Kb, lz4.Block256Kb, lz4.Block1Mb, lz4.Block4Mb}
	for _, n := range []int{0, 1, 1000, 64 << 10, 300 << 10, 5 << 20} {
		data := lz4Content(n, uint64(n))
		for _, bs := range sizes {
			for _, sum := range []bool{false, true} {
				opts := []lz4.Option{lz4.BlockSizeOption(bs), lz4.ChecksumOption(sum), lz4.BlockChecksumOption(!sum)}
				if n%2 == 0 {
					opts = append(opts, lz4.SizeOption(uint64(n)))
				}
				frame := lz4Frame(t, data, opts...)
				got, ok := decodeLZ4Frame([]byte("pre"), frame)
				if !ok {
					t.Fatalf("%d bytes, block %v, checksum %v: fast path refused a plain frame", n, bs, sum)
				}
				if !bytes.Equal(got[:3], []byte("pre")) || !bytes.Equal(got[3:], data) {
					t.Fatalf("%d bytes, block %v, checksum %v: decoded %d bytes, not the content", n, bs, sum, len(got)-3)
				}
			}
		}
	}
	random := lz4Content(256<<10, 9)
	for i := range random {
		random[i] = byte(i*7919 + i>>3*31)
	}
	frame := lz4Frame(t, random, lz4.BlockSizeOption(lz4.Block64Kb))
	if got, ok := decodeLZ4Frame(nil, frame); !ok || !bytes.Equal(got, random) {
		t.Fatalf("frame with uncompressible blocks: ok=%v, %d bytes", ok, len(got))
	}
}

// TestLZ4FrameRefuses proves that what the fast path does not handle —
// linked blocks, a dictionary ID, another magic, bytes after the frame, a
// truncated or lying frame, a content size above MaxDecompressedBytes — is
// refused (ok false, no panic), leaving it to pierrec's Reader.
func TestLZ4FrameRefuses(t *testing.T) {
	frame := lz4Frame(t, lz4Content(200<<10, 3), lz4.BlockSizeOption(lz4.Block64Kb), lz4.SizeOption(200<<10))
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(frame)) }
	cases := map[string][]byte{
		"linked blocks":    mod(func(b []byte) []byte { b[4] &^= lz4FlagIndep; return b }),
		"dictionary":       mod(func(b []byte) []byte { b[4] |= lz4FlagDict; return b }),
		"version 0":        mod(func(b []byte) []byte { b[4] &^= 0x40; return b }),
		"magic":            mod(func(b []byte) []byte { b[0]++; return b }),
		"bad block size":   mod(func(b []byte) []byte { b[5] = 0x30; return b }),
		"trailing bytes":   append(bytes.Clone(frame), 0),
		"two frames":       append(bytes.Clone(frame), frame...),
		"truncated":        frame[:len(frame)-5],
		"header only":      frame[:7],
		"wrong size":       mod(func(b []byte) []byte { b[6]++; return b }),
		"huge size":        mod(func(b []byte) []byte { b[13] = 0x7f; return b }),
		"block past end":   mod(func(b []byte) []byte { b[16] = 0xff; b[17] = 0xff; return b }),
		"corrupt sequence": mod(func(b []byte) []byte { b[20] = 0xff; b[21] = 0xff; b[22] = 0xff; return b }),
		"empty":            {},
	}
	for name, in := range cases {
		if _, ok := decodeLZ4Frame(nil, in); ok {
			if name == "corrupt sequence" {
				continue // may still decode to other bytes; the batch CRC stands for it
			}
			t.Errorf("%s: fast path took it", name)
		}
	}
}

// TestDecodeLZ4FallsBack proves that a Decoder still decodes what the fast
// path refuses (here two concatenated frames) through pierrec's Reader.
func TestDecodeLZ4FallsBack(t *testing.T) {
	data := lz4Content(10<<10, 4)
	frame := lz4Frame(t, data, lz4.BlockSizeOption(lz4.Block64Kb))
	frame = append(frame, lz4Frame(t, data[:100], lz4.BlockSizeOption(lz4.Block64Kb))...) // two frames: only pierrec's Reader takes them
	var d Decoder
	got, err := d.decompress(CompressionLZ4, frame)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(bytes.Clone(data), data[:100]...)) {
		t.Fatalf("fallback decoded %d bytes", len(got))
	}
}

// FuzzLZ4Frame checks that the in-place decoder never panics and, whenever
// it takes a frame, decodes the bytes pierrec's Reader decodes, or the
// Reader refuses the frame only for an xxHash checksum (which the batch
// CRC stands for).
func FuzzLZ4Frame(f *testing.F) {
	f.Add([]byte{})
	f.Add(lz4Frame(f, nil))
	f.Add(lz4Frame(f, lz4Content(3000, 1), lz4.BlockSizeOption(lz4.Block64Kb), lz4.SizeOption(3000)))
	f.Add(lz4Frame(f, lz4Content(70<<10, 2), lz4.BlockSizeOption(lz4.Block64Kb), lz4.BlockChecksumOption(true)))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := decodeLZ4Frame(nil, in)
		if !ok {
			return
		}
		want, err := io.ReadAll(io.LimitReader(lz4.NewReader(bytes.NewReader(in)), MaxDecompressedBytes+1))
		switch {
		case err == nil:
			if !bytes.Equal(got, want) {
				t.Fatalf("fast path decoded %d bytes, pierrec %d", len(got), len(want))
			}
		case errors.Is(err, lz4.ErrInvalidHeaderChecksum), errors.Is(err, lz4.ErrInvalidBlockChecksum), errors.Is(err, lz4.ErrInvalidFrameChecksum):
		default:
			t.Fatalf("fast path took a frame pierrec refuses: %v", err)
		}
	})
}
