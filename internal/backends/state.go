package backends

import (
	"context"
	"fmt"

	"cloud.google.com/go/storage"

	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/state/gcsstate"
)

// State selects and configures a state.Store, the same way in the scout and the worker.
type State struct {
	Kind   string // "file" (default), "gcs", or "memory" for tests
	Dir    string // file: STATE_DIR
	Bucket string // gcs: STATE_BUCKET
	Prefix string // gcs: object name prefix
}

// OpenState builds the configured store; close releases its connections.
func OpenState(ctx context.Context, b State) (store state.Store, close func() error, err error) {
	switch b.Kind {
	case "", "file":
		f, err := state.NewFile(b.Dir)
		if err != nil {
			return nil, nil, fmt.Errorf("STATE_DIR %s: %w", b.Dir, err)
		}
		return f, noop, nil
	case "gcs":
		if b.Bucket == "" {
			return nil, nil, fmt.Errorf("STATE_BUCKET: required when STATE_BACKEND=gcs")
		}
		client, err := storage.NewClient(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("cloud storage client: %w", err)
		}
		return gcsstate.New(client, b.Bucket, b.Prefix), client.Close, nil
	case "memory":
		return state.NewMemory(), noop, nil
	default:
		return nil, nil, fmt.Errorf("STATE_BACKEND: %q is not one of file, gcs", b.Kind)
	}
}
