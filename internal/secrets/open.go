package secrets

import (
	"context"
	"fmt"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

// Backend selects and configures a Store, the same way in every binary.
type Backend struct {
	Kind    string // "file" (default) or "gcp"; "memory" for tests
	Dir     string // file: SECRETS_DIR
	Project string // gcp: GOOGLE_CLOUD_PROJECT
}

// Open builds the configured Store. close releases its connections.
func Open(ctx context.Context, b Backend, clk clock.Clock) (store Store, close func() error, err error) {
	if clk == nil {
		clk = clock.Real{}
	}
	noop := func() error { return nil }
	switch b.Kind {
	case "", "file":
		f, err := NewFile(b.Dir, clk)
		if err != nil {
			return nil, nil, fmt.Errorf("SECRETS_DIR %s: %w", b.Dir, err)
		}
		return f, noop, nil
	case "gcp":
		if b.Project == "" {
			return nil, nil, fmt.Errorf("GOOGLE_CLOUD_PROJECT: required when SECRETS_BACKEND=gcp")
		}
		g, err := NewGCP(ctx, b.Project)
		if err != nil {
			return nil, nil, fmt.Errorf("SECRETS_BACKEND=gcp: %w", err)
		}
		g.Clock = clk
		return g, g.Close, nil
	case "memory":
		return NewMemory(clk), noop, nil
	default:
		return nil, nil, fmt.Errorf("SECRETS_BACKEND: %q is not one of file, gcp", b.Kind)
	}
}
