package logging

import (
	"crypto/sha256"
	"encoding/hex"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Secret is a string that never prints its value: not through fmt, not
// through encoding/json, not through zap. Wrap a token in it the moment it is
// read, and logging it by accident logs only a short fingerprint.
type Secret string

const redacted = "[REDACTED]"

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v is safe too.
func (s Secret) GoString() string { return redacted }

// MarshalJSON keeps the value out of JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText keeps the value out of text encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the value, for the one place that must send it (an
// Authorization header, a token request, a secret write).
func (s Secret) Reveal() string { return string(s) }

// Fingerprint is a short, stable, non-reversible id: two log lines can show
// that the same token was used without showing the token.
func (s Secret) Fingerprint() string {
	if s == "" {
		return "empty"
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (s Secret) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddBool("present", s != "")
	enc.AddInt("length", len(s))
	enc.AddString("fingerprint", s.Fingerprint())
	return nil
}

// Token logs that a token was used, by fingerprint, never by value.
func Token(key string, value string) zap.Field {
	return zap.Object(key, Secret(value))
}
