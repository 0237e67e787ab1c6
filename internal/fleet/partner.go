package fleet

// The partner side of the Fleet API: a partner token from the
// client-credentials grant, the registration of the app's domain
// (POST /api/1/partner_accounts) and the key Tesla holds for it
// (GET /api/1/partner_accounts/public_key), plus the app's public key as
// its domain serves it. Facts: reference/vehicle-commands.md §4 steps 3–6
// and §5; what no source settles is marked UNCONFIRMED.

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// Tesla's regional Fleet API base URLs (tesla-fleet-api.md "Regions").
const (
	RegionNA = "https://fleet-api.prd.na.vn.cloud.tesla.com" // North America, Asia-Pacific (not China)
	RegionEU = "https://fleet-api.prd.eu.vn.cloud.tesla.com" // Europe, Middle East, Africa
	RegionCN = "https://fleet-api.prd.cn.vn.cloud.tesla.cn"  // China (a separate developer account)
)

// PublicKeyPath is where the app's domain serves its public key, for Tesla
// at registration and for the owner's phone at pairing (vehicle-commands.md §4 step 3).
const PublicKeyPath = "/.well-known/appspecific/com.tesla.3p.public-key.pem"

// PartnerScopes are the scopes a partner token asks for (vehicle-commands.md
// §4 step 4; evcc vehicle/tesla/partner.go asks for the same).
var PartnerScopes = []string{"openid", "vehicle_device_data", "vehicle_cmds", "vehicle_charging_cmds"}

// Kinds of partner failures, tested with errors.Is; their text reaches operators.
var (
	// ErrPartnerClient: the token endpoint rejected the app's client id or
	// secret (401 invalid_client).
	ErrPartnerClient = errors.New("the token endpoint rejected the app's client id or client secret (invalid_client)")
	// ErrPartnerGrant: the token endpoint refused the client-credentials
	// grant for another reason: invalid_audience (WattSnatch/wattsnatch
	// issue 6), invalid_scope, unauthorized_client (the app lacks the
	// "Authorization Code and Machine-to-Machine" grant type, §4 step 1).
	ErrPartnerGrant = errors.New("the token endpoint refused a partner token (client_credentials)")
	// ErrInvalidDomain: 400 "Invalid domain: …": the domain must be a bare
	// lowercase host, no scheme or path (vehicle-command issue 6).
	ErrInvalidDomain = errors.New("the domain is not valid for Tesla (400 Invalid domain)")
	// ErrAlreadyTaken: "Validation failed: Public key hash has already been
	// taken" or "… Domain has already been taken": the key or the domain
	// belongs to another app (evcc vehicle/tesla/partner.go). Seen also when
	// an app registered the same key again (vehicle-command issue 17), so
	// check PartnerPublicKey before believing it.
	ErrAlreadyTaken = errors.New("the key or domain is already registered")
	// ErrKeyDownload: Tesla could not fetch a usable key from the domain
	// (424 "Public key download failed for <url>, error: …",
	// WattSnatch/wattsnatch issue 19).
	ErrKeyDownload = errors.New("the public key could not be downloaded from the domain (424)")
	// ErrAccountDisabled: 403 "account disabled: EXCEEDED_LIMIT": the
	// developer account is over its billing limit or has no payment method
	// (vehicle-command issue 403; billing-and-limits). The exact body for
	// "no payment method" is UNCONFIRMED: any 403 whose text says "account
	// disabled" counts.
	ErrAccountDisabled = errors.New("the developer account is disabled (403 account disabled)")
	// ErrNotRegistered: the app has no registration of the domain in this
	// region ("This account does not have access to <domain>",
	// WattSnatch/wattsnatch issue 17).
	ErrNotRegistered = errors.New("the app has not registered this domain in this region")
	// ErrPartnerTokenRequired: a partner endpoint got a user token
	// ("Expected partner account", vehicle-command issue 166).
	ErrPartnerTokenRequired = errors.New("the endpoint needs a partner token (Expected partner account)")
	// ErrPublicKeyInvalid: a public key that is not a P-256 point.
	ErrPublicKeyInvalid = errors.New("not a P-256 (prime256v1) public key")
	// ErrKeyNotServed: the domain does not serve the public key as Tesla
	// needs it: 200, no redirect, a PEM "PUBLIC KEY" on P-256.
	ErrKeyNotServed = errors.New("the public key is not served as Tesla needs it")
)

// PartnerAuth gets partner tokens: grant_type=client_credentials with the
// app's client id and secret, an audience (a regional Fleet API base URL)
// and scopes (vehicle-commands.md §4 step 4).
type PartnerAuth struct {
	TokenURL     string // Tesla's token endpoint (the fleet-auth host)
	ClientID     string
	ClientSecret string
	Scopes       []string     // default PartnerScopes
	HTTPClient   *http.Client // default httpclient.New(20 s): no redirects followed
}

// PartnerToken is an issued partner token. It serves as a TokenSource, so
// New(region, tok) gives a client for the partner endpoints. Never log it.
type PartnerToken struct {
	Token     string
	ExpiresIn time.Duration // 0 if Tesla sent none
}

// AccessToken hands the partner token to the client.
func (t PartnerToken) AccessToken(context.Context) (string, error) { return t.Token, nil }

// String never shows the token.
func (t PartnerToken) String() string { return "fleet.PartnerToken([redacted])" }

// GoString keeps %#v from printing the token.
func (t PartnerToken) GoString() string { return t.String() }

// Token asks for a partner token for audience. Errors never carry the
// secret or a token: only the status and Tesla's error code and
// description.
func (a PartnerAuth) Token(ctx context.Context, audience string) (PartnerToken, error) {
	if a.TokenURL == "" || a.ClientID == "" || a.ClientSecret == "" || audience == "" {
		return PartnerToken{}, fmt.Errorf("fleet: partner token: token URL, client id, client secret and audience are required: %w", ErrInvalidRequest)
	}
	scopes := a.Scopes
	if len(scopes) == 0 {
		scopes = PartnerScopes
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {a.ClientID},
		"client_secret": {a.ClientSecret},
		"audience":      {strings.TrimRight(audience, "/")},
		"scope":         {strings.Join(scopes, " ")},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return PartnerToken{}, fmt.Errorf("fleet: partner token: %v: %w", err, ErrInvalidRequest)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	hc := a.HTTPClient
	if hc == nil {
		hc = httpclient.New(20 * time.Second)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return PartnerToken{}, fmt.Errorf("fleet: partner token: %w", ctxErr)
		}
		return PartnerToken{}, &TransportError{Endpoint: "POST token (client_credentials)", Err: redactURLError(err)}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	decodeErr := json.Unmarshal(data, &body)
	if resp.StatusCode != http.StatusOK {
		what := fmt.Sprintf("HTTP %d", resp.StatusCode)
		if body.Error != "" {
			what += " " + body.Error
		}
		if d := strings.TrimSpace(body.Description); d != "" {
			what += ": " + excerpt(d, a.ClientSecret)
		}
		switch {
		case body.Error == "invalid_client" || resp.StatusCode == http.StatusUnauthorized:
			return PartnerToken{}, fmt.Errorf("fleet: partner token: %w: %s", ErrPartnerClient, what)
		case resp.StatusCode >= 500:
			return PartnerToken{}, fmt.Errorf("fleet: partner token: %w: %s", ErrUpstream, what)
		default:
			return PartnerToken{}, fmt.Errorf("fleet: partner token: %w: %s", ErrPartnerGrant, what)
		}
	}
	if decodeErr != nil || body.AccessToken == "" {
		return PartnerToken{}, fmt.Errorf("fleet: partner token: %w: no access_token in the answer", ErrMalformed)
	}
	return PartnerToken{Token: body.AccessToken, ExpiresIn: time.Duration(body.ExpiresIn) * time.Second}, nil
}

// redactURLError keeps a transport error's operation and cause but drops
// its URL's query (the token URL carries none; this is belt and braces).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery, u.User = "", nil
			return fmt.Errorf("%s %s: %w", ue.Op, u.String(), ue.Err)
		}
	}
	return err
}

// PartnerAccount is what POST /api/1/partner_accounts answers (the fields
// this project reads; the whole shape is UNCONFIRMED, see the simulator).
type PartnerAccount struct {
	ClientID  string
	Domain    string
	PublicKey []byte // the 65-byte point, nil if the answer had none that decodes
}

// RegisterPartner registers domain for the app of the client's partner
// token in the client's region: Tesla fetches the key from
// https://<domain>/.well-known/appspecific/com.tesla.3p.public-key.pem
// now. Repeating it is harmless (evcc). Errors: ErrInvalidDomain,
// ErrKeyDownload, ErrAlreadyTaken, ErrAccountDisabled, ErrUnauthorized,
// ErrPartnerTokenRequired, ErrWrongRegion, and the other kinds of errors.go.
func (c *Client) RegisterPartner(ctx context.Context, domain string) (PartnerAccount, error) {
	if domain == "" {
		return PartnerAccount{}, fmt.Errorf("fleet: register partner: empty domain: %w", ErrInvalidRequest)
	}
	r := request{method: http.MethodPost, base: c.baseURL, path: "/api/1/partner_accounts",
		body: struct {
			Domain string `json:"domain"`
		}{domain}}
	rep, err := c.do(ctx, r)
	if err != nil {
		return PartnerAccount{}, partnerError(err)
	}
	raw, problem := decodeResponse(rep.body, '{')
	if problem != "" {
		return PartnerAccount{}, malformed(rep.status, r.endpoint(), problem)
	}
	var body struct {
		ClientID  jString `json:"client_id"`
		Domain    jString `json:"domain"`
		PublicKey jString `json:"public_key"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return PartnerAccount{}, malformed(rep.status, r.endpoint(), err.Error())
	}
	out := PartnerAccount{ClientID: body.ClientID.v, Domain: body.Domain.v}
	if k, err := DecodePublicKey(body.PublicKey.v); err == nil {
		out.PublicKey = k
	}
	return out, nil
}

// PartnerPublicKey is the key Tesla holds for domain in the client's region
// (GET /api/1/partner_accounts/public_key?domain=…, partner token) as a
// 65-byte point. ErrNotRegistered when the app has not registered it here.
func (c *Client) PartnerPublicKey(ctx context.Context, domain string) ([]byte, error) {
	if domain == "" {
		return nil, fmt.Errorf("fleet: partner public key: empty domain: %w", ErrInvalidRequest)
	}
	r := request{method: http.MethodGet, base: c.baseURL, path: "/api/1/partner_accounts/public_key",
		rawQuery: "domain=" + url.QueryEscape(domain)}
	rep, err := c.do(ctx, r)
	if err != nil {
		err = partnerError(err)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			apiErr.kind = ErrNotRegistered
		}
		return nil, err
	}
	raw, problem := decodeResponse(rep.body, '{')
	if problem != "" {
		return nil, malformed(rep.status, r.endpoint(), problem)
	}
	var body struct {
		PublicKey jString `json:"public_key"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, malformed(rep.status, r.endpoint(), err.Error())
	}
	key, err := DecodePublicKey(body.PublicKey.v)
	if err != nil {
		return nil, malformed(rep.status, r.endpoint(), "public_key: "+err.Error())
	}
	return key, nil
}

// partnerError gives an APIError from a partner endpoint the kind its
// text names; other errors pass unchanged.
func partnerError(err error) error {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	msg := strings.ToLower(apiErr.Message)
	switch {
	case strings.Contains(msg, "invalid domain"):
		apiErr.kind = ErrInvalidDomain
	case strings.Contains(msg, "already been taken"):
		apiErr.kind = ErrAlreadyTaken
	case apiErr.Status == http.StatusFailedDependency || strings.Contains(msg, "public key download failed"):
		apiErr.kind = ErrKeyDownload
	case apiErr.Status == http.StatusForbidden && strings.Contains(msg, "account disabled"):
		apiErr.kind = ErrAccountDisabled
	case apiErr.Status == http.StatusForbidden && strings.Contains(msg, "expected partner account"):
		apiErr.kind = ErrPartnerTokenRequired
	case strings.Contains(msg, "does not have access"):
		apiErr.kind = ErrNotRegistered
	}
	return err
}

// AccountDisabled reports whether err is Tesla's 403 "account disabled"
// (see ErrAccountDisabled) from any endpoint, partner or not.
func AccountDisabled(err error) bool {
	if errors.Is(err, ErrAccountDisabled) {
		return true
	}
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden &&
		strings.Contains(strings.ToLower(apiErr.Message), "account disabled")
}

// DecodePublicKey reads a P-256 public key as Tesla and this project write
// it: hex of the 65-byte uncompressed point (what partner_accounts
// answers; UNCONFIRMED whether always), a PEM "PUBLIC KEY" block, or
// base64 of the point. It returns the 65-byte point.
func DecodePublicKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrPublicKeyInvalid)
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		return ParsePublicKeyPEM([]byte(s))
	}
	var point []byte
	if b, err := hex.DecodeString(s); err == nil {
		point = b
	} else if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		point = b
	} else if b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "=")); err == nil {
		point = b
	}
	if len(point) != 65 {
		// A DER SubjectPublicKeyInfo in hex or base64 is accepted too.
		if k, err := x509.ParsePKIXPublicKey(point); err == nil {
			return pointOf(k)
		}
		return nil, fmt.Errorf("%w: want the 65-byte point 04‖X‖Y in hex", ErrPublicKeyInvalid)
	}
	pub, err := ecdh.P256().NewPublicKey(point)
	if err != nil {
		return nil, fmt.Errorf("%w: not a point on P-256", ErrPublicKeyInvalid)
	}
	return pub.Bytes(), nil
}

// ParsePublicKeyPEM reads a PEM "PUBLIC KEY" (PKIX) on P-256, as openssl
// ec -pubout and carcmd.PrivateKey.PublicPEM write it, and returns the
// 65-byte point.
func ParsePublicKeyPEM(data []byte) ([]byte, error) {
	block, _ := pem.Decode(bytes.TrimSpace(data))
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrPublicKeyInvalid)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: PEM block %q, want \"PUBLIC KEY\"", ErrPublicKeyInvalid, block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: the PEM block does not parse", ErrPublicKeyInvalid)
	}
	return pointOf(k)
}

func pointOf(k any) ([]byte, error) {
	var ek *ecdh.PublicKey
	switch v := k.(type) {
	case *ecdsa.PublicKey:
		e, err := v.ECDH()
		if err != nil {
			return nil, fmt.Errorf("%w: unusable EC key", ErrPublicKeyInvalid)
		}
		ek = e
	case *ecdh.PublicKey:
		ek = v
	default:
		return nil, fmt.Errorf("%w: %T is not an EC key", ErrPublicKeyInvalid, k)
	}
	if ek.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: another curve (cars take prime256v1 only)", ErrPublicKeyInvalid)
	}
	return ek.Bytes(), nil
}

// hostPattern is a bare lowercase host name with at least one dot.
var hostPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateDomain checks that domain is what partner_accounts takes: a bare
// lowercase host such as app.example.com, with no scheme, port, path or
// trailing dot (vehicle-commands.md §4 step 5; vehicle-command issue 6).
// The error says what to give instead.
func ValidateDomain(domain string) error {
	if domain == "" {
		return fmt.Errorf("%w: empty; give the bare host of the app's Allowed Origin, e.g. app.example.com", ErrInvalidDomain)
	}
	if strings.Contains(domain, "://") || strings.ContainsAny(domain, "/?#@:") {
		host, raw := domain, domain
		if !strings.Contains(raw, "://") {
			raw = "//" + raw
		}
		if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		return fmt.Errorf("%w: %q is not a bare host; give %q (no scheme, port or path)", ErrInvalidDomain, domain, strings.ToLower(host))
	}
	if domain != strings.ToLower(domain) {
		return fmt.Errorf("%w: %q has upper-case letters; give %q", ErrInvalidDomain, domain, strings.ToLower(domain))
	}
	if len(domain) > 253 || !hostPattern.MatchString(domain) {
		return fmt.Errorf("%w: %q is not a host name such as app.example.com", ErrInvalidDomain, domain)
	}
	return nil
}

// maxServedKeyBytes bounds the served key read; a P-256 PEM is 178 bytes
// and Tesla refuses a key file it finds "too large" (WattSnatch issue 19).
const maxServedKeyBytes = 1024

// FetchPublicKey GETs baseURL + PublicKeyPath (baseURL is
// https://<domain>, or a test server) the way Tesla and the phone do: it
// must answer 200, without a redirect, with a PEM "PUBLIC KEY" on P-256
// (vehicle-commands.md §4 step 3). It returns the 65-byte point;
// failures are ErrKeyNotServed (or a transport error) and say why.
func FetchPublicKey(ctx context.Context, hc *http.Client, baseURL string) ([]byte, error) {
	target := strings.TrimRight(baseURL, "/") + PublicKeyPath
	client := &http.Client{Timeout: 15 * time.Second}
	if hc != nil {
		cp := *hc
		client = &cp
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %v: %w", target, err, ErrInvalidRequest)
	}
	req.Header.Set("User-Agent", DefaultUserAgent)
	resp, err := client.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("fetch %s: %w", target, ctxErr)
		}
		return nil, &TransportError{Endpoint: "GET " + target, Err: err}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("%w: %s answers a redirect (HTTP %d to %q); Tesla follows none: serve the file itself",
			ErrKeyNotServed, target, resp.StatusCode, resp.Header.Get("Location"))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s answers HTTP %d, not 200", ErrKeyNotServed, target, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxServedKeyBytes+1))
	if err != nil {
		return nil, &TransportError{Endpoint: "GET " + target, Err: err}
	}
	if len(data) > maxServedKeyBytes {
		return nil, fmt.Errorf("%w: %s is over %d bytes; it must hold only the PEM public key", ErrKeyNotServed, target, maxServedKeyBytes)
	}
	point, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyNotServed, target, err)
	}
	return point, nil
}
