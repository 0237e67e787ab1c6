package tokens

import "errors"

// Errors callers tell apart with errors.Is.
var (
	// ErrReauthRequired is terminal: no refresh token Tesla still accepts is
	// left anywhere. Only a new browser login fixes it.
	ErrReauthRequired = errors.New("tesla rejected every stored refresh token (login_required); log in again with `fleetctl login`")
	// ErrUpstreamUnavailable: Tesla's token endpoint failed transiently
	// (5xx, timeout, malformed answer). Retry later; inside Tesla's 24 h grace
	// the stored refresh token still works even if Tesla rotated it.
	ErrUpstreamUnavailable = errors.New("tesla token endpoint unavailable")
	// ErrStoreUnavailable: the secret store failed; retry later.
	ErrStoreUnavailable = errors.New("token store unavailable")
	// ErrBusy: another writer held the refresh lease for longer than the
	// caller could wait. It is a store-side condition, retried like one.
	ErrBusy = errors.Join(errors.New("another writer holds the token lease"), ErrStoreUnavailable)
	// ErrCorrupt: a stored payload that is not token JSON.
	ErrCorrupt = errors.New("token payload corrupt")
	// ErrUnusable: token JSON without both tokens.
	ErrUnusable = errors.New("token payload has no usable tokens")
	// ErrMisconfigured: a setting or a required secret (client id) is missing.
	ErrMisconfigured = errors.New("token manager misconfigured")
)

// errLoginRequired marks one refresh token as rejected; the manager moves on
// to the next candidate, and only when none is left reports ErrReauthRequired.
var errLoginRequired = errors.New("refresh token rejected (login_required)")
