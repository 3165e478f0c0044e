package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/zap"
)

// Execute runs the shale command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "shale: %v\n", err)
		return 1
	}
	return 0
}

// NewRoot builds the command tree.
func NewRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "shale",
		Short: "A Kafka-compatible streaming log whose durable home is object storage",
		Long: `shale speaks the Kafka protocol. Agents buffer writes, seal them into objects in an
S3-compatible bucket and index them in etcd; any agent serves any read.

Start one agent on embedded defaults (etcd and a local-directory bucket under ./data):

  shale agent --dev

then use any Kafka client against 127.0.0.1:9092, or the commands below.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newAgentCmd(), newTopicCmd(), newProduceCmd(), newConsumeCmd(), newPerfCmd(), newGroupCmd(), newTxnCmd(), newStatusCmd(), newCostCmd(), newRecoverCmd(), newReplayCmd(), newTableCmd(), newUserCmd(), newACLCmd())
	return root
}

// configFileAnnotation marks the flag that names a YAML config file (topic
// commands use --config for topic configs instead).
const configFileAnnotation = "shale/config-file"

func addConfigFileFlag(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "YAML config file (keys are flag names)")
	_ = cmd.Flags().SetAnnotation("config", configFileAnnotation, []string{"true"})
}

// newViper binds a command's flags to SHALE_* environment variables and an
// optional YAML file (--config). Precedence: flag > env > file > default.
func newViper(cmd *cobra.Command) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix("SHALE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		return nil, err
	}
	if f := cmd.Flags().Lookup("config"); f != nil && f.Annotations[configFileAnnotation] != nil && f.Value.String() != "" {
		v.SetConfigFile(f.Value.String())
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config %s: %w", f.Value.String(), err)
		}
		known := map[string]bool{}
		cmd.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		for _, k := range v.AllKeys() {
			if !known[strings.Split(k, ".")[0]] {
				return nil, fmt.Errorf("config %s: unknown setting %q (settings are the flag names of 'shale %s --help')", f.Value.String(), k, cmd.Name())
			}
		}
	}
	return v, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad --log-format %q: use text or json", format)
}

func quietZap() *zap.Logger { return zap.NewNop() }

// exactArgs is cobra.ExactArgs with the command's usage line in the error,
// so `shale topic describe` alone says what to pass.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return argsError(cmd, len(args))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with the usage line in the error.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return argsError(cmd, len(args))
		}
		return nil
	}
}

func argsError(cmd *cobra.Command, got int) error {
	what := "missing " + strings.Join(strings.Fields(cmd.Use)[1:], " ")
	if got > 0 {
		what = fmt.Sprintf("unexpected arguments (%d given)", got)
	}
	return fmt.Errorf("%s\nUsage: %s\nRun '%s --help' for more", what, cmd.UseLine(), cmd.CommandPath())
}
