// Package backends opens the secret and state stores the configuration
// names. It is the one package that knows every backend, Google's
// included, so that code which needs only the secrets.Store and
// state.Store interfaces (tokens, charging, the scout's decisions) never
// links a Cloud SDK. Only the services' wiring and cmd/* import it, as
// exposure-notifications-server picks its secret manager where it builds
// the server.
package backends

import (
	"context"
	"fmt"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/secrets/secretmanager"
)

// Secrets selects and configures a secrets.Store, the same way in every binary.
type Secrets struct {
	Kind    string // "file" (default) or "gcp"; "memory" for tests
	Dir     string // file: SECRETS_DIR
	Project string // gcp: GOOGLE_CLOUD_PROJECT
}

// OpenSecrets builds the configured store; close releases its connections.
func OpenSecrets(ctx context.Context, b Secrets, clk clock.Clock) (store secrets.Store, close func() error, err error) {
	if clk == nil {
		clk = clock.Real{}
	}
	switch b.Kind {
	case "", "file":
		f, err := secrets.NewFile(b.Dir, clk)
		if err != nil {
			return nil, nil, fmt.Errorf("SECRETS_DIR %s: %w", b.Dir, err)
		}
		return f, noop, nil
	case "gcp":
		if b.Project == "" {
			return nil, nil, fmt.Errorf("GOOGLE_CLOUD_PROJECT: required when SECRETS_BACKEND=gcp")
		}
		g, err := secretmanager.New(ctx, b.Project)
		if err != nil {
			return nil, nil, fmt.Errorf("SECRETS_BACKEND=gcp: %w", err)
		}
		g.Clock = clk
		return g, g.Close, nil
	case "memory":
		return secrets.NewMemory(clk), noop, nil
	default:
		return nil, nil, fmt.Errorf("SECRETS_BACKEND: %q is not one of file, gcp", b.Kind)
	}
}

func noop() error { return nil }
