package state

import (
	"context"
	"fmt"

	"cloud.google.com/go/storage"
)

// Backend selects and configures a Store, the same way in the scout and the worker.
type Backend struct {
	Kind   string // "file" (default), "gcs", or "memory" for tests
	Dir    string // file: STATE_DIR
	Bucket string // gcs: STATE_BUCKET
	Prefix string // gcs: object name prefix
}

// Open builds the configured Store; close releases its connections.
func Open(ctx context.Context, b Backend) (Store, func() error, error) {
	noop := func() error { return nil }
	switch b.Kind {
	case "", "file":
		f, err := NewFile(b.Dir)
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
		return NewGCS(client, b.Bucket, b.Prefix), client.Close, nil
	case "memory":
		return NewMemory(), noop, nil
	default:
		return nil, nil, fmt.Errorf("STATE_BACKEND: %q is not one of file, gcs", b.Kind)
	}
}
