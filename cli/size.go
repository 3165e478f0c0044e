package cli

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/shale-dev/shale/internal/units"
)

// ByteSize is a flag value that accepts human-readable sizes: "4MiB",
// "512KiB", "1GB", "1048576".
type ByteSize int64

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1000, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1000 * 1000, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1000 * 1000 * 1000 * 1000, "tib": 1 << 40,
}

// ParseByteSize parses a human-readable size.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	mult, ok := sizeUnits[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("bad size %q: use a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB), e.g. 4MiB", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad size %q: use a number with an optional unit, e.g. 4MiB", s)
	}
	return ByteSize(f * float64(mult)), nil
}

func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (b *ByteSize) Type() string { return "size" }

func (b *ByteSize) String() string { return HumanBytes(int64(*b)) }

// HumanBytes formats a byte count with binary units: "4.0 MiB".
func HumanBytes(n int64) string { return units.HumanBytes(n) }

// plural formats n with noun, adding an s unless n is 1: "1 record", "3 records".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
