package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"golang.org/x/term"

	"github.com/shale-dev/shale/auth"
	"github.com/shale-dev/shale/metastore"
)

// addEtcdFlags adds the flags of commands that talk to etcd directly.
func addEtcdFlags(cmd *cobra.Command) {
	cmd.Flags().StringSlice("etcd-endpoints", []string{DevEtcdListen}, "etcd endpoints (default: the dev agent's embedded etcd)")
	cmd.Flags().String("etcd-namespace", metastore.DefaultNamespace, "key prefix of the cluster in etcd")
	addEtcdTLSFlags(cmd)
}

// withMeta runs fn with a metastore opened from the command's flags.
func withMeta(cmd *cobra.Command, fn func(ctx context.Context, v *viper.Viper, meta *metastore.Store) error) error {
	v, err := newViper(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	meta, closeMeta, err := openMetaFlags(ctx, v)
	if err != nil {
		return err
	}
	defer closeMeta()
	return fn(ctx, v, meta)
}

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage SASL users (SCRAM credentials kept in etcd)",
		Long: `Manage the users that SASL clients log in as. Each user has SCRAM-SHA-256 and/or
SCRAM-SHA-512 credentials in etcd: a salt, an iteration count and two derived keys, never the
password. SASL/PLAIN logins are checked against the SCRAM-SHA-256 credential.

These commands write etcd directly, so they work before any user exists (create the first
super user this way). Kafka clients can manage users too (AlterUserScramCredentials).`,
	}
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user or change its password",
		Long: `Create a user or change its password. The password is read from SHALE_USER_PASSWORD,
else from standard input with --password-stdin, else prompted for on the terminal.`,
		Example: `  shale user create admin
  printf '%s' "$PW" | shale user create alice --password-stdin --mechanism SCRAM-SHA-512`,
		Args: exactArgs(1),
	}
	addEtcdFlags(create)
	create.Flags().StringSlice("mechanism", []string{auth.ScramSHA256, auth.ScramSHA512}, "SCRAM mechanisms to store credentials for")
	create.Flags().Int("iterations", auth.DefaultIterations, fmt.Sprintf("SCRAM iterations (%d..%d)", auth.MinIterations, auth.MaxIterations))
	create.Flags().Bool("password-stdin", false, "read the password from standard input (one line)")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		return withMeta(cmd, func(ctx context.Context, v *viper.Viper, meta *metastore.Store) error {
			pw, err := readPassword(cmd, v.GetBool("password-stdin"))
			if err != nil {
				return err
			}
			for _, m := range splitList(v.GetStringSlice("mechanism")) {
				cred, err := auth.NewCredential(strings.ToUpper(m), pw, v.GetInt("iterations"))
				if err != nil {
					return err
				}
				if err := meta.PutCredential(ctx, args[0], cred); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s: %s credential stored (%d iterations)\n", args[0], cred.Mechanism, cred.Iterations)
			}
			return nil
		})
	}
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a user's credentials", Args: exactArgs(1)}
	addEtcdFlags(del)
	del.Flags().StringSlice("mechanism", []string{auth.ScramSHA256, auth.ScramSHA512}, "mechanisms to delete")
	del.RunE = func(cmd *cobra.Command, args []string) error {
		return withMeta(cmd, func(ctx context.Context, v *viper.Viper, meta *metastore.Store) error {
			n := 0
			for _, m := range splitList(v.GetStringSlice("mechanism")) {
				err := meta.DeleteCredential(ctx, args[0], strings.ToUpper(m))
				if errors.Is(err, metastore.ErrUserNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return fmt.Errorf("user %q has no such credentials", args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s: %d credential(s) deleted\n", args[0], n)
			return nil
		})
	}
	list := &cobra.Command{Use: "list", Short: "List users and their mechanisms", Args: cobra.NoArgs}
	addEtcdFlags(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return withMeta(cmd, func(ctx context.Context, _ *viper.Viper, meta *metastore.Store) error {
			creds, err := meta.ListCredentials(ctx)
			if err != nil {
				return err
			}
			tw := newTable(cmd.OutOrStdout(), "USER", "MECHANISM", "ITERATIONS")
			for _, c := range creds {
				tw.row(c.User, c.Mechanism, c.Iterations)
			}
			return tw.flush()
		})
	}
	cmd.AddCommand(create, del, list)
	return cmd
}

// readPassword reads a new password without ever echoing or logging it.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	if pw := os.Getenv("SHALE_USER_PASSWORD"); pw != "" {
		return pw, nil
	}
	if fromStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("empty password")
		}
		return pw, nil
	}
	f, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no password: set SHALE_USER_PASSWORD, pass --password-stdin, or run on a terminal")
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
	a, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Again: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if string(a) != string(b) || len(a) == 0 {
		return "", errors.New("passwords empty or different")
	}
	return string(a), nil
}
