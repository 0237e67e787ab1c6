// Package state keeps small JSON objects (per-car scout state, plan hashes,
// per-car leases) with compare-and-swap writes, the model of Cloud Storage's
// object generations. Every object carries a generation; a write names the
// generation it read and fails with ErrConflict when someone else wrote
// first, so two overlapping scheduler ticks can never both act.
//
// Three backends share the Store interface: File (a directory an operator
// can read with ls and cat, STATE_DIR; safe across OS processes), Memory
// (tests), and gcsstate (Cloud Storage, STATE_BUCKET), kept in its own
// package so that code needing only this interface does not link the Cloud
// client. Update and Load add typed JSON and retry-on-conflict on top of
// any of them. The Validate functions are every backend's checks, exported
// for the backends in subpackages.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"
)

// Errors every backend maps its failures onto, so callers decide with
// errors.Is whether to retry, re-read, or give up.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("state object not found")
	// ErrConflict: the generation precondition failed — someone else wrote
	// (or deleted, or created) the object since it was read.
	ErrConflict = errors.New("state generation precondition failed")
	// ErrUnavailable: a transient backend failure (5xx, 429, timeout, lock
	// wait cancelled); the same call may succeed later. A write that ends in
	// ErrUnavailable may or may not have landed: re-read before acting.
	ErrUnavailable = errors.New("state store unavailable")
	// ErrCorrupt: the stored bytes are not valid JSON for the expected type,
	// or the file backend's generation sidecar is unreadable.
	ErrCorrupt = errors.New("state object corrupt")
	// ErrInvalidKey: the key breaks the naming rules of ValidateKey.
	ErrInvalidKey = errors.New("invalid state key")
	// ErrInvalidData: Put was given bytes that are not JSON or are larger
	// than MaxObjectSize.
	ErrInvalidData = errors.New("invalid state data")
)

// MaxObjectSize bounds one object. State objects are a few hundred bytes;
// the bound keeps a wrong key (or a hostile object) from filling memory.
const MaxObjectSize = 1 << 20

// MaxKeyLength bounds a key's length in bytes.
const MaxKeyLength = 256

// DefaultTimeout bounds every backend call whose context has no earlier
// deadline (a GCS request, a wait for a file lock).
const DefaultTimeout = 10 * time.Second

// UpdateAttempts is how many read-modify-write rounds Update makes before
// it gives up with ErrConflict.
const UpdateAttempts = 5

// Object is one stored object and the generation it was read at.
// Generation 0 never exists: the first write creates generation >= 1.
type Object struct {
	Data       []byte
	Generation int64
}

// Store is a key-value store of small JSON objects with compare-and-swap.
// Implementations are safe for concurrent use.
type Store interface {
	// Get returns the object and its generation; ErrNotFound when absent.
	Get(ctx context.Context, key string) (Object, error)
	// Put writes data only if the object's generation is still ifGeneration
	// (0: only if the object does not exist) and returns the new generation;
	// ErrConflict when the precondition fails.
	Put(ctx context.Context, key string, data []byte, ifGeneration int64) (int64, error)
	// Delete removes the object only if its generation is ifGeneration
	// (0: whatever its generation); ErrNotFound when absent, ErrConflict
	// when the generation differs.
	Delete(ctx context.Context, key string, ifGeneration int64) error
	// List returns the keys that start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
}

// ValidateKey reports whether key is usable by every backend, as the same
// key must name the same object in a bucket and in a directory. A key is 1
// to MaxKeyLength bytes of ASCII letters, digits and "-_.=@+", in segments
// separated by single slashes; no segment may be empty or start with a dot
// (which rules out "..", "." and the file backend's hidden temp files), and
// the key may not end in ".lock" or ".gen" (the file backend's sidecars).
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyLength {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidKey, len(key), MaxKeyLength)
	}
	if err := checkKeyChars(key); err != nil {
		return err
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" {
			return fmt.Errorf("%w: %q has an empty path segment (leading, trailing or double slash)", ErrInvalidKey, key)
		}
		if strings.HasPrefix(seg, ".") {
			return fmt.Errorf("%w: %q has a segment starting with a dot", ErrInvalidKey, key)
		}
	}
	for _, suffix := range reservedSuffixes {
		if strings.HasSuffix(key, suffix) {
			return fmt.Errorf("%w: %q ends in reserved suffix %q", ErrInvalidKey, key, suffix)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: empty, or a key-like string that may
// end in a slash or in a partial segment.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLength {
		return fmt.Errorf("%w: prefix %d bytes, at most %d", ErrInvalidKey, len(prefix), MaxKeyLength)
	}
	if err := checkKeyChars(prefix); err != nil {
		return err
	}
	segs := strings.Split(strings.TrimSuffix(prefix, "/"), "/")
	for i, seg := range segs {
		// The last segment may be a partial name ("vehicles/5YJ"), but a
		// complete segment must follow the key rules.
		if seg == "" || (strings.HasPrefix(seg, ".") && i < len(segs)-1) || seg == "." || seg == ".." {
			return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
		}
	}
	return nil
}

var reservedSuffixes = []string{lockSuffix, genSuffix}

func checkKeyChars(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_.=@+/", c) >= 0:
		default:
			return fmt.Errorf("%w: %q has character %q at byte %d (allowed: letters, digits, -_.=@+/)", ErrInvalidKey, s, c, i)
		}
	}
	return nil
}

// ValidateData is every backend's Put check: the store holds JSON only,
// which is what lets a reader tell a damaged object from a good one.
func ValidateData(data []byte) error {
	if len(data) > MaxObjectSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidData, len(data), MaxObjectSize)
	}
	if !json.Valid(data) {
		return fmt.Errorf("%w: not valid JSON", ErrInvalidData)
	}
	return nil
}

// ValidateStored is every backend's Get check on bytes read back: ErrCorrupt
// unless they are JSON of at most MaxObjectSize.
func ValidateStored(key string, data []byte) error {
	if len(data) > MaxObjectSize {
		return fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, key, MaxObjectSize)
	}
	if !json.Valid(data) {
		return fmt.Errorf("%w: %s is not valid JSON (%d bytes)", ErrCorrupt, key, len(data))
	}
	return nil
}

// withDefaultTimeout bounds ctx by DefaultTimeout unless it already ends sooner.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = DefaultTimeout
	}
	return context.WithTimeout(ctx, d)
}

// Load reads key and decodes it into a T. It returns the generation read,
// for a later Put; ErrNotFound when absent, ErrCorrupt when the JSON does
// not decode into T.
func Load[T any](ctx context.Context, s Store, key string) (T, int64, error) {
	var v T
	obj, err := s.Get(ctx, key)
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(obj.Data, &v); err != nil {
		return v, 0, fmt.Errorf("%w: decode %s at generation %d: %v", ErrCorrupt, key, obj.Generation, err)
	}
	return v, obj.Generation, nil
}

// Update is a read-modify-write of key with compare-and-swap. It reads the
// object (exists is false and cur nil when absent), calls fn, and writes
// fn's result with the generation it read. When someone else wrote in
// between it re-reads and calls fn again, up to UpdateAttempts times, then
// returns an error wrapping ErrConflict. fn must therefore be free of side
// effects other than computing next: it may run several times. fn may
// modify and return cur, which is freshly decoded on every attempt.
//
// fn returning (nil, nil) means "no write": Update returns the current
// value (the zero T when absent). An error from fn stops Update and is
// returned as is, so callers can test for their own sentinels. A ctx that
// ends before a round is ErrUnavailable, as a backend's wait would be.
func Update[T any](ctx context.Context, s Store, key string, fn func(cur *T, exists bool) (next *T, err error)) (T, error) {
	var (
		zero     T
		attempts int
		settled  bool // the last round ended Update: a write, no write, or an error other than a lost race
	)
	v, err := retry.DoValue(ctx, updateBackoff(), func(ctx context.Context) (T, error) {
		attempts++
		v, lost, err := updateOnce(ctx, s, key, fn)
		if lost != nil {
			return zero, retry.RetryableError(lost)
		}
		settled = true
		return v, err
	})
	switch {
	case settled:
		return v, err
	case attempts >= UpdateAttempts:
		return zero, fmt.Errorf("update %s: gave up after %d attempts: %w", key, attempts, err)
	default: // ctx ended, before the first round or in a pause
		return zero, fmt.Errorf("update %s: %w: %w", key, ErrUnavailable, ctx.Err())
	}
}

// updateBackoff is the pause between Update's rounds: random (full jitter),
// below 5 ms, 10 ms, then 20 ms, so writers that collided spread out and
// the next round is less likely to collide again; UpdateAttempts rounds
// in all.
func updateBackoff() retry.Backoff {
	b := retry.WithCappedDuration(20*time.Millisecond, retry.NewExponential(5*time.Millisecond))
	return retry.WithMaxRetries(UpdateAttempts-1, retry.WithFullJitter(b))
}

// updateOnce is one round of Update. lost is the Put's ErrConflict when
// someone else wrote since the read (try again); err ends Update.
func updateOnce[T any](ctx context.Context, s Store, key string, fn func(cur *T, exists bool) (*T, error)) (v T, lost, err error) {
	var (
		zero   T
		cur    *T
		gen    int64
		exists bool
	)
	got, g, err := Load[T](ctx, s, key)
	switch {
	case err == nil:
		cur, gen, exists = &got, g, true
	case errors.Is(err, ErrNotFound):
	default:
		return zero, nil, fmt.Errorf("update %s: %w", key, err)
	}
	next, err := fn(cur, exists)
	if err != nil {
		return zero, nil, err
	}
	if next == nil {
		if cur == nil {
			return zero, nil, nil
		}
		return *cur, nil, nil
	}
	data, err := json.Marshal(next)
	if err != nil {
		return zero, nil, fmt.Errorf("update %s: encode: %w", key, err)
	}
	switch _, err := s.Put(ctx, key, data, gen); {
	case err == nil:
		return *next, nil, nil
	case errors.Is(err, ErrConflict):
		return zero, err, nil
	default:
		return zero, nil, fmt.Errorf("update %s: %w", key, err)
	}
}
