package fleetsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Outcomes of a token request, the keys of Counters.TokenExchanges.
const (
	OutcomeRefreshOK       = "refresh_ok"        // the newest unused refresh token was used
	OutcomeGraceReuse      = "grace_reuse"       // the last used refresh token was used again inside grace
	OutcomeLoginRequired   = "login_required"    // cycled out, expired or unknown refresh token
	OutcomeInvalidClient   = "invalid_client"    // wrong client_id or client_secret
	OutcomeAuthCodeOK      = "auth_code_ok"      // authorization_code exchanged
	OutcomeInvalidAuthCode = "invalid_auth_code" // unknown, used, expired code or redirect_uri mismatch
	OutcomeBadRequest      = "bad_request"       // malformed body, missing grant or field
	OutcomeFault           = "fault"             // answered by an injected fault
)

// authCodeTTL is how long an authorization code can be exchanged.
const authCodeTTL = 10 * time.Minute

// TokenPair is what a login or refresh hands out.
type TokenPair struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresIn    int       `json:"expires_in"`
	ExpiresAt    time.Time `json:"expires_at"`
	Scope        string    `json:"scope"`
}

// refreshToken is one issued refresh token of the current chain.
type refreshToken struct {
	value    string
	issuedAt time.Time
	usedAt   time.Time // first use; zero while unused
}

// chainState is Tesla's rotation state for the one simulated account. Only
// two refresh tokens can ever be accepted: the newest (unused) one and the
// most recently used one (inside grace). Everything else is cycled out, so
// nothing else needs remembering.
type chainState struct {
	scope    string
	newest   *refreshToken
	lastUsed *refreshToken
}

// accessToken is an issued access token as the Fleet API sees it.
type accessToken struct {
	expiresAt time.Time
	revoked   bool
}

type authCode struct {
	redirectURI string
	scope       string
	expiresAt   time.Time
	challenge   string // PKCE code_challenge (S256), "" when the authorize request sent none
}

// refreshVerdict says how a refresh token would be treated now.
type refreshVerdict int

const (
	verdictRejected refreshVerdict = iota
	verdictNewest
	verdictGrace
)

func (s *Sim) judgeLocked(rt string, now time.Time) refreshVerdict {
	if rt == "" {
		return verdictRejected
	}
	c := &s.chain
	if c.newest != nil && c.newest.value == rt && now.Before(c.newest.issuedAt.Add(s.opts.RefreshTokenTTL)) {
		return verdictNewest
	}
	if lu := c.lastUsed; lu != nil && lu.value == rt &&
		now.Before(lu.usedAt.Add(s.opts.Grace)) && now.Before(lu.issuedAt.Add(s.opts.RefreshTokenTTL)) {
		return verdictGrace
	}
	return verdictRejected
}

// RefreshTokenAccepted reports whether a refresh with rt would succeed right
// now, without doing it.
func (s *Sim) RefreshTokenAccepted(rt string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.judgeLocked(rt, s.now()) != verdictRejected
}

// ChainValid reports whether any candidate would be accepted: the account's
// chain survives as long as someone holds such a token.
func (s *Sim) ChainValid(candidates ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, c := range candidates {
		if s.judgeLocked(c, now) != verdictRejected {
			return true
		}
	}
	return false
}

// NewestRefreshToken is the newest issued refresh token of the chain ("" if
// none), whether or not it is still accepted.
func (s *Sim) NewestRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chain.newest == nil {
		return ""
	}
	return s.chain.newest.value
}

// AccessTokenValid reports whether the Fleet API would accept at now.
func (s *Sim) AccessTokenValid(at string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accessOKLocked(at, s.now())
}

func (s *Sim) accessOKLocked(at string, now time.Time) bool {
	a, ok := s.access[at]
	return ok && !a.revoked && now.Before(a.expiresAt)
}

// Login acts as if a browser login happened now: it starts a new chain
// (every older refresh token is cycled out) and returns its first pair.
func (s *Sim) Login() TokenPair {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, _ := s.newChainLocked(s.baseURL(nil), DefaultScope)
	return p
}

// LoginWithScope is Login where the owner approved only scope (space
// separated): a login without vehicle_location gets cars without position.
func (s *Sim) LoginWithScope(scope string) TokenPair {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, _ := s.newChainLocked(s.baseURL(nil), scope)
	return p
}

// newChainLocked starts a new chain and issues its first pair.
func (s *Sim) newChainLocked(base, scope string) (TokenPair, string) {
	s.chain = chainState{scope: scope}
	return s.issueLocked(base, false)
}

// issueLocked issues a new pair in the current chain; the new refresh token
// becomes the newest, cycling out the previous newest. It returns the pair
// and an id token. rotation says a refresh (not a login) asked for it: only
// then does RevokeAccessOnRotate revoke the access tokens issued before.
func (s *Sim) issueLocked(base string, rotation bool) (TokenPair, string) {
	now := s.now()
	if rotation && s.opts.RevokeAccessOnRotate {
		for k, a := range s.access {
			a.revoked = true
			s.access[k] = a
		}
	}
	exp := now.Add(s.opts.AccessTokenTTL)
	at := s.jwt(base, now, exp, true)
	idt := s.jwt(base, now, exp, false)
	rt := s.opts.Region + "_" + randomHex(32)
	s.chain.newest = &refreshToken{value: rt, issuedAt: now}
	s.pruneAccessLocked(now)
	s.access[at] = accessToken{expiresAt: exp}
	return TokenPair{
		AccessToken:  at,
		RefreshToken: rt,
		ExpiresIn:    int(s.opts.AccessTokenTTL / time.Second),
		ExpiresAt:    exp,
		Scope:        s.chain.scope,
	}, idt
}

// pruneAccessLocked drops expired access tokens now and then, so a simulated
// year does not grow the table without bound. Unknown and expired tokens get
// the same 401, so forgetting them changes nothing.
func (s *Sim) pruneAccessLocked(now time.Time) {
	s.accessOp++
	if s.accessOp < 256 {
		return
	}
	s.accessOp = 0
	for k, a := range s.access {
		if !now.Before(a.expiresAt) {
			delete(s.access, k)
		}
	}
}

// refreshLocked performs a refresh_token grant under Tesla's rules.
func (s *Sim) refreshLocked(base, rt string) (TokenPair, string, string) {
	now := s.now()
	switch s.judgeLocked(rt, now) {
	case verdictNewest:
		used := s.chain.newest
		used.usedAt = now
		s.chain.lastUsed = used
		p, idt := s.issueLocked(base, true)
		return p, idt, OutcomeRefreshOK
	case verdictGrace:
		// The last used token stays the last used one, its grace still
		// counted from its first use; the previous newest is cycled out.
		p, idt := s.issueLocked(base, true)
		return p, idt, OutcomeGraceReuse
	default:
		return TokenPair{}, "", OutcomeLoginRequired
	}
}

// jwt builds a JWT-shaped token with a random signature. Access tokens carry
// the Fleet API claims; id tokens are shaped the same with an OIDC audience.
func (s *Sim) jwt(base string, iat, exp time.Time, access bool) string {
	header := map[string]string{"alg": "RS256", "typ": "JWT", "kid": "fleetsim"}
	claims := map[string]any{
		"iss":     base,
		"sub":     UserID,
		"iat":     iat.Unix(),
		"exp":     exp.Unix(),
		"ou_code": s.opts.Region,
		"jti":     randomHex(16),
	}
	if access {
		claims["aud"] = []string{base, base + "/oauth2/v3/userinfo"}
		claims["scp"] = strings.Fields(s.chain.scope)
		claims["azp"] = s.opts.ClientID
		claims["amr"] = []string{"pwd"}
		claims["auth_time"] = iat.Unix()
	} else {
		claims["aud"] = s.opts.ClientID
	}
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tokenError is the token endpoint's error shape.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
}

// handleToken is POST /oauth2/v3/token.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	outcome, status, body := s.token(r)
	s.counters.tokenExchange(outcome)
	s.log.Debug("token request", zap.String("outcome", outcome), zap.Int("status", status))
	writeJSON(w, status, body)
}

func (s *Sim) token(r *http.Request) (outcome string, status int, body any) {
	bad := func(desc string) (string, int, any) {
		return OutcomeBadRequest, http.StatusBadRequest, tokenError{"invalid_request", desc}
	}
	if r.Method != http.MethodPost {
		return OutcomeBadRequest, http.StatusMethodNotAllowed, tokenError{"invalid_request", "POST only"}
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return bad("malformed form body")
	}
	f := r.PostForm
	grant := f.Get("grant_type")
	if grant == "" {
		return bad("grant_type is required")
	}
	if grant == "client_credentials" {
		return s.partnerGrant(r)
	}
	if grant != "refresh_token" && grant != "authorization_code" {
		return bad("unsupported grant_type")
	}
	if f.Get("client_id") != s.opts.ClientID {
		return OutcomeInvalidClient, http.StatusUnauthorized, tokenError{"invalid_client", "unknown client_id"}
	}
	_, secretSent := f["client_secret"]
	if grant == "authorization_code" && !secretSent {
		return OutcomeInvalidClient, http.StatusUnauthorized, tokenError{"invalid_client", "client_secret is required"}
	}
	if secretSent && f.Get("client_secret") != s.opts.ClientSecret {
		return OutcomeInvalidClient, http.StatusUnauthorized, tokenError{"invalid_client", "client authentication failed"}
	}
	if grant == "refresh_token" {
		return s.refreshGrant(r, f)
	}
	return s.codeGrant(r, f)
}

// refreshGrant is grant_type=refresh_token, the client authenticated.
func (s *Sim) refreshGrant(r *http.Request, f url.Values) (string, int, any) {
	rt := f.Get("refresh_token")
	if rt == "" {
		return OutcomeBadRequest, http.StatusBadRequest, tokenError{"invalid_request", "refresh_token is required"}
	}
	s.mu.Lock()
	p, idt, outcome := s.refreshLocked(s.baseURL(r), rt)
	s.mu.Unlock()
	if outcome == OutcomeLoginRequired {
		return outcome, http.StatusUnauthorized, tokenError{"login_required",
			"The refresh token is invalid, expired or was cycled out by a newer one; the user must log in again."}
	}
	return outcome, http.StatusOK, pairResponse(p, idt)
}

// codeGrant is grant_type=authorization_code, the client authenticated.
func (s *Sim) codeGrant(r *http.Request, f url.Values) (string, int, any) {
	code := f.Get("code")
	if code == "" {
		return OutcomeBadRequest, http.StatusBadRequest, tokenError{"invalid_request", "code is required"}
	}
	base := s.baseURL(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ac, ok := s.codes[code]
	switch {
	case !ok || !now.Before(ac.expiresAt):
		delete(s.codes, code)
		return OutcomeInvalidAuthCode, http.StatusBadRequest, tokenError{"invalid_auth_code", "the authorization code is invalid, used or expired"}
	case f.Get("redirect_uri") != ac.redirectURI:
		// The code is left usable: a client that got the URI wrong may retry.
		return OutcomeInvalidAuthCode, http.StatusBadRequest, tokenError{"invalid_auth_code", "redirect_uri does not match the authorize request"}
	case ac.challenge != "" && !pkceMatches(f.Get("code_verifier"), ac.challenge):
		// RFC 7636 §4.6: the code is spent either way, so a stolen code
		// without its verifier is worth nothing.
		delete(s.codes, code)
		return OutcomeInvalidAuthCode, http.StatusBadRequest, tokenError{"invalid_grant", "code_verifier does not match the code_challenge"}
	}
	delete(s.codes, code)
	p, idt := s.newChainLocked(base, ac.scope)
	return OutcomeAuthCodeOK, http.StatusOK, pairResponse(p, idt)
}

// pkceMatches checks BASE64URL(SHA256(verifier)) == challenge (RFC 7636 §4.6).
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func pairResponse(p TokenPair, idt string) tokenResponse {
	return tokenResponse{
		AccessToken:  p.AccessToken,
		RefreshToken: p.RefreshToken,
		IDToken:      idt,
		TokenType:    "Bearer",
		ExpiresIn:    p.ExpiresIn,
		Scope:        p.Scope,
	}
}

// handleAuthorize is GET /oauth2/v3/authorize: the "user" approves at once.
func (s *Sim) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, tokenError{"invalid_request", "GET only"})
		return
	}
	q := r.URL.Query()
	if q.Get("client_id") != s.opts.ClientID {
		writeJSON(w, http.StatusBadRequest, tokenError{"invalid_client", "unknown client_id"})
		return
	}
	redirect := q.Get("redirect_uri")
	target, err := url.Parse(redirect)
	if redirect == "" || err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" ||
		(len(s.opts.RedirectURIs) > 0 && !slices.Contains(s.opts.RedirectURIs, redirect)) {
		writeJSON(w, http.StatusBadRequest, tokenError{"invalid_request", "redirect_uri is missing or not allowed"})
		return
	}
	if rt := q.Get("response_type"); rt != "" && rt != "code" {
		writeJSON(w, http.StatusBadRequest, tokenError{"unsupported_response_type", "only response_type=code"})
		return
	}
	scope := strings.Join(strings.Fields(q.Get("scope")), " ")
	if scope == "" {
		scope = DefaultScope
	}
	// PKCE (RFC 7636 §4.3): only S256; a challenge binds the code to the
	// verifier the token request must bring.
	challenge := q.Get("code_challenge")
	if challenge != "" && q.Get("code_challenge_method") != "S256" {
		writeJSON(w, http.StatusBadRequest, tokenError{"invalid_request", "code_challenge_method must be S256"})
		return
	}
	code := s.opts.Region + "_" + randomHex(24)
	s.mu.Lock()
	now := s.now()
	for k, c := range s.codes { // forget expired codes
		if !now.Before(c.expiresAt) {
			delete(s.codes, k)
		}
	}
	s.codes[code] = authCode{redirectURI: redirect, scope: scope, expiresAt: now.Add(authCodeTTL), challenge: challenge}
	s.mu.Unlock()

	v := target.Query()
	v.Set("code", code)
	if st := q.Get("state"); st != "" {
		v.Set("state", st)
	}
	v.Set("issuer", s.baseURL(r)+"/oauth2/v3")
	target.RawQuery = v.Encode()
	w.Header().Set("Location", target.String())
	w.WriteHeader(http.StatusFound)
}
