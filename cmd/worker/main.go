// Command worker is the on-demand Cloud Run service that owns the Tesla
// tokens (the only writer of fleet-tokens) and runs the charging cycle when
// the scout asks.
package main

import (
	"context"
	"net/http"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/server"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() { server.Exit("worker", realMain) }

func realMain(ctx context.Context) error {
	cfg, err := worker.LoadConfig(ctx, envconfig.OsLookuper())
	if err != nil {
		return err
	}
	return server.Main(ctx, server.Service{
		Name: "worker", Version: version, Port: cfg.Port, LogFormat: cfg.LogFormat,
		Build: func(ctx context.Context, logger *zap.Logger) (http.Handler, func() error, error) {
			app, err := worker.Build(ctx, cfg, worker.Options{Logger: logger, Version: version})
			if err != nil {
				return nil, nil, err
			}
			logger.Info("worker starting", zap.String("secrets_backend", cfg.Secrets.Backend),
				zap.String("auth", cfg.WorkerAuth), zap.String("fleet_api", cfg.TeslaFleetAPIURL))
			return app.Handler, app.Close, nil
		},
	})
}
