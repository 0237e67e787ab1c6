package tokens

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Claims are the useful, unverified claims of a Tesla access token (a JWT).
// Clients don't verify Tesla's signature; the claims serve display and
// region checks only.
type Claims struct {
	Subject   string
	Scopes    []string
	Audience  []string
	Region    string // ou_code, e.g. EU, NA
	ExpiresAt time.Time
	IssuedAt  time.Time
}

// ParseClaims reads the JWT payload of an access token.
func ParseClaims(accessToken string) (Claims, error) {
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("%w: access token is not a JWT", ErrCorrupt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, fmt.Errorf("%w: JWT payload is not base64url", ErrCorrupt)
	}
	var c struct {
		Sub    string          `json:"sub"`
		Scp    json.RawMessage `json:"scp"`
		Aud    json.RawMessage `json:"aud"`
		OUCode string          `json:"ou_code"`
		Exp    float64         `json:"exp"`
		Iat    float64         `json:"iat"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return Claims{}, fmt.Errorf("%w: JWT payload is not JSON", ErrCorrupt)
	}
	out := Claims{Subject: c.Sub, Region: c.OUCode, Scopes: stringOrList(c.Scp), Audience: stringOrList(c.Aud)}
	if c.Exp > 0 {
		out.ExpiresAt = time.Unix(int64(c.Exp), 0).UTC()
	}
	if c.Iat > 0 {
		out.IssuedAt = time.Unix(int64(c.Iat), 0).UTC()
	}
	return out, nil
}

// stringOrList accepts a JSON string (space separated) or a list of strings.
func stringOrList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.Fields(s)
	}
	return nil
}
