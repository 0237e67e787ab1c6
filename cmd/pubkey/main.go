// Command pubkey is the public-key service: the deployment's only public
// Cloud Run service. It serves the public half of the owner's command key
// (read from the secret store) at
// /.well-known/appspecific/com.tesla.3p.public-key.pem, and nothing else.
package main

import (
	"context"
	"net/http"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/pubkey"
	"github.com/offpeak-charging/offpeak/internal/server"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

func main() { server.Exit("pubkey", realMain) }

func realMain(ctx context.Context) error {
	cfg, err := pubkey.LoadConfig(ctx, envconfig.OsLookuper())
	if err != nil {
		return err
	}
	return server.Main(ctx, server.Service{
		Name: "pubkey", Version: version, Port: cfg.Port, LogFormat: cfg.LogFormat,
		Build: func(ctx context.Context, logger *zap.Logger) (http.Handler, func() error, error) {
			app, err := pubkey.Build(ctx, cfg, pubkey.Options{Logger: logger})
			if err != nil {
				return nil, nil, err
			}
			logger.Info("pubkey starting", zap.String("secrets_backend", cfg.Secrets.Backend),
				zap.String("secret", cfg.PrivateKeySecret), zap.String("path", pubkey.Path))
			return app.Handler, app.Close, nil
		},
	})
}
