package secrets

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// The checks in this file are every backend's, exported for the backends in
// subpackages (secretmanager): the same rules everywhere make a mistake fail
// the same way on a laptop and in Google Cloud.

// secretNamePattern is Secret Manager's rule for secret ids. Every backend
// enforces it, so a name that works locally also works in Google Cloud, and a
// name can never climb out of the file backend's directory.
var secretNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// ValidateName rejects names no backend can hold. A name that cannot exist
// is reported as not found, so callers need no extra error kind.
func ValidateName(secret string) error {
	if !secretNamePattern.MatchString(secret) {
		return fmt.Errorf("invalid secret name %q: %w", secret, ErrNotFound)
	}
	return nil
}

// ParseVersionID accepts only canonical positive decimals ("1", "42"), the
// ids every backend hands out; "latest", "01" or "-1" name no version.
func ParseVersionID(secret, id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != id {
		return 0, fmt.Errorf("secret %s: invalid version id %q: %w", secret, id, ErrNotFound)
	}
	return n, nil
}

// MaxPayload is Secret Manager's limit on one version's payload (64 KiB);
// every backend enforces it so local runs fail where production would.
const MaxPayload = 64 << 10

// ValidatePayload rejects payloads Secret Manager would refuse. The message
// gives the size only, never the content.
func ValidatePayload(secret string, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("add %s: payload of %d bytes exceeds the %d-byte limit", secret, len(payload), MaxPayload)
	}
	return nil
}

// ValidateLeaseArgs validates TryLease's arguments the same way in every backend.
func ValidateLeaseArgs(secret, holder string, ttl time.Duration) error {
	if err := ValidateName(secret); err != nil {
		return err
	}
	if holder == "" {
		return errors.New("lease holder must not be empty")
	}
	if ttl <= 0 {
		return fmt.Errorf("lease ttl must be positive, got %s", ttl)
	}
	return nil
}
