package manifest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Format constants.
const (
	Version     = 1
	HeaderBytes = 8  // magic, version, three zero bytes
	TrailerSize = 16 // body length, CRC, end magic
	// MaxKeyBytes bounds a record's key (etcd keys are far shorter).
	MaxKeyBytes = 64 << 10
	// MaxValueBytes bounds a record's value (etcd's request limit is lower).
	MaxValueBytes = 16 << 20
	// DefaultMaxBodyBytes bounds the decompressed body a decoder accepts.
	DefaultMaxBodyBytes = 8 << 30
	// Prefix is where manifests live in the bucket.
	Prefix = "meta/manifests/"
	suffix = ".shm"
)

// Record kinds.
const (
	KindHeader byte = 1
	KindObject byte = 2
	KindKV     byte = 3
	KindEnd    byte = 4
)

var (
	magic    = [4]byte{'S', 'H', 'M', 'F'}
	endMagic = [4]byte{'S', 'H', 'M', 'E'}
	crcTable = crc32.MakeTable(crc32.Castagnoli)
)

// ErrCorrupt is wrapped by every decoding error of a malformed manifest.
var ErrCorrupt = errors.New("manifest: corrupt")

// Header describes a manifest.
type Header struct {
	Version int `json:"version"`
	// Namespace is the etcd namespace snapshotted (keys are relative to it).
	Namespace string `json:"namespace"`
	// Revision is the etcd revision of the snapshot: the recovery point.
	Revision int64 `json:"revision"`
	// CreatedMs is when the snapshot was taken (Unix ms).
	CreatedMs int64 `json:"created_ms"`
	// Bucket is the cluster record's bucket URL ("" if none yet).
	Bucket string `json:"bucket,omitempty"`
	// Writer names the agent that wrote it (for operators).
	Writer string `json:"writer,omitempty"`
}

// Counts are the numbers of records of each kind, in the end record.
type Counts struct {
	Objects int64 `json:"objects"`
	Keys    int64 `json:"keys"`
}

// Key is the bucket key of the manifest of revision rev.
func Key(rev int64) string { return fmt.Sprintf("%s%020d%s", Prefix, rev, suffix) }

// ParseKey returns the revision a manifest key names.
func ParseKey(key string) (int64, bool) {
	s, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, suffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	rev, err := strconv.ParseInt(s, 10, 64)
	return rev, err == nil && rev > 0
}

// Writer encodes a manifest into an io.Writer: NewWriter (the header),
// Object and KV in any order, then Close.
type Writer struct {
	out    io.Writer
	crc    hash32
	n      countingWriter
	zw     *zstd.Encoder
	counts Counts
	buf    []byte
	err    error
}

type hash32 interface {
	io.Writer
	Sum32() uint32
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// NewWriter writes the file header and h.
func NewWriter(out io.Writer, h Header) (*Writer, error) {
	h.Version = Version
	var fh [HeaderBytes]byte
	copy(fh[:], magic[:])
	fh[4] = Version
	if _, err := out.Write(fh[:]); err != nil {
		return nil, err
	}
	w := &Writer{out: out, crc: crc32.New(crcTable)}
	zw, err := zstd.NewWriter(io.MultiWriter(out, w.crc, &w.n), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	w.zw = zw
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	w.record(KindHeader, hj, nil)
	return w, w.err
}

func (w *Writer) record(kind byte, a, b []byte) {
	if w.err != nil {
		return
	}
	if len(a) > MaxKeyBytes || len(b) > MaxValueBytes {
		w.err = fmt.Errorf("manifest: record of %d+%d bytes over the limits", len(a), len(b))
		return
	}
	w.buf = append(w.buf[:0], kind)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(a)))
	w.buf = append(w.buf, a...)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(b)))
	w.buf = append(w.buf, b...)
	_, w.err = w.zw.Write(w.buf)
}

// Object records an object key the index references.
func (w *Writer) Object(key string) error {
	w.record(KindObject, []byte(key), nil)
	w.counts.Objects++
	return w.err
}

// KV records a key (relative to the namespace) and its value.
func (w *Writer) KV(key string, value []byte) error {
	w.record(KindKV, []byte(key), value)
	w.counts.Keys++
	return w.err
}

// Close writes the end record and the trailer.
func (w *Writer) Close() error {
	cj, err := json.Marshal(w.counts)
	if err != nil {
		return err
	}
	w.record(KindEnd, cj, nil)
	if w.err != nil {
		return w.err
	}
	if err := w.zw.Close(); err != nil {
		return err
	}
	var tr [TrailerSize]byte
	binary.BigEndian.PutUint64(tr[0:8], uint64(w.n.n))
	binary.BigEndian.PutUint32(tr[8:12], w.crc.Sum32())
	copy(tr[12:], endMagic[:])
	_, err = w.out.Write(tr[:])
	return err
}

// Visitor receives a manifest's records as Decode reads them; a nil field
// skips that kind. An error from it stops Decode and is returned as it is.
type Visitor struct {
	Object func(key string) error
	KV     func(key string, value []byte) error
}

// Decode checks data as a whole manifest (header, trailer, CRC) and calls
// v for each record in order; it returns the header and the counts. The
// decompressed body is bounded by maxBody (<= 0: DefaultMaxBodyBytes).
func Decode(data []byte, maxBody int64, v Visitor) (Header, Counts, error) {
	var h Header
	var c Counts
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	if len(data) < HeaderBytes+TrailerSize {
		return h, c, fmt.Errorf("%w: %d bytes, shorter than header and trailer", ErrCorrupt, len(data))
	}
	if !bytes.Equal(data[:4], magic[:]) || data[5] != 0 || data[6] != 0 || data[7] != 0 {
		return h, c, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if data[4] != Version {
		return h, c, fmt.Errorf("%w: version %d, this shale reads %d", ErrCorrupt, data[4], Version)
	}
	tr := data[len(data)-TrailerSize:]
	if !bytes.Equal(tr[12:], endMagic[:]) {
		return h, c, fmt.Errorf("%w: bad end magic (truncated?)", ErrCorrupt)
	}
	body := data[HeaderBytes : len(data)-TrailerSize]
	if n := binary.BigEndian.Uint64(tr[0:8]); n != uint64(len(body)) {
		return h, c, fmt.Errorf("%w: body is %d bytes, trailer says %d", ErrCorrupt, len(body), n)
	}
	if got, want := crc32.Checksum(body, crcTable), binary.BigEndian.Uint32(tr[8:12]); got != want {
		return h, c, fmt.Errorf("%w: CRC %08x, trailer says %08x", ErrCorrupt, got, want)
	}
	zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(min(maxBody, 1<<30))))
	if err != nil {
		return h, c, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer zr.Close()
	d := &decoder{r: bufio.NewReader(io.LimitReader(zr, maxBody))}
	var seen Counts
	for i := 0; ; i++ {
		kind, a, b, err := d.record()
		if err != nil {
			return h, c, err
		}
		if i == 0 && kind != KindHeader {
			return h, c, fmt.Errorf("%w: first record is kind %d, not the header", ErrCorrupt, kind)
		}
		switch kind {
		case KindHeader:
			if i != 0 {
				return h, c, fmt.Errorf("%w: second header record", ErrCorrupt)
			}
			if err := json.Unmarshal(a, &h); err != nil {
				return h, c, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
			}
		case KindObject:
			seen.Objects++
			if v.Object != nil {
				if err := v.Object(string(a)); err != nil {
					return h, c, err
				}
			}
		case KindKV:
			seen.Keys++
			if v.KV != nil {
				if err := v.KV(string(a), b); err != nil {
					return h, c, err
				}
			}
		case KindEnd:
			if err := json.Unmarshal(a, &c); err != nil {
				return h, c, fmt.Errorf("%w: end record: %v", ErrCorrupt, err)
			}
			if c != seen {
				return h, c, fmt.Errorf("%w: end record counts %+v, read %+v", ErrCorrupt, c, seen)
			}
			if _, err := d.r.ReadByte(); err != io.EOF {
				return h, c, fmt.Errorf("%w: data after the end record", ErrCorrupt)
			}
			return h, c, nil
		default:
			return h, c, fmt.Errorf("%w: unknown record kind %d", ErrCorrupt, kind)
		}
	}
}

type decoder struct {
	r   *bufio.Reader
	buf []byte
}

func (d *decoder) record() (byte, []byte, []byte, error) {
	kind, err := d.r.ReadByte()
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: no end record: %v", ErrCorrupt, err)
	}
	a, err := d.field(MaxKeyBytes)
	if err != nil {
		return 0, nil, nil, err
	}
	b, err := d.field(MaxValueBytes)
	if err != nil {
		return 0, nil, nil, err
	}
	return kind, a, b, nil
}

func (d *decoder) field(limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(d.r)
	if err != nil {
		return nil, fmt.Errorf("%w: record length: %v", ErrCorrupt, err)
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: record field of %d bytes over %d", ErrCorrupt, n, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(d.r, p); err != nil {
		return nil, fmt.Errorf("%w: record of %d bytes: %v", ErrCorrupt, n, err)
	}
	return p, nil
}
