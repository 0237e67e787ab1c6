package fleetctl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

func doctorCommand() *command {
	return &command{
		name:    "doctor",
		summary: "check configuration, secrets, the token and the Fleet API; say what to fix",
		help: `Checks, one line per finding (ok, warn or FAIL, and what to fix), from the
app to the car: configuration; the secret files' modes (file backend: no
group or other access); that each secret is readable (fleet-tokens, client
id, client secret, the command key; the legacy secret is optional); whether
the access token is valid, expiring or expired and has the scopes this
project needs; whether the Fleet API answers GET /api/1/users/region with
the stored token in TESLA_FLEET_API_URL's region (421 otherwise); the app's
domain, the public key it serves against the stored key, and the partner
registration in this region; for each car, whether it needs signed
commands, whether our key is paired, and whether TESLA_COMMAND_MODE fits;
the worker's /health (--worker-url); the Scheduler job (--region, gcp).
It changes nothing: no refresh, no write. --json prints
{"ok":…,"checks":[{"check","level","message","fix"}]}. Exit code 1 if any
check FAILs.`,
		flags: doctorFlags,
		run:   runDoctor,
	}
}

// Finding levels.
const (
	levelOK   = "ok"
	levelWarn = "warn"
	levelFail = "FAIL"
)

type finding struct {
	Check   string `json:"check"`
	Level   string `json:"level"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

type doctor struct {
	s        *session
	findings []finding
}

func (d *doctor) add(level, check, msg, fix string) {
	f := finding{Check: check, Level: level, Message: msg, Fix: fix}
	d.findings = append(d.findings, f)
	if d.s.json {
		return
	}
	line := fmt.Sprintf("%-4s  %s: %s", level, check, msg)
	if fix != "" {
		line += ". Fix: " + fix
	}
	d.s.printf("%s", line)
}

func runDoctor(ctx context.Context, s *session, opts any) error {
	d := &doctor{s: s}
	o, _ := opts.(*doctorOptions)
	if o == nil {
		o = &doctorOptions{schedulerJob: "offpeak-scout-tick", gcloud: "gcloud"}
	}
	d.run(ctx, o)
	failed := false
	for _, f := range d.findings {
		failed = failed || f.Level == levelFail
	}
	if s.json {
		s.printJSON(map[string]any{"ok": !failed, "checks": d.findings})
	}
	if failed {
		return errChecksFailed
	}
	return nil
}

func (d *doctor) run(ctx context.Context, o *doctorOptions) {
	s := d.s
	if len(s.configProblems) > 0 {
		for _, p := range s.configProblems {
			d.add(levelFail, "configuration", p.Error(), "set the variable (or flag) to a valid value")
		}
		d.add(levelWarn, "other checks", "skipped", "fix the configuration first")
		return
	}
	cfg := s.cfg
	where := "file backend in " + cfg.Secrets.Dir
	if cfg.Secrets.Backend == "gcp" {
		where = "Secret Manager in project " + cfg.Secrets.Project
	}
	d.add(levelOK, "configuration", fmt.Sprintf("%s; Fleet API %s; token endpoint %s", where, cfg.TeslaFleetAPIURL, cfg.TeslaAuthURL), "")
	if u, err := url.Parse(cfg.TeslaAuthURL); err == nil && strings.EqualFold(u.Hostname(), "auth.tesla.com") {
		d.add(levelWarn, "configuration", "TESLA_AUTH_URL uses auth.tesla.com, which Tesla asked partners to leave", "set TESLA_AUTH_URL="+tokens.DefaultTokenURL)
	}

	store, err := s.openStore(ctx)
	if err != nil {
		d.add(levelFail, "secret store", err.Error(), d.storeFix())
		return
	}
	mcfg := s.manager(store, s.managerConfig()).Config()

	d.checkFileModes(store)
	d.checkClientSecret(ctx, store, mcfg.ClientIDSecret, true)
	d.checkClientSecret(ctx, store, mcfg.ClientSecretSecret, false)
	pair, ok := d.checkTokens(ctx, store, mcfg)
	d.checkLegacy(ctx, store, mcfg, pair)
	key := d.checkCommandKey(ctx, store)
	if ok {
		d.checkToken(pair, mcfg)
		d.checkFleet(ctx, pair)
	} else {
		d.add(levelWarn, "fleet API", "not checked: no readable token pair", "")
	}
	d.checkDomain(ctx, store, key, o)
	if ok {
		d.checkCars(ctx, pair)
	}
	d.checkWorker(ctx, o)
	d.checkScheduler(ctx, o)
}

func (d *doctor) storeFix() string {
	if d.s.cfg.Secrets.Backend == "gcp" {
		return "check GOOGLE_CLOUD_PROJECT and your credentials (gcloud auth application-default login)"
	}
	return "check SECRETS_DIR: it must be a directory you can write"
}

// secretProblem turns a store error into what went wrong and what to do.
func (d *doctor) secretProblem(name string, err error) (string, string) {
	switch {
	case errors.Is(err, secrets.ErrPermissionDenied):
		return "permission denied", "grant roles/secretmanager.secretAccessor (and secretVersionManager for fleet-tokens) on " + name + " to the account fleetctl runs as"
	case errors.Is(err, secrets.ErrUnavailable):
		return "store unavailable: " + err.Error(), "check the network and credentials, then run doctor again"
	case errors.Is(err, secrets.ErrCorrupt):
		return "the payload failed its checksum", "add a new version with the right value"
	default:
		return err.Error(), d.storeFix()
	}
}

func (d *doctor) createHint(name, what string) string {
	if d.s.cfg.Secrets.Backend == "gcp" {
		return fmt.Sprintf("store %s: printf %%s \"$VALUE\" | gcloud secrets create %s --data-file=- (or versions add)", what, name)
	}
	return fmt.Sprintf("store %s in %s/%s/1 (mode 0600, no trailing newline needed)", what, d.s.cfg.Secrets.Dir, name)
}

func (d *doctor) checkClientSecret(ctx context.Context, store secrets.Store, name string, isID bool) {
	check := "secret " + name
	what := "your Tesla app's client secret"
	if isID {
		what = "your Tesla app's client id"
	}
	v, err := store.Latest(ctx, name)
	switch {
	case errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrVersionUnavailable):
		if isID {
			d.add(levelFail, check, "does not exist", d.createHint(name, what))
		} else {
			d.add(levelWarn, check, "does not exist; refreshes work without it, fleetctl login does not", d.createHint(name, what))
		}
	case err != nil:
		msg, fix := d.secretProblem(name, err)
		d.add(levelFail, check, msg, fix)
	case strings.TrimSpace(string(v.Payload)) == "":
		d.add(levelFail, check, "is empty", d.createHint(name, what))
	default:
		d.add(levelOK, check, "readable (version "+v.ID+")", "")
	}
}

// checkTokens reads fleet-tokens; ok says a pair with both tokens was read.
func (d *doctor) checkTokens(ctx context.Context, store secrets.Store, mcfg tokens.Config) (tokens.Pair, bool) {
	check := "secret " + mcfg.FleetSecret
	v, err := store.Latest(ctx, mcfg.FleetSecret)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		d.add(levelFail, check, "has no version", "run fleetctl login (or fleetctl migrate if "+mcfg.LegacySecret+" holds the old system's token)")
		return tokens.Pair{}, false
	case errors.Is(err, secrets.ErrVersionUnavailable):
		d.add(levelFail, check, "the latest version is destroyed or disabled", "run fleetctl migrate to recover from an older version, else fleetctl login")
		return tokens.Pair{}, false
	case err != nil:
		msg, fix := d.secretProblem(mcfg.FleetSecret, err)
		d.add(levelFail, check, msg, fix)
		return tokens.Pair{}, false
	}
	pair, err := tokens.ParsePair(v.Payload)
	if err != nil {
		d.add(levelFail, check, fmt.Sprintf("version %s is not a usable token pair: %v", v.ID, err), "run fleetctl migrate to recover from an older version, else fleetctl login")
		return tokens.Pair{}, false
	}
	by := ""
	if pair.Source != "" {
		by = ", written by " + pair.Source
	}
	d.add(levelOK, check, "readable (version "+v.ID+by+")", "")
	return pair, true
}

func (d *doctor) checkLegacy(ctx context.Context, store secrets.Store, mcfg tokens.Config, pair tokens.Pair) {
	versions, _ := store.Versions(ctx, mcfg.FleetSecret)
	l := legacyStatus(ctx, store, mcfg, versions, pair)
	check := "secret " + l.Secret
	switch {
	case l.Error != "":
		d.add(levelWarn, check, "unreadable (optional): "+l.Error, "")
	case !l.Present:
		d.add(levelOK, check, "absent (optional)", "")
	case l.Adopted != nil && *l.Adopted:
		d.add(levelOK, check, "present, already adopted", "")
	default:
		// Not a problem: after a login, or once pruning destroyed the versions
		// that came from it, the legacy token is simply old.
		d.add(levelOK, check, "present (no stored version came from it; fleetctl migrate would try it)", "")
	}
}

// checkToken judges the stored pair without spending it.
func (d *doctor) checkToken(pair tokens.Pair, mcfg tokens.Config) {
	now := d.s.clock.Now()
	switch left := pair.ExpiresAt.Sub(now); {
	case pair.ExpiresAt.IsZero():
		d.add(levelWarn, "access token", "has no expiry (treated as expired)", "run fleetctl refresh")
	case left <= 0:
		d.add(levelWarn, "access token", fmt.Sprintf("expired %s (%s)", relative(pair.ExpiresAt, now), stamp(pair.ExpiresAt)),
			"run fleetctl refresh (the worker also refreshes on its next call; is the scout running?)")
	case left <= mcfg.RefreshBefore:
		d.add(levelWarn, "access token", fmt.Sprintf("expiring %s (%s)", relative(pair.ExpiresAt, now), stamp(pair.ExpiresAt)),
			"none needed if the worker runs; fleetctl refresh does it now")
	default:
		d.add(levelOK, "access token", fmt.Sprintf("valid until %s (%s)", stamp(pair.ExpiresAt), relative(pair.ExpiresAt, now)), "")
	}
	if created := pair.RefreshTokenCreatedAt; !created.IsZero() {
		const life = 90 * 24 * time.Hour // Tesla's refresh tokens expire after 3 months
		switch age := now.Sub(created); {
		case age >= life:
			d.add(levelFail, "refresh token", "issued "+relative(created, now)+": older than Tesla's 3 months", "run fleetctl login")
		case age >= life-14*24*time.Hour:
			d.add(levelWarn, "refresh token", "issued "+relative(created, now)+": it expires within two weeks unless refreshed", "run fleetctl refresh --force")
		}
	}
	cv := viewPair(pair)
	if missing := missingScopes(tokens.Scopes, cv.Scopes); len(cv.Scopes) > 0 && len(missing) > 0 {
		d.add(levelWarn, "scopes", "not granted: "+strings.Join(missing, " "), "run fleetctl login and approve every scope")
		if slices.Contains(missing, "vehicle_location") {
			// Tesla then sends no drive_state at all: every car is "position
			// unknown", so nothing is ever planned (fleet-telemetry#460).
			d.add(levelFail, "location", "without vehicle_location the cars report no position: the scout cannot see them come home and the worker plans nothing",
				"run fleetctl login and approve Vehicle Location")
		}
	} else if len(cv.Scopes) > 0 {
		d.add(levelOK, "scopes", strings.Join(cv.Scopes, " "), "")
	}
	if want, known := regionURLs[strings.ToUpper(cv.Region)]; known && isTeslaFleetURL(d.s.cfg.TeslaFleetAPIURL) && !sameURL(want, d.s.cfg.TeslaFleetAPIURL) {
		d.add(levelWarn, "region", fmt.Sprintf("the token's region is %s but TESLA_FLEET_API_URL is %s", cv.Region, d.s.cfg.TeslaFleetAPIURL), "set TESLA_FLEET_API_URL="+want)
	}
}

// regionURLs are Tesla's regional Fleet API hosts by the JWT's ou_code.
var regionURLs = map[string]string{
	"NA": "https://fleet-api.prd.na.vn.cloud.tesla.com",
	"EU": "https://fleet-api.prd.eu.vn.cloud.tesla.com",
	"CN": "https://fleet-api.prd.cn.vn.cloud.tesla.cn",
}

func isTeslaFleetURL(u string) bool {
	for _, r := range regionURLs {
		if sameURL(r, u) {
			return true
		}
	}
	return false
}

// sameURL compares base URLs ignoring case of scheme and host and a trailing slash.
func sameURL(a, b string) bool {
	ua, errA := url.Parse(strings.TrimRight(strings.TrimSpace(a), "/"))
	ub, errB := url.Parse(strings.TrimRight(strings.TrimSpace(b), "/"))
	if errA != nil || errB != nil {
		return a == b
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) && ua.Path == ub.Path
}

// staticToken hands the Fleet client the stored access token as it is:
// doctor never refreshes.
type staticToken string

func (t staticToken) AccessToken(context.Context) (string, error) { return string(t), nil }

func (d *doctor) checkFleet(ctx context.Context, pair tokens.Pair) {
	s := d.s
	base := s.cfg.TeslaFleetAPIURL
	if !pair.ExpiresAt.After(s.clock.Now()) {
		d.add(levelWarn, "fleet API", "not checked: the access token has expired", "run fleetctl refresh, then doctor again")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := s.fleetClient(base, staticToken(pair.AccessToken))
	reg, err := client.Region(cctx)
	switch {
	case err == nil && sameURL(reg.FleetAPIBaseURL, base):
		d.add(levelOK, "fleet API", fmt.Sprintf("GET /api/1/users/region answered at %s: region %s", base, orUnknown(reg.Region)), "")
	case err == nil:
		d.add(levelFail, "fleet API", fmt.Sprintf("the account's Fleet API is %s (region %s), not TESLA_FLEET_API_URL %s", reg.FleetAPIBaseURL, orUnknown(reg.Region), base),
			"set TESLA_FLEET_API_URL="+strings.TrimRight(reg.FleetAPIBaseURL, "/")+" (worker, scout and fleetctl)")
	case errors.Is(err, fleet.ErrWrongRegion):
		fix := "wrong region: set TESLA_FLEET_API_URL to the account's region URL"
		if want, ok := regionURLs[strings.ToUpper(viewPair(pair).Region)]; ok && !sameURL(want, base) {
			fix += fmt.Sprintf(" (the token says %s: %s)", strings.ToUpper(viewPair(pair).Region), want)
		} else {
			fix += " (NA/APAC " + regionURLs["NA"] + ", EU " + regionURLs["EU"] + ", CN " + regionURLs["CN"] + ")"
		}
		d.add(levelFail, "fleet API", "HTTP 421 from "+base+": the account lives in another region", fix)
	case errors.Is(err, fleet.ErrUnauthorized):
		d.add(levelFail, "fleet API", "the access token was rejected (401)", "run fleetctl refresh --force; if it exits 3, fleetctl login")
	case errors.Is(err, fleet.ErrForbidden):
		d.add(levelFail, "fleet API", "forbidden (403): the token lacks a scope (user_data)", "run fleetctl login and approve every scope")
	case fleet.IsTransient(err):
		d.add(levelFail, "fleet API", "unreachable: "+err.Error(), "check TESLA_FLEET_API_URL and the network, then doctor again")
	default:
		d.add(levelFail, "fleet API", err.Error(), "check TESLA_FLEET_API_URL")
	}
}
