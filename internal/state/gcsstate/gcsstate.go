// Package gcsstate is the state.Store backend on Cloud Storage
// (STATE_BUCKET). It lives apart from package state so that code which only
// needs the Store interface does not link the Cloud client; the wiring
// (internal/backends) picks it when STATE_BACKEND=gcs.
package gcsstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"

	"github.com/offpeak-charging/offpeak/internal/state"
)

// writeIDMetadata is the custom metadata key under which each Put stores a
// random id of its own. See Store.Put.
const writeIDMetadata = "state-write-id"

// Store is a state.Store in a Cloud Storage bucket (STATE_BUCKET). Compare-and-swap
// uses the object generation: Put sends ifGenerationMatch (or
// ifGenerationMatch=0, "does not exist"), and Cloud Storage answers a lost
// race with 412. The bucket should not have object versioning enabled.
type Store struct {
	client *storage.Client
	bucket string
	prefix string
	// Timeout bounds every call whose context has no earlier deadline;
	// zero means state.DefaultTimeout.
	Timeout time.Duration
}

var _ state.Store = (*Store)(nil)

// New returns a Store keeping key k in bucket as object prefix+k. A
// non-empty prefix gets a trailing slash if it lacks one ("state" → "state/").
func New(client *storage.Client, bucket, prefix string) *Store {
	prefix = strings.TrimLeft(prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{client: client, bucket: bucket, prefix: prefix}
}

// callCtx bounds ctx by Timeout unless it already ends sooner.
func (g *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := g.Timeout
	if d <= 0 {
		d = state.DefaultTimeout
	}
	return context.WithTimeout(ctx, d)
}

func (g *Store) object(key string) *storage.ObjectHandle {
	return g.client.Bucket(g.bucket).Object(g.prefix + key)
}

// Get implements state.Store. The generation comes from the same response as the
// data, so the pair is consistent.
func (g *Store) Get(ctx context.Context, key string) (state.Object, error) {
	if err := state.ValidateKey(key); err != nil {
		return state.Object{}, err
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	r, err := g.object(key).NewReader(ctx)
	if err != nil {
		return state.Object{}, fmt.Errorf("get %s: %w", key, classifyGCS(err))
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, state.MaxObjectSize+1))
	if err != nil {
		return state.Object{}, fmt.Errorf("get %s: read: %w", key, classifyGCS(err))
	}
	gen := r.Attrs.Generation
	if err := state.ValidateStored(key, data); err != nil {
		return state.Object{}, fmt.Errorf("get %s at generation %d: %w", key, gen, err)
	}
	return state.Object{Data: data, Generation: gen}, nil
}

// Put implements state.Store.
//
// The client library retries a conditional upload on 5xx and timeouts. If
// the first attempt landed but its answer was lost, the retry fails with
// 412 although the object now holds our data; reporting state.ErrConflict then
// would make Update apply its change a second time. So every Put tags its
// object with a random write id, and on 412 checks whether the live object
// carries its own id: if so, the write succeeded.
func (g *Store) Put(ctx context.Context, key string, data []byte, ifGeneration int64) (int64, error) {
	if err := state.ValidateKey(key); err != nil {
		return 0, err
	}
	if err := state.ValidateData(data); err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	if ifGeneration < 0 {
		return 0, fmt.Errorf("put %s if generation %d: %w", key, ifGeneration, state.ErrConflict)
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()

	writeID, err := newWriteID()
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	cond := storage.Conditions{DoesNotExist: true}
	if ifGeneration != 0 {
		cond = storage.Conditions{GenerationMatch: ifGeneration}
	}
	obj := g.object(key)
	w := obj.If(cond).NewWriter(ctx)
	w.ContentType = "application/json"
	w.Metadata = map[string]string{writeIDMetadata: writeID}
	// One request, buffered so the library can retry it; the default 16 MiB
	// buffer per writer is wasteful for objects of a few hundred bytes.
	w.ChunkSize = len(data) + 1
	w.CRC32C = crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	w.SendCRC32C = true
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return 0, fmt.Errorf("put %s: %w", key, classifyGCS(err))
	}
	if err := w.Close(); err != nil {
		err = classifyGCS(err)
		if errors.Is(err, state.ErrConflict) {
			if attrs, aerr := obj.Attrs(ctx); aerr == nil && attrs.Metadata[writeIDMetadata] == writeID {
				return attrs.Generation, nil
			}
			return 0, fmt.Errorf("put %s if generation %d: %w", key, ifGeneration, err)
		}
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return w.Attrs().Generation, nil
}

// Delete implements state.Store. A conditional delete names the generation as
// well as the precondition: Cloud Storage then answers a stale generation
// with 412 or (the generation no longer exists) 404, and fake-gcs-server,
// which ignores preconditions on delete, with 404. A 404 is told apart from
// "no object at all" by one more metadata read.
func (g *Store) Delete(ctx context.Context, key string, ifGeneration int64) error {
	if err := state.ValidateKey(key); err != nil {
		return err
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	obj := g.object(key)
	target := obj
	if ifGeneration != 0 {
		target = obj.Generation(ifGeneration).If(storage.Conditions{GenerationMatch: ifGeneration})
	}
	err := classifyGCS(target.Delete(ctx))
	if err == nil {
		return nil
	}
	if ifGeneration != 0 && errors.Is(err, state.ErrNotFound) {
		attrs, aerr := obj.Attrs(ctx)
		switch aerr := classifyGCS(aerr); {
		case aerr == nil:
			return fmt.Errorf("delete %s if generation %d (now %d): %w", key, ifGeneration, attrs.Generation, state.ErrConflict)
		case !errors.Is(aerr, state.ErrNotFound):
			return fmt.Errorf("delete %s: %w", key, aerr)
		}
	}
	if errors.Is(err, state.ErrConflict) {
		return fmt.Errorf("delete %s if generation %d: %w", key, ifGeneration, err)
	}
	return fmt.Errorf("delete %s: %w", key, err)
}

// List implements state.Store.
func (g *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := state.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	q := &storage.Query{Prefix: g.prefix + prefix}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	it := g.client.Bucket(g.bucket).Objects(ctx, q)
	var keys []string
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, classifyGCS(err))
		}
		key := strings.TrimPrefix(attrs.Name, g.prefix)
		if state.ValidateKey(key) == nil {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// classifyGCS maps a Cloud Storage error onto the package's sentinels,
// keeping the original in the chain for the message. Errors that are
// neither transient nor CAS outcomes (403, 400, …) pass through unchanged.
func classifyGCS(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("%w: %w", state.ErrNotFound, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		switch code := gerr.Code; {
		case code == http.StatusPreconditionFailed:
			return fmt.Errorf("%w: %w", state.ErrConflict, err)
		case code == http.StatusNotFound:
			return fmt.Errorf("%w: %w", state.ErrNotFound, err)
		case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
			return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
		}
		return err
	}
	// The gRPC transport (storage.NewGRPCClient) reports status codes.
	var aerr *apierror.APIError
	if errors.As(err, &aerr) && aerr.GRPCStatus() != nil {
		switch aerr.GRPCStatus().Code() {
		case codes.FailedPrecondition, codes.Aborted:
			return fmt.Errorf("%w: %w", state.ErrConflict, err)
		case codes.NotFound:
			return fmt.Errorf("%w: %w", state.ErrNotFound, err)
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal:
			return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
		}
		return err
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	return err
}

func newWriteID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("write id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
