package httpclient_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/httpclient/httpclienttest"
)

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	for _, status := range []int{301, 302, 303, 307, 308} {
		for name, c := range map[string]*http.Client{
			"New":                 httpclient.New(5 * time.Second),
			"NoRedirects(nil)":    httpclient.NoRedirects(nil),
			"NoRedirects(client)": httpclient.NoRedirects(&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}),
		} {
			trap := httpclienttest.NewTrap(t, status)
			req, _ := http.NewRequest("POST", trap.URL+"/oauth2/v3/token?x=1", strings.NewReader("grant_type=refresh_token&refresh_token=rt-secret&client_secret=cs-secret"))
			req.Header.Set("Authorization", "Bearer at-secret")
			req.Header.Set("X-API-Key", "key-secret")
			resp, err := c.Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			var re *httpclient.RedirectError
			if !errors.Is(err, httpclient.ErrRedirect) || !errors.As(err, &re) || re.Status != status {
				t.Errorf("%s, %d: err = %v, want a RedirectError with the status", name, status, err)
			}
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Errorf("%s, %d: %T is not inside a *url.Error", name, status, err)
			}
			if err != nil && (strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "not followed")) {
				t.Errorf("%s, %d: message %q", name, status, err)
			}
			trap.AssertNothingLeaked(t, "rt-secret", "cs-secret", "at-secret", "key-secret")
		}
	}
}

func TestNoRedirectsKeepsTheClientsSettings(t *testing.T) {
	t.Parallel()
	tr := &http.Transport{}
	orig := &http.Client{Timeout: 7 * time.Second, Transport: tr}
	c := httpclient.NoRedirects(orig)
	if c == orig || c.Timeout != 7*time.Second || c.Transport != tr || c.CheckRedirect == nil {
		t.Errorf("NoRedirects = %+v", c)
	}
	if orig.CheckRedirect != nil {
		t.Error("NoRedirects changed the caller's client")
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	ok := []string{"https://fleet-api.prd.eu.vn.cloud.tesla.com", "https://x.a.run.app/", "http://127.0.0.1:8081",
		"http://127.3.4.5/x", "http://[::1]:9/", "http://localhost:8080", "http://LOCALHOST"}
	for _, u := range ok {
		if err := httpclient.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
	bad := []string{"http://fleet-api.prd.eu.vn.cloud.tesla.com", "http://10.0.0.1", "http://localhost.evil.example",
		"http://127.0.0.1.nip.io", "ftp://127.0.0.1", "fleet-auth", "https://", "https://user:pw@example.com"}
	for _, u := range bad {
		err := httpclient.CheckURL(u)
		if err == nil {
			t.Errorf("CheckURL(%q) = nil, want an error", u)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("CheckURL(%q) repeats the URL's password: %v", u, err)
		}
	}
}
