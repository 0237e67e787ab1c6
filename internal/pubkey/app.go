package pubkey

import (
	"context"
	"net/http"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/backends"
	"github.com/offpeak-charging/offpeak/internal/clock"
)

// Options override what Build would otherwise create, for tests.
type Options struct {
	Clock   clock.Clock
	Logger  *zap.Logger
	Secrets SecretReader // default: SECRETS_BACKEND
}

// App is a built public-key service.
type App struct {
	Handler http.Handler
	Keys    *Keys
	close   func() error
}

// Close releases the secret store's connection.
func (a *App) Close() error { return a.close() }

// Build opens the secret store and reads the key once. A missing or invalid
// key does not stop the service: it starts, logs why, and answers 503 on
// the key path until a key is stored (read again at most every 30 s, on a
// request). Only a configuration the store cannot be opened with stops it.
func Build(ctx context.Context, cfg Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	app := &App{close: func() error { return nil }}
	store := opts.Secrets
	if store == nil {
		s, closeFn, err := backends.OpenSecrets(ctx, backends.Secrets{Kind: cfg.Secrets.Backend, Dir: cfg.Secrets.Dir, Project: cfg.Secrets.Project}, opts.Clock)
		if err != nil {
			return nil, err
		}
		store, app.close = s, closeFn
	}
	app.Keys = NewKeys(store, KeysConfig{
		Secret: cfg.PrivateKeySecret, Refresh: cfg.KeyRefresh, Clock: opts.Clock, Logger: opts.Logger.Named("key"),
	})
	// Whatever it finds is logged; a problem is answered with 503.
	_, _ = app.Keys.Load(ctx)
	app.Handler = NewHandler(Deps{Keys: app.Keys, Logger: opts.Logger, ProjectID: cfg.Secrets.Project})
	return app, nil
}
