package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"github.com/twmb/franz-go/pkg/kadm"
)

// table prints aligned columns: the list and describe commands all print
// through it, so their tables look alike.
type table struct{ w *tabwriter.Writer }

// newTable starts a table on out; a header, when given, is its first row.
func newTable(out io.Writer, header ...string) *table {
	t := &table{w: tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		fmt.Fprintln(t.w, strings.Join(header, "\t"))
	}
	return t
}

// row adds one row, each cell printed as fmt.Sprint does.
func (t *table) row(cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(t.w, strings.Join(s, "\t"))
}

// flush writes the table out.
func (t *table) flush() error { return t.w.Flush() }

// adminRun is the RunE of a command that talks to the cluster through the
// Kafka admin API (--bootstrap-server): it connects, runs run, and closes.
func adminRun(run func(cmd *cobra.Command, adm *kadm.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		adm, done, err := cmdAdmin(cmd)
		if err != nil {
			return err
		}
		defer done()
		return run(cmd, adm, args)
	}
}

// outputFlag returns --output when it is one of formats, else an error
// naming them ("use table or json").
func outputFlag(v *viper.Viper, formats ...string) (string, error) {
	out := v.GetString("output")
	if slices.Contains(formats, out) {
		return out, nil
	}
	use := strings.Join(formats[:len(formats)-1], ", ") + " or " + formats[len(formats)-1]
	return "", fmt.Errorf("bad --output %q: use %s", out, use)
}
