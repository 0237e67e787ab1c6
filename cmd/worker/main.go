// Command worker is the on-demand Cloud Run service that owns the Tesla
// tokens (the only writer of fleet-tokens) and runs the charging cycle when
// the scout asks.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/server"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := realMain(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	cfg, err := worker.LoadConfig(ctx, envconfig.OsLookuper())
	if err != nil {
		return err
	}
	format, _ := logging.ParseFormat(cfg.LogFormat)
	logger := logging.New(logging.Options{Format: format, Service: "worker", Version: version})
	defer func() { _ = logger.Sync() }()

	// Listen before building so a port problem is reported first and fast.
	ln, err := server.Listen(cfg.Port)
	if err != nil {
		return err
	}
	app, err := worker.Build(ctx, cfg, worker.Options{Logger: logger, Version: version})
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer func() { _ = app.Close() }()
	logger.Info("worker starting", zap.String("secrets_backend", cfg.Secrets.Backend),
		zap.String("auth", cfg.WorkerAuth), zap.String("fleet_api", cfg.TeslaFleetAPIURL))
	return server.New(ln, app.Handler, logger, server.Options{}).Serve(ctx)
}
