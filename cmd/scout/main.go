// Command scout is the cheap Cloud Run service Cloud Scheduler calls every
// 15 minutes: it looks at each car without waking it and calls the worker
// only when a car arrived home and was plugged in, or was unplugged.
package main

import (
	"context"
	"net/http"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/server"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() { server.Exit("scout", realMain) }

func realMain(ctx context.Context) error {
	cfg, err := scout.LoadConfig(ctx, envconfig.OsLookuper())
	if err != nil {
		return err
	}
	return server.Main(ctx, server.Service{
		Name: "scout", Version: version, Port: cfg.Port, LogFormat: cfg.LogFormat,
		Build: func(ctx context.Context, logger *zap.Logger) (http.Handler, func() error, error) {
			app, err := scout.Build(ctx, cfg, scout.Options{Logger: logger, Version: version})
			if err != nil {
				return nil, nil, err
			}
			logger.Info("scout starting", zap.String("worker", cfg.WorkerURL), zap.Strings("vins", cfg.VehicleVINs))
			return app.Handler, app.Close, nil
		},
	})
}
