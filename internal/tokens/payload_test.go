package tokens

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const wildRefresh = "EU_3f1c0a9d2b7e4c5f8a6b1d0e9c8f7a6b5d4c3b2a1f0e9d8c"

func TestParsePairReadsWhatThePythonSystemWrote(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file    string
		wantErr error
		expiry  time.Time // zero: expired/unknown
	}{
		{"python-isoformat.json", nil, time.Date(2026, 7, 21, 18, 0, 0, 123456000, time.UTC)},
		{"python-naive-local.json", nil, time.Date(2026, 7, 21, 20, 0, 0, 123456000, time.UTC)},
		{"zulu.json", nil, time.Date(2026, 7, 21, 18, 0, 0, 0, time.UTC)},
		{"no-expiry.json", nil, time.Time{}},
		{"extra-fields.json", nil, time.Date(2026, 7, 21, 18, 0, 0, 123456000, time.UTC)},
		{"truncated.json", ErrCorrupt, time.Time{}},
		{"empty.json", ErrCorrupt, time.Time{}},
		{"empty-tokens.json", ErrUnusable, time.Time{}},
		{"bad-timestamp.json", ErrCorrupt, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "fleet-tokens", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParsePair(data)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), wildRefresh) || strings.Contains(err.Error(), "eyJ") {
					t.Fatalf("error quotes a token: %v", err)
				}
				if p.FreshAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 0) {
					t.Fatal("an unreadable payload must never count as valid")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePair: %v", err)
			}
			if p.RefreshToken != wildRefresh || !p.Usable() {
				t.Errorf("tokens not read: %v", p)
			}
			if !p.ExpiresAt.Equal(tc.expiry) {
				t.Errorf("expires_at = %v, want %v", p.ExpiresAt, tc.expiry)
			}
			if tc.expiry.IsZero() && p.FreshAt(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), 0) {
				t.Error("a pair without expiry must be treated as expired")
			}
		})
	}
}

func TestMarshalRoundTripsInRFC3339UTC(t *testing.T) {
	t.Parallel()
	warsaw := time.FixedZone("CEST", 2*3600)
	p := Pair{AccessToken: "a.b.c", RefreshToken: "EU_x", ExpiresAt: time.Date(2026, 7, 21, 20, 0, 0, 5, warsaw),
		RefreshTokenCreatedAt: time.Date(2026, 7, 21, 12, 0, 0, 0, time.UTC), Source: "refresh", Scope: "openid"}
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{`"access_token":"a.b.c"`, `"refresh_token":"EU_x"`, `"expires_at":"2026-07-21T18:00:00.000000005Z"`, `"refresh_token_created_at":"2026-07-21T12:00:00Z"`, `"source":"refresh"`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s missing %s", s, want)
		}
	}
	back, err := ParsePair(data)
	if err != nil || !back.SameTokens(p) || back.Source != "refresh" || back.Scope != "openid" {
		t.Errorf("round trip = %v, %v", back, err)
	}
}

func TestPairNeverPrintsTokens(t *testing.T) {
	t.Parallel()
	p := Pair{AccessToken: "eyJsecret", RefreshToken: "EU_secret"}
	for _, s := range []string{p.String(), p.GoString()} {
		if strings.Contains(s, "secret") {
			t.Errorf("printed pair shows a token: %s", s)
		}
	}
}

func TestParseClaims(t *testing.T) {
	t.Parallel()
	// {"sub":"u-1","scp":["openid","vehicle_device_data"],"aud":["https://fleet-api.prd.eu.vn.cloud.tesla.com"],"ou_code":"EU","exp":1784656800}
	tok := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEiLCJzY3AiOlsib3BlbmlkIiwidmVoaWNsZV9kZXZpY2VfZGF0YSJdLCJhdWQiOlsiaHR0cHM6Ly9mbGVldC1hcGkucHJkLmV1LnZuLmNsb3VkLnRlc2xhLmNvbSJdLCJvdV9jb2RlIjoiRVUiLCJleHAiOjE3ODQ2NTY4MDB9.c2ln"
	c, err := ParseClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "u-1" || c.Region != "EU" || len(c.Scopes) != 2 || c.ExpiresAt.Unix() != 1784656800 || c.Audience[0] != "https://fleet-api.prd.eu.vn.cloud.tesla.com" {
		t.Errorf("claims = %+v", c)
	}
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a.bm90anNvbg.c"} {
		if _, err := ParseClaims(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ParseClaims(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func FuzzParsePair(f *testing.F) {
	entries, _ := os.ReadDir(filepath.Join("testdata", "fleet-tokens"))
	for _, e := range entries {
		if data, err := os.ReadFile(filepath.Join("testdata", "fleet-tokens", e.Name())); err == nil && strings.HasSuffix(e.Name(), ".json") {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"access_token":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePair(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnusable) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !p.Usable() {
			t.Fatal("a parsed pair without both tokens must be an error")
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParsePair(out)
		if err != nil || !back.SameTokens(p) {
			t.Fatalf("re-encoded pair does not round-trip: %v", err)
		}
	})
}
