package tokens

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Pair is the content of the fleet-tokens secret. The first four fields are
// the Python system's format, kept so either system can read the other's
// writes during a takeover; the rest are ours and optional.
type Pair struct {
	AccessToken           string
	RefreshToken          string
	ExpiresAt             time.Time // zero: unknown, treated as expired
	RefreshTokenCreatedAt time.Time
	TokenType             string
	Scope                 string
	UpdatedAt             time.Time
	Source                string // what wrote it: refresh, login, migrate:legacy, migrate:version-N
	// SpentRefreshHash is the SHA-256 of the refresh token spent to get this
	// pair: it lets Migrate recognise a legacy token that was already used
	// (and must not be spent again) without storing the token itself.
	SpentRefreshHash string
	// RefreshTokenUsedAt is set when Tesla answered a refresh without a new
	// refresh token: when the one still stored was first spent. Tesla keeps
	// a spent token for 24 h after its first use, so it must be replaced
	// (spent again, for a real rotation) before then; see RotationDue.
	RefreshTokenUsedAt time.Time
	// AdoptedLegacy holds the SHA-256 of legacy refresh tokens adopted from
	// the old system's secret. Every write carries it forward, so the record
	// lives as long as the newest version does, whatever pruning destroys,
	// and Migrate never spends an adopted legacy token again.
	AdoptedLegacy []string
}

// RotationDue reports whether the refresh token was spent without a
// rotation at least within ago: time to spend it again while Tesla's grace
// still holds.
func (p Pair) RotationDue(now time.Time, within time.Duration) bool {
	return !p.RefreshTokenUsedAt.IsZero() && now.Sub(p.RefreshTokenUsedAt) >= within
}

// HashToken is the one-way digest stored as SpentRefreshHash.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wirePair is the JSON shape. Times are strings so that every format the
// Python system ever wrote can be read (see parseTime).
type wirePair struct {
	AccessToken           string   `json:"access_token"`
	RefreshToken          string   `json:"refresh_token"`
	ExpiresAt             string   `json:"expires_at,omitempty"`
	RefreshTokenCreatedAt string   `json:"refresh_token_created_at,omitempty"`
	TokenType             string   `json:"token_type,omitempty"`
	Scope                 string   `json:"scope,omitempty"`
	UpdatedAt             string   `json:"updated_at,omitempty"`
	Source                string   `json:"source,omitempty"`
	SpentRefreshHash      string   `json:"spent_refresh_sha256,omitempty"`
	RefreshTokenUsedAt    string   `json:"refresh_token_used_at,omitempty"`
	AdoptedLegacy         []string `json:"adopted_legacy_sha256,omitempty"`
}

// Usable reports whether the pair has both tokens.
func (p Pair) Usable() bool { return p.AccessToken != "" && p.RefreshToken != "" }

// FreshAt reports whether the access token is usable at now for at least margin.
func (p Pair) FreshAt(now time.Time, margin time.Duration) bool {
	return p.Usable() && !p.ExpiresAt.IsZero() && p.ExpiresAt.Sub(now) > margin
}

// SameTokens reports whether two pairs carry the same credentials and expiry,
// i.e. whether writing b over a would change anything that matters.
func (p Pair) SameTokens(b Pair) bool {
	return p.AccessToken == b.AccessToken && p.RefreshToken == b.RefreshToken && p.ExpiresAt.Equal(b.ExpiresAt)
}

// ParsePair decodes a fleet-tokens payload. It never panics: a payload that
// is not JSON, or carries an unreadable time, is ErrCorrupt; one without both
// tokens is ErrUnusable. Unknown fields are ignored, a missing expires_at
// leaves ExpiresAt zero (expired). Error messages never include the payload.
func ParsePair(data []byte) (Pair, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Pair{}, fmt.Errorf("%w: empty payload", ErrCorrupt)
	}
	var w wirePair
	if err := json.Unmarshal(data, &w); err != nil {
		return Pair{}, fmt.Errorf("%w: not a token JSON object (%s)", ErrCorrupt, describeJSONError(err))
	}
	p := Pair{
		AccessToken:      strings.TrimSpace(w.AccessToken),
		RefreshToken:     strings.TrimSpace(w.RefreshToken),
		TokenType:        w.TokenType,
		Scope:            w.Scope,
		Source:           w.Source,
		SpentRefreshHash: w.SpentRefreshHash,
		AdoptedLegacy:    w.AdoptedLegacy,
	}
	var err error
	for _, f := range []struct {
		name string
		in   string
		out  *time.Time
	}{
		{"expires_at", w.ExpiresAt, &p.ExpiresAt},
		{"refresh_token_created_at", w.RefreshTokenCreatedAt, &p.RefreshTokenCreatedAt},
		{"updated_at", w.UpdatedAt, &p.UpdatedAt},
		{"refresh_token_used_at", w.RefreshTokenUsedAt, &p.RefreshTokenUsedAt},
	} {
		if f.in == "" {
			continue
		}
		if *f.out, err = parseTime(f.in); err != nil {
			return Pair{}, fmt.Errorf("%w: %s is not a time", ErrCorrupt, f.name)
		}
	}
	if !p.Usable() {
		return p, fmt.Errorf("%w: access_token or refresh_token is empty", ErrUnusable)
	}
	return p, nil
}

// describeJSONError names what went wrong without quoting the input, which
// could hold a token.
func describeJSONError(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("syntax error at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %q has the wrong type", e.Field)
	default:
		if strings.Contains(err.Error(), "unexpected end of JSON input") {
			return "truncated"
		}
		return "invalid JSON"
	}
}

// timeLayouts are tried in order. Python's isoformat() writes +00:00 and
// microseconds; one bootstrap script wrote a naive time (no offset), which
// is taken as UTC; str(datetime) uses a space instead of T.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised time %q", s)
}

// Marshal encodes the pair with RFC 3339 UTC times.
func (p Pair) Marshal() ([]byte, error) {
	format := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return json.Marshal(wirePair{
		AccessToken:           p.AccessToken,
		RefreshToken:          p.RefreshToken,
		ExpiresAt:             format(p.ExpiresAt),
		RefreshTokenCreatedAt: format(p.RefreshTokenCreatedAt),
		TokenType:             p.TokenType,
		Scope:                 p.Scope,
		UpdatedAt:             format(p.UpdatedAt),
		Source:                p.Source,
		SpentRefreshHash:      p.SpentRefreshHash,
		RefreshTokenUsedAt:    format(p.RefreshTokenUsedAt),
		AdoptedLegacy:         p.AdoptedLegacy,
	})
}

// String keeps the pair's tokens out of %v and %+v.
func (p Pair) String() string {
	return fmt.Sprintf("tokens{expires_at=%s source=%s}", p.ExpiresAt.Format(time.RFC3339), p.Source)
}

// GoString keeps the pair's tokens out of %#v.
func (p Pair) GoString() string { return p.String() }
