package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent"
)

// Client commands (topic, produce, consume) talk to any agent through the
// Kafka protocol, like any other client would.

func addBootstrapFlag(cmd *cobra.Command) {
	cmd.Flags().StringSliceP("bootstrap", "b", []string{agent.DefaultListen}, "agent addresses (host:port, comma-separated; env SHALE_BOOTSTRAP)")
	cmd.Flags().Duration("timeout", 30*time.Second, "give up on a request after this long")
	addClientSecurityFlags(cmd)
}

func kafkaClient(v *viper.Viper, opts ...kgo.Opt) (*kgo.Client, error) {
	seeds := splitList(v.GetStringSlice("bootstrap"))
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no agent address: pass --bootstrap host:9092")
	}
	// kgo.RetryTimeout does not bound a produce: the delivery timeout fails
	// a record still unacknowledged --timeout after it was produced.
	timeout := v.GetDuration("timeout")
	base := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("shale-cli"), kgo.RetryTimeout(timeout), kgo.RecordDeliveryTimeout(timeout)}
	sec, err := clientSecurityOpts(v)
	if err != nil {
		return nil, err
	}
	base = append(base, sec...)
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %v: %w", seeds, err)
	}
	if v.GetString("sasl-mechanism") != "" {
		// A producer would retry a failed login until its timeout: check
		// the credentials once, up front, for a clear error.
		if err := checkLogin(cl, v.GetDuration("timeout")); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return cl, nil
}

// adminClient connects and checks the cluster answers, so a wrong address
// fails fast with a message instead of a long retry loop.
func adminClient(ctx context.Context, v *viper.Viper) (*kadm.Client, func(), error) {
	cl, err := kafkaClient(v)
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, min(v.GetDuration("timeout"), 10*time.Second))
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, nil, fmt.Errorf("no agent answers at %v (%v): is `shale agent` running there?", v.GetStringSlice("bootstrap"), err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// cmdAdmin is adminClient for a command whose only setting is the agent
// address.
func cmdAdmin(cmd *cobra.Command) (*kadm.Client, func(), error) {
	v, err := newViper(cmd)
	if err != nil {
		return nil, nil, err
	}
	return adminClient(cmd.Context(), v)
}

// withMessage adds a response's ErrorMessage (the agent's reason, e.g. which
// config value is bad) to its error code; nil stays nil.
func withMessage(err error, msg string) error {
	if err == nil || msg == "" {
		return err
	}
	// "INVALID_CONFIG: invalid value ..." (the code's name, then the reason).
	return &kadm.ErrAndMessage{Err: err, ErrMessage: msg}
}
