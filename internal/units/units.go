// Package units formats quantities for people: byte counts with binary
// units, as the CLI and the replay progress bar print them.
package units

import "fmt"

// HumanBytes formats a byte count with binary units: "4.0 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
