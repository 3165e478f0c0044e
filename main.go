// Command shale is a Kafka-compatible streaming log whose durable home is
// object storage. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shale-dev/shale/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
