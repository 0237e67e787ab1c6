// Package httpclient builds the HTTP clients every outbound call uses (the
// token endpoint, the Fleet API, the worker, the planner, Google's keys):
// clients that never follow a redirect, so a credential (an Authorization
// header, an X-API-Key, a client secret or refresh token in a form body,
// which Go re-sends on 307 and 308) reaches only the host it was meant for.
//
// A redirect comes back as an error of kind ErrRedirect (a *RedirectError
// inside the client's *url.Error), so each caller maps it to its own kind;
// the request to the Location is never sent.
package httpclient

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrRedirect is the kind of every redirect the clients refuse to follow.
var ErrRedirect = errors.New("redirect not followed (credentials are never sent on a redirect)")

// RedirectError is a 3xx answer that was not followed.
type RedirectError struct {
	Status int    // 301, 302, 303, 307, 308
	From   string // host that answered
	To     string // host the Location names ("" if none or relative to From)
}

// Error names the hosts, never the Location's path or query (which could
// carry anything the redirecting server chose).
func (e *RedirectError) Error() string {
	to := e.To
	if to == "" {
		to = e.From
	}
	return fmt.Sprintf("%s answered HTTP %d to %s: %s", e.From, e.Status, to, ErrRedirect.Error())
}

// Is makes errors.Is(err, ErrRedirect) hold.
func (e *RedirectError) Is(target error) bool { return target == ErrRedirect }

// refuse is the CheckRedirect of every client built here.
func refuse(req *http.Request, via []*http.Request) error {
	re := &RedirectError{}
	if req.Response != nil {
		re.Status = req.Response.StatusCode
	}
	if len(via) > 0 && via[len(via)-1].URL != nil {
		re.From = via[len(via)-1].URL.Host
	}
	if req.URL != nil {
		re.To = req.URL.Host
	}
	return re
}

// New returns a client with the timeout that follows no redirect.
func New(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, CheckRedirect: refuse}
}

// NoRedirects returns a copy of c (a new client if c is nil) that follows no
// redirect; its transport, jar and timeout are c's. Constructors of outbound
// clients pass whatever client they are given through it, so a caller's
// client cannot bring redirects back.
func NoRedirects(c *http.Client) *http.Client {
	if c == nil {
		return New(0)
	}
	cp := *c
	cp.CheckRedirect = refuse
	return &cp
}

// CheckURL requires an absolute https URL, or an http URL whose host is a
// loopback address (127.0.0.0/8, ::1, localhost): credentials and tokens
// never travel in clear text off this machine.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials in the URL; put none there", redact(u))
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return fmt.Errorf("%q must use https (http only for 127.0.0.1, ::1 or localhost)", raw)
	}
	return nil
}

// IsLoopback reports whether host (no port) names this machine.
func IsLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func redact(u *url.URL) string {
	cp := *u
	cp.User = nil
	return cp.String()
}
