package fleetctl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "show the token pair's expiry, scopes, region, versions and the legacy secret",
		help: `Reads fleet-tokens and shows: the access token's expiry and time left, the
scopes, region (ou_code) and subject from its JWT claims, who wrote it, the
stored versions and their ages, and whether the legacy secret exists. It
changes nothing and never prints a token. Exit code 1 if no usable pair is
stored.`,
		run: runStatus,
	}
}

// claimsView is what the access token's (unverified) JWT claims say.
type claimsView struct {
	Scopes   []string
	Region   string
	Subject  string
	Audience []string
}

// viewPair reads a pair's claims; the scope field of the pair stands in for
// claims that are missing.
func viewPair(p tokens.Pair) claimsView {
	var v claimsView
	if c, err := tokens.ParseClaims(p.AccessToken); err == nil {
		v = claimsView{Scopes: c.Scopes, Region: c.Region, Subject: c.Subject, Audience: c.Audience}
	}
	if len(v.Scopes) == 0 {
		v.Scopes = strings.Fields(p.Scope)
	}
	return v
}

type versionReport struct {
	ID         string     `json:"id"`
	Created    *time.Time `json:"created,omitempty"`
	AgeSeconds *int64     `json:"age_seconds,omitempty"`
	State      string     `json:"state"`
}

type legacyReport struct {
	Secret  string `json:"secret"`
	Present bool   `json:"present"`
	// Adopted: the legacy token is stored in, or was spent for, a version.
	Adopted *bool  `json:"adopted,omitempty"`
	Error   string `json:"error,omitempty"`
}

type statusReport struct {
	OK                    bool            `json:"ok"`
	Secret                string          `json:"secret"`
	State                 string          `json:"state"`
	Version               string          `json:"version,omitempty"`
	Problem               string          `json:"problem,omitempty"`
	ExpiresAt             *time.Time      `json:"expires_at,omitempty"`
	ExpiresInSeconds      *int64          `json:"expires_in_seconds,omitempty"`
	Source                string          `json:"source,omitempty"`
	UpdatedAt             *time.Time      `json:"updated_at,omitempty"`
	RefreshTokenCreatedAt *time.Time      `json:"refresh_token_created_at,omitempty"`
	Scopes                []string        `json:"scopes,omitempty"`
	MissingScopes         []string        `json:"missing_scopes,omitempty"`
	Region                string          `json:"region,omitempty"`
	Subject               string          `json:"subject,omitempty"`
	Versions              []versionReport `json:"versions"`
	VersionsError         string          `json:"versions_error,omitempty"`
	Legacy                legacyReport    `json:"legacy"`
}

func runStatus(ctx context.Context, s *session, _ any) error {
	store, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	m := s.manager(store, s.managerConfig())
	mcfg := m.Config()
	st, err := m.Check(ctx)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	rep := statusReport{Secret: mcfg.FleetSecret, State: string(st.State), Version: st.Version, Versions: []versionReport{}}
	pair, ok := m.Current()
	usable := ok && st.State != tokens.StateMissing && pair.Usable()
	if usable {
		rep.OK = true
		cv := viewPair(pair)
		rep.ExpiresAt, rep.ExpiresInSeconds = timePtr(pair.ExpiresAt), secondsUntil(pair.ExpiresAt, now)
		rep.Source, rep.UpdatedAt, rep.RefreshTokenCreatedAt = pair.Source, timePtr(pair.UpdatedAt), timePtr(pair.RefreshTokenCreatedAt)
		rep.Scopes, rep.MissingScopes = cv.Scopes, missingScopes(tokens.Scopes, cv.Scopes)
		rep.Region, rep.Subject = cv.Region, cv.Subject
	} else {
		rep.Problem = explainLatest(ctx, store, mcfg.FleetSecret)
	}

	versions, verr := store.Versions(ctx, mcfg.FleetSecret)
	switch {
	case verr == nil:
		for _, v := range versions {
			rep.Versions = append(rep.Versions, versionReport{ID: v.ID, Created: timePtr(v.Created), AgeSeconds: ageSeconds(v.Created, now), State: string(v.State)})
		}
	case !errors.Is(verr, secrets.ErrNotFound):
		rep.VersionsError = verr.Error()
	}
	rep.Legacy = legacyStatus(ctx, store, mcfg, versions, pair)

	if s.json {
		s.printJSON(rep)
	} else {
		printStatus(s, rep, now)
	}
	if !usable {
		return fmt.Errorf("no usable token pair in %s: %s (fleetctl migrate recovers from older versions or the legacy secret; otherwise fleetctl login)", mcfg.FleetSecret, rep.Problem)
	}
	return nil
}

func ageSeconds(created, now time.Time) *int64 {
	if created.IsZero() {
		return nil
	}
	n := int64(now.Sub(created) / time.Second)
	return &n
}

// explainLatest says why the newest version is not a usable pair. Parse
// errors never quote the payload.
func explainLatest(ctx context.Context, store secrets.Store, secret string) string {
	v, err := store.Latest(ctx, secret)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return "the secret has no version (never logged in?)"
	case errors.Is(err, secrets.ErrVersionUnavailable):
		return "the latest version is destroyed or disabled"
	case err != nil:
		return err.Error()
	}
	if _, err := tokens.ParsePair(v.Payload); err != nil {
		return fmt.Sprintf("version %s: %v", v.ID, err)
	}
	return "unreadable"
}

// legacyStatus says whether the legacy secret exists and whether its token
// was already adopted (stored in, or spent for, one of the recent versions),
// which is what tells an operator whether `fleetctl migrate` has work to do.
func legacyStatus(ctx context.Context, store secrets.Store, mcfg tokens.Config, versions []secrets.VersionInfo, current tokens.Pair) legacyReport {
	rep := legacyReport{Secret: mcfg.LegacySecret}
	lv, err := store.Latest(ctx, mcfg.LegacySecret)
	if errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrVersionUnavailable) {
		return rep
	}
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	token := strings.TrimSpace(string(lv.Payload))
	rep.Present = token != ""
	if !rep.Present {
		return rep
	}
	hash := tokens.HashToken(token)
	adopted := current.RefreshToken == token || current.SpentRefreshHash == hash || slices.Contains(current.AdoptedLegacy, hash)
	for i, v := range versions {
		if adopted || i >= mcfg.MaxRecoveryTries {
			break
		}
		sv, err := store.Get(ctx, mcfg.FleetSecret, v.ID)
		if err != nil {
			continue
		}
		p, _ := tokens.ParsePair(sv.Payload)
		adopted = p.RefreshToken == token || p.SpentRefreshHash == hash || slices.Contains(p.AdoptedLegacy, hash)
	}
	rep.Adopted = &adopted
	return rep
}

func printStatus(s *session, rep statusReport, now time.Time) {
	if rep.OK {
		written := ""
		if rep.Source != "" {
			written = ", written by " + rep.Source
		}
		if rep.UpdatedAt != nil {
			written += " " + relative(*rep.UpdatedAt, now)
		}
		s.printf("%s: %s (version %s%s)", rep.Secret, rep.State, rep.Version, written)
		if rep.ExpiresAt != nil {
			s.printf("expires %s (%s)", stamp(*rep.ExpiresAt), relative(*rep.ExpiresAt, now))
		} else {
			s.printf("expires: unknown (treated as expired)")
		}
		s.printf("scopes: %s", joinOr(rep.Scopes, "unknown"))
		if len(rep.MissingScopes) > 0 {
			s.printf("missing scopes: %s (log in again granting them)", strings.Join(rep.MissingScopes, " "))
		}
		s.printf("region: %s", orUnknown(rep.Region))
		s.printf("subject: %s", orUnknown(rep.Subject))
		if rep.RefreshTokenCreatedAt != nil {
			s.printf("refresh token: issued %s", relative(*rep.RefreshTokenCreatedAt, now))
		}
	} else {
		s.printf("%s: %s: %s", rep.Secret, rep.State, rep.Problem)
	}
	switch {
	case rep.VersionsError != "":
		s.printf("versions: unknown (%s)", rep.VersionsError)
	case len(rep.Versions) == 0:
		s.printf("versions: none")
	default:
		const shown = 6
		parts := make([]string, 0, shown)
		for i, v := range rep.Versions {
			if i == shown {
				parts = append(parts, fmt.Sprintf("… %d more", len(rep.Versions)-shown))
				break
			}
			age := "age unknown"
			if v.Created != nil {
				age = humanDuration(now.Sub(*v.Created)) + " old"
				if v.Created.After(now.Add(time.Minute)) {
					age = "dated " + relative(*v.Created, now) + ": clock skew?"
				}
			}
			parts = append(parts, fmt.Sprintf("v%s (%s)", v.ID, age))
		}
		s.printf("versions: %d active: %s", len(rep.Versions), strings.Join(parts, ", "))
	}
	l := rep.Legacy
	switch {
	case l.Error != "":
		s.printf("legacy secret %s: unknown (%s)", l.Secret, l.Error)
	case !l.Present:
		s.printf("legacy secret %s: absent", l.Secret)
	case l.Adopted != nil && *l.Adopted:
		s.printf("legacy secret %s: present (already adopted)", l.Secret)
	default:
		s.printf("legacy secret %s: present (no stored version came from it; fleetctl migrate would try it)", l.Secret)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
