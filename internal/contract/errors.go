package contract

// The error shape is owned here, not by internal/server: it is what a caller
// decodes (the scout's client reads Code to decide between retrying,
// waiting for a person and giving up), so it belongs with the rest of the
// wire. internal/server writes it for every service, and for the answers it
// gives before any route runs.

// StatusError is ErrorBody.Status; a success answers StatusOK.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// ErrorBody is the error shape: {"status":"error","error":{"code","message"}}.
type ErrorBody struct {
	Status string      `json:"status"`
	Error  ErrorDetail `json:"error"`
}

// ErrorDetail is the inner part of ErrorBody. Message is for people; callers
// decide by Code.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of the error shape.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	// CodeTooManyNeeds: the car already has the most pending charge needs allowed.
	CodeTooManyNeeds        = "too_many_needs"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodePayloadTooLarge     = "payload_too_large"
	CodeUnsupportedMedia    = "unsupported_media_type"
	CodeInternal            = "internal"
	CodeReauthRequired      = "reauth_required"
	CodeUpstreamUnavailable = "upstream_unavailable"
	CodeStoreUnavailable    = "store_unavailable"
	CodeBusy                = "busy"
	// Codes of the car's command path: each names the operator's fix.
	CodeKeyNotPaired    = "key_not_paired"
	CodeKeyMissing      = "key_missing"
	CodeKeyInvalid      = "key_invalid"
	CodeKeyRejected     = "key_rejected"
	CodeSigningDisabled = "signing_disabled"
	CodeSessionRejected = "session_rejected"
	CodeCarBusy         = "car_busy"
	CodeAppUnregistered = "app_not_registered"
	// Codes of requests refused before any route ran (internal/server's
	// pre-router).
	CodeHeadersTooLarge         = "headers_too_large"
	CodeNotImplemented          = "not_implemented"
	CodeHTTPVersionNotSupported = "http_version_not_supported"
	CodeExpectationFailed       = "expectation_failed"
)

// NeedsOperator reports whether code is one only a person can fix (a key
// not paired, no key, a bad key, signing off, the app not registered): the
// worker answers these with 409 and no Retry-After, and a caller should
// stop retrying after a few, not for hours. CodeReauthRequired is not among
// them: it has its own meaning (run `fleetctl login`).
func NeedsOperator(code string) bool {
	switch code {
	case CodeKeyNotPaired, CodeKeyMissing, CodeKeyInvalid, CodeKeyRejected, CodeSigningDisabled, CodeAppUnregistered:
		return true
	}
	return false
}
