package segment

import (
	"errors"
	"fmt"
)

// sentinelError is a sentinel that can name a broader sentinel as its parent,
// so that errors.Is(ErrCRC, ErrCorrupt) holds.
type sentinelError struct {
	msg    string
	parent error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.parent }

var (
	// ErrCorrupt reports bytes that do not form a valid object, chunk or
	// record batch. ErrCRC and ErrTruncated errors are also ErrCorrupt, and
	// so is every *CorruptError.
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrCRC reports a checksum mismatch (batch, chunk or footer CRC).
	ErrCRC error = &sentinelError{"segment: checksum mismatch", ErrCorrupt}
	// ErrTruncated reports data that ends before a length it declares.
	ErrTruncated error = &sentinelError{"segment: truncated", ErrCorrupt}
	// ErrMagic reports a wrong magic: a record batch that is not message
	// format v2 (Kafka message format v0/v1 is not supported), or an object
	// that does not start or end with the shale magic.
	ErrMagic = errors.New("segment: bad magic")
	// ErrVersion reports an object written in a format version this reader
	// does not know.
	ErrVersion = errors.New("segment: unsupported format version")
	// ErrInvalidChunk reports a Builder.AddChunk call whose arguments cannot
	// form a chunk (no batches, stored offsets out of order, ...).
	ErrInvalidChunk = errors.New("segment: invalid chunk")
	// ErrFinished reports use of a Builder after Finish or after a write
	// error.
	ErrFinished = errors.New("segment: builder finished")
)

// CorruptError reports damaged bytes in a stored object: which object, which
// byte range failed which check. It matches ErrCorrupt with errors.Is, and
// also Err (ErrCRC, ErrTruncated, ErrMagic, ErrVersion, ...) when set.
type CorruptError struct {
	Object string // object name (key) as given to Open or ParseChunk
	Pos    int64  // first byte of the range that failed its check
	Size   int64  // length of that range
	Reason string // what was wrong, e.g. "chunk CRC mismatch (want 0x…, got 0x…)"
	Err    error  // the sentinel cause, or nil
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("segment: corrupt object %q bytes [%d, %d): %s", e.Object, e.Pos, e.Pos+e.Size, e.Reason)
}

// Is makes every CorruptError match ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the sentinel cause.
func (e *CorruptError) Unwrap() error { return e.Err }

func corrupt(object string, pos, size int64, cause error, format string, args ...any) *CorruptError {
	return &CorruptError{Object: object, Pos: pos, Size: size, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// batchError is the internal form of a record-batch validation failure: the
// batch's position within the input, its size when known, what failed, and
// the sentinel. SplitBatches and ParseChunk present it differently.
type batchError struct {
	pos    int
	size   int
	reason string
	err    error
}

func (e *batchError) Error() string {
	return fmt.Sprintf("segment: batch at byte %d: %s", e.pos, e.reason)
}

func (e *batchError) Unwrap() error { return e.err }
