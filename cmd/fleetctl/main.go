// Command fleetctl is the operator CLI for the Tesla side: login, status,
// refresh, migrate, prune, keygen, register, pair and doctor. Everything
// lives in internal/fleetctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-envconfig"

	"github.com/offpeak-charging/offpeak/internal/fleetctl"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := fleetctl.Runner{Version: version}.Run(ctx, os.Args[1:], envconfig.OsLookuper(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
