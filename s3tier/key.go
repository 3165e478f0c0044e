package s3tier

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is the longest key accepted, in bytes (S3's limit, minus room
// for a store prefix).
const MaxKeyLen = 768

// ReservedPrefix starts the names of the local-directory store's temporary
// files; no key segment may start with it.
const ReservedPrefix = ".shale-tmp-"

// CheckKey reports whether key follows the key rules of Store; the error
// wraps ErrInvalidKey.
func CheckKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, reason)
	}
	return nil
}

func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return "too long"
	case !utf8.ValidString(key):
		return "not UTF-8"
	case strings.IndexByte(key, 0) >= 0:
		return "contains NUL"
	case strings.HasPrefix(key, "/"):
		return "absolute"
	case strings.HasSuffix(key, "/"):
		return "trailing slash"
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return "empty segment"
		case seg == "." || seg == "..":
			return "dot segment"
		case strings.HasPrefix(seg, ReservedPrefix):
			return "reserved segment"
		}
	}
	return ""
}

// checkPrefix validates a List prefix: "" lists everything; otherwise the
// prefix, with one trailing "/" removed, must be a valid key. A partial last
// segment ("topic/00") is fine.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if reason := keyProblem(strings.TrimSuffix(prefix, "/")); reason != "" {
		return fmt.Errorf("%w: list prefix %q: %s", ErrInvalidKey, prefix, reason)
	}
	return nil
}

// checkRange validates off and length against an object of size bytes and
// returns the number of bytes the range covers.
func checkRange(key string, size, off, length int64) (int64, error) {
	if off < 0 || off > size || (length >= 0 && length > size-off) {
		return 0, fmt.Errorf("%w: %s: offset %d length %d, object size %d", ErrInvalidRange, key, off, length, size)
	}
	if length < 0 {
		return size - off, nil
	}
	return length, nil
}

// joinKey prepends prefix (without trailing "/") to key.
func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// cleanPrefix trims surrounding slashes from a store prefix.
func cleanPrefix(p string) string {
	return strings.Trim(p, "/")
}
