// Command fleetctl is the operator CLI for the Tesla side: login, status,
// refresh, migrate, prune, keygen, register, pair and doctor. Everything
// lives in internal/fleetctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/offpeak-charging/offpeak/internal/fleetctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := fleetctl.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
