// Package secrets stores small secret payloads as numbered, immutable
// versions, the model of Google Secret Manager. Three backends share one
// interface: File (a directory an operator can read with ls and cat),
// Memory (tests), and Secret Manager itself in package secretmanager, kept
// apart so that code needing only the interface does not link the Cloud
// client. internal/backends picks one by configuration.
package secrets

import (
	"context"
	"errors"
	"time"
)

// Errors every backend maps its failures onto, so callers decide with
// errors.Is whether to retry, fall back, or give up.
var (
	// ErrNotFound: the secret or the version does not exist.
	ErrNotFound = errors.New("secret not found")
	// ErrVersionUnavailable: the version exists but is destroyed or disabled
	// (Secret Manager's FAILED_PRECONDITION on access, e.g. a destroyed latest).
	ErrVersionUnavailable = errors.New("secret version destroyed or disabled")
	// ErrUnavailable: a transient failure (network, Unavailable, deadline,
	// quota); the same call may succeed later.
	ErrUnavailable = errors.New("secret store unavailable")
	// ErrPermissionDenied: the caller lacks the IAM role for this call.
	ErrPermissionDenied = errors.New("secret store permission denied")
	// ErrCorrupt: the payload failed its checksum.
	ErrCorrupt = errors.New("secret payload corrupt")
	// ErrLeaseHeld: another holder owns an unexpired lease on the secret.
	ErrLeaseHeld = errors.New("secret lease held by another writer")
	// ErrLeaseLost: the lease was taken over by another holder (it expired
	// while its holder stalled) or released; whoever held it must not act
	// on it any more.
	ErrLeaseLost = errors.New("secret lease lost to another writer")
)

// Version is one stored version of a secret.
type Version struct {
	Secret  string    // the secret's short name, e.g. "fleet-tokens"
	ID      string    // the version number as a decimal string ("1", "2", …)
	Payload []byte    // the raw payload
	Created time.Time // when the version was added (zero if the backend cannot tell)
}

// VersionState is the lifecycle state of a version.
type VersionState string

// Version states, as Secret Manager names them.
const (
	StateEnabled   VersionState = "enabled"
	StateDisabled  VersionState = "disabled"
	StateDestroyed VersionState = "destroyed"
)

// VersionInfo describes a version without its payload.
type VersionInfo struct {
	ID      string
	Created time.Time
	State   VersionState
}

// Lease is held by one writer at a time; Release gives it up early. A holder
// that crashes loses it when its time to live runs out (or, for the file
// backend, when the operating system closes the lock file).
type Lease interface {
	// Renew proves the lease is still this holder's and extends it by its
	// time to live from now. It fails with ErrLeaseLost once another holder
	// has taken it over (or it was released): the one check a holder makes
	// before acting on the lease, e.g. just before a write.
	Renew(ctx context.Context) error
	Release(ctx context.Context) error
}

// Store is what every backend implements.
type Store interface {
	// Latest reads the newest version of the secret.
	Latest(ctx context.Context, secret string) (Version, error)
	// Get reads one version by id.
	Get(ctx context.Context, secret, id string) (Version, error)
	// Add appends a new version and returns its id.
	Add(ctx context.Context, secret string, payload []byte) (string, error)
	// Versions lists the versions that are not destroyed, newest first.
	Versions(ctx context.Context, secret string) ([]VersionInfo, error)
	// Destroy destroys one version permanently.
	Destroy(ctx context.Context, secret, id string) error
	// TryLease takes the writer lease on the secret for ttl, or fails at once
	// with ErrLeaseHeld when someone else holds it.
	TryLease(ctx context.Context, secret, holder string, ttl time.Duration) (Lease, error)
}
