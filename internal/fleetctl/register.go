package fleetctl

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

type registerOptions struct {
	domain     string
	allRegions bool
}

func registerCommand() *command {
	return &command{
		name:    "register",
		summary: "tell Tesla the app's domain (partner_accounts, per region); check Tesla holds our key",
		help: `Registers the app's domain with Tesla's Fleet API, which every Fleet call
needs (without it Tesla answers 412): first it checks that
https://<domain>/.well-known/appspecific/com.tesla.3p.public-key.pem serves
the public half of TESLA_PRIVATE_KEY_SECRET (200, no redirect); then, per
region, it gets a partner token (client credentials from tesla-client-id and
tesla-client-secret, audience the region's Fleet API URL), POSTs
/api/1/partner_accounts {"domain":…} (Tesla fetches the key now), and reads
/api/1/partner_accounts/public_key back to compare it with ours.

The region is TESLA_FLEET_API_URL; --all-regions registers in North America
and Europe too (the account's region may not be known yet). Running it again
is harmless. The domain (--domain, else the secret TESLA_DOMAIN_SECRET) is a
bare host such as app.example.com; after a registration it is stored in
TESLA_DOMAIN_SECRET for fleetctl pair. Exit code 1 if any region failed.`,
		flags: func(fs *flag.FlagSet) any {
			o := &registerOptions{}
			fs.StringVar(&o.domain, "domain", "", "the app's domain, a bare host such as app.example.com (default: the domain secret)")
			fs.BoolVar(&o.allRegions, "all-regions", false, "register in North America and Europe too, not only TESLA_FLEET_API_URL")
			return o
		},
		run: runRegister,
	}
}

// regionResult is one region's outcome.
type regionResult struct {
	URL     string `json:"url"`
	OK      bool   `json:"ok"`
	Outcome string `json:"outcome"` // registered, failed
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

type registerReport struct {
	OK           bool           `json:"ok"`
	Domain       string         `json:"domain"`
	KeyURL       string         `json:"key_url"`
	Fingerprint  string         `json:"fingerprint"`
	Regions      []regionResult `json:"regions"`
	DomainStored bool           `json:"domain_stored,omitempty"`
}

func runRegister(ctx context.Context, s *session, opts any) error {
	o := opts.(*registerOptions)
	store, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	domain, _, err := s.appDomain(ctx, store, o.domain)
	if err != nil {
		return err
	}
	key, err := commandKey(ctx, store, s.cfg)
	if err != nil {
		return err
	}
	clientID, clientSecret, err := appCredentials(ctx, store, s.cfg)
	if err != nil {
		return err
	}
	ours := key.Public
	rep := registerReport{Domain: domain, KeyURL: keyURL(domain), Fingerprint: fingerprint(ours), Regions: []regionResult{}}

	// Tesla registers whatever the domain serves: check it is our key first.
	served, match, err := s.servedKey(ctx, domain, ours)
	switch {
	case err != nil:
		return fmt.Errorf("%w\nTesla fetches the key from %s when registering, and the phone when pairing: serve the public key there first "+
			"(fleetctl keygen printed it; the deployment's public-key service serves it from %s)", err, rep.KeyURL, s.cfg.PrivateKeySecret)
	case !match:
		return fmt.Errorf("%s serves a public key (fingerprint %s) that is not the public half of %s (fingerprint %s).\n"+
			"Tesla would register the served key and the cars would pair with it, so nothing was registered: "+
			"serve the key of %s there, then run fleetctl register again",
			rep.KeyURL, fingerprint(served), s.cfg.PrivateKeySecret, rep.Fingerprint, s.cfg.PrivateKeySecret)
	}
	if !s.json {
		s.printf("%s serves our public key (fingerprint %s)", rep.KeyURL, rep.Fingerprint)
	}

	auth := fleet.PartnerAuth{TokenURL: s.cfg.TeslaAuthURL, ClientID: clientID, ClientSecret: clientSecret, HTTPClient: s.httpClient()}
	failed := 0
	for _, region := range s.registerRegions(o.allRegions) {
		res := s.registerIn(ctx, auth, region, domain, ours)
		rep.Regions = append(rep.Regions, res)
		if !res.OK {
			failed++
		}
		if !s.json {
			line := fmt.Sprintf("%-4s  %s: %s", map[bool]string{true: "ok", false: "FAIL"}[res.OK], res.URL, res.Message)
			if res.Fix != "" {
				line += ". Fix: " + res.Fix
			}
			s.printf("%s", line)
		}
	}
	rep.OK = failed == 0
	if failed < len(rep.Regions) {
		stored, err := storeDomain(ctx, store, s.cfg.DomainSecret, domain)
		if err != nil {
			s.notef("warning: the domain was not stored in %s: %v", s.cfg.DomainSecret, err)
		}
		rep.DomainStored = stored
		if stored && !s.json {
			s.printf("stored the domain in %s (fleetctl pair reads it)", s.cfg.DomainSecret)
		}
	}
	if s.json {
		s.printJSON(rep)
	}
	if failed > 0 {
		return fmt.Errorf("registration of %s failed in %d of %d regions", domain, failed, len(rep.Regions))
	}
	if !s.json {
		s.notef("Next: fleetctl login (if not done), then fleetctl pair to put the key on the cars.")
	}
	return nil
}

// registerRegions is TESLA_FLEET_API_URL, then with all the partner
// regions (Runner.PartnerRegions; default NA and EU) not already listed.
func (s *session) registerRegions(all bool) []string {
	out := []string{s.cfg.TeslaFleetAPIURL}
	if !all {
		return out
	}
	extra := s.runner.PartnerRegions
	if len(extra) == 0 {
		extra = []string{fleet.RegionNA, fleet.RegionEU}
	}
	for _, r := range extra {
		dup := false
		for _, have := range out {
			dup = dup || sameBaseURL(have, r)
		}
		if !dup {
			out = append(out, strings.TrimRight(r, "/"))
		}
	}
	return out
}

func sameBaseURL(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(strings.TrimSpace(a), "/"), strings.TrimRight(strings.TrimSpace(b), "/"))
}

// registerIn registers domain in one region and checks the key Tesla holds.
func (s *session) registerIn(ctx context.Context, auth fleet.PartnerAuth, region, domain string, ours []byte) regionResult {
	res := regionResult{URL: region, Outcome: "failed"}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tok, err := auth.Token(cctx, region)
	if err != nil {
		res.Message, res.Fix = explainPartner(err, region, domain, s.cfg)
		return res
	}
	client := s.fleetClient(region, tok)
	_, regErr := client.RegisterPartner(cctx, domain)
	if regErr != nil && !errors.Is(regErr, fleet.ErrAlreadyTaken) {
		res.Message, res.Fix = explainPartner(regErr, region, domain, s.cfg)
		return res
	}
	held, err := client.PartnerPublicKey(cctx, domain)
	if regErr != nil {
		// "already been taken" is also what an app registering its own key
		// again has seen (vehicle-command issue 17): ours if Tesla holds our key.
		if err != nil || !bytes.Equal(held, ours) {
			res.Message, res.Fix = explainPartner(regErr, region, domain, s.cfg)
			return res
		}
	}
	switch {
	case err != nil:
		res.Message, res.Fix = explainPartner(err, region, domain, s.cfg)
		if errors.Is(err, fleet.ErrNotRegistered) {
			res.Message = "registered, but Tesla's public_key for " + domain + " answers: not registered for this app"
			res.Fix = "run fleetctl register again in a few minutes (a new app can take a while to become a partner, vehicle-command issue 166)"
		}
	case !bytes.Equal(held, ours):
		res.Message = fmt.Sprintf("Tesla holds another key for %s (fingerprint %s; %s is %s)", domain, fingerprint(held), s.cfg.PrivateKeySecret, fingerprint(ours))
		res.Fix = "serve the public half of " + s.cfg.PrivateKeySecret + " at " + keyURL(domain) + " and run fleetctl register again (Tesla fetches it again)"
	default:
		res.OK, res.Outcome = true, "registered"
		res.Message = fmt.Sprintf("%s registered; Tesla holds our key (fingerprint %s)", domain, fingerprint(held))
	}
	return res
}

// explainPartner says, in an operator's words, what a partner failure
// means and what to do.
func explainPartner(err error, region, domain string, cfg Config) (msg, fix string) {
	text := err.Error()
	var apiErr *fleet.APIError
	if errors.As(err, &apiErr) && apiErr.Message != "" {
		text = fmt.Sprintf("HTTP %d: %s", apiErr.Status, apiErr.Message) // Tesla's own words
	}
	switch {
	case errors.Is(err, fleet.ErrPartnerClient):
		return "Tesla's token endpoint rejected the app's client id or secret (" + text + ")",
			"store the values of your app at developer.tesla.com in " + cfg.ClientIDSecret + " and " + cfg.ClientSecretSecret
	case errors.Is(err, fleet.ErrPartnerGrant) && strings.Contains(text, "invalid_audience"):
		return "Tesla refused a partner token for " + region + " (" + text + ")",
			"check that " + region + " is a Fleet API region URL; new apps have also been refused so (WattSnatch issue 6): ask Tesla's developer support"
	case errors.Is(err, fleet.ErrPartnerGrant):
		return "Tesla refused a partner token (" + text + ")",
			"on developer.tesla.com give the app the grant type \"Authorization Code and Machine-to-Machine\" and the scopes vehicle_device_data, vehicle_cmds, vehicle_charging_cmds"
	case errors.Is(err, fleet.ErrInvalidDomain):
		return "Tesla rejects the domain " + domain + " (" + text + ")",
			"give the bare host of the app's Allowed Origin, lower case, e.g. app.example.com (no https://, no port or path)"
	case errors.Is(err, fleet.ErrKeyDownload):
		return "Tesla could not fetch the key from " + keyURL(domain) + " (" + text + ")",
			"it must answer 200 with the PEM public key and nothing else, without a redirect, reachable from the internet over https"
	case errors.Is(err, fleet.ErrAlreadyTaken) && strings.Contains(strings.ToLower(teslaWords(err)), "domain has already been taken"):
		return domain + " is registered by another Tesla app (" + text + ")",
			"use that app's client id and secret (" + cfg.ClientIDSecret + ", " + cfg.ClientSecretSecret + "), or a domain of this app's own"
	case errors.Is(err, fleet.ErrAlreadyTaken):
		return "this public key is registered by another Tesla app (" + text + ")",
			"use that app's client id and secret, or make a new key (fleetctl keygen --force: every car must then be paired again)"
	case errors.Is(err, fleet.ErrAccountDisabled):
		// Tesla disables apps over their billing limit and those without a
		// payment method (vehicle-command issue 403; billing-and-limits). The
		// exact body for a missing payment method is UNCONFIRMED: any 403
		// "account disabled" lands here.
		return "Tesla has disabled the developer account (" + text + ")",
			"add a payment method (or raise the billing limit) at developer.tesla.com, then run fleetctl register again"
	case errors.Is(err, fleet.ErrPrecondition):
		return "Tesla says the app is not registered in " + region + " (412)",
			"run fleetctl register --domain " + domain + " for this region (add --all-regions if the account's region is unknown)"
	case errors.Is(err, fleet.ErrWrongRegion):
		return region + " answers 421: that is not the region for this request",
			"set TESLA_FLEET_API_URL to the account's region (NA/APAC " + fleet.RegionNA + ", EU " + fleet.RegionEU + ") or use --all-regions"
	case errors.Is(err, fleet.ErrUnauthorized):
		return "Tesla rejected the partner token (401)",
			"check " + cfg.ClientIDSecret + " and " + cfg.ClientSecretSecret + " hold this app's values; the token was asked for audience " + region
	case errors.Is(err, fleet.ErrPartnerTokenRequired):
		return "Tesla wanted a partner token (" + text + ")", "this is a bug in fleetctl: please report it"
	case errors.Is(err, fleet.ErrNotRegistered):
		return "Tesla says this app has not registered " + domain + " in " + region, "run fleetctl register --domain " + domain
	case fleet.IsTransient(err):
		return "Tesla did not answer (" + text + ")", "try again later"
	case errors.Is(err, secrets.ErrUnavailable):
		return text, "try again later"
	}
	return text, ""
}

// teslaWords is what Tesla said in an API error ("" for other errors).
func teslaWords(err error) string {
	var apiErr *fleet.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Message
	}
	return ""
}

// storeDomain writes domain as a new version of the domain secret unless
// it already holds it. It reports whether it wrote.
func storeDomain(ctx context.Context, store secrets.Store, name, domain string) (bool, error) {
	v, _, ok, err := readValue(ctx, store, name)
	if err != nil {
		return false, err
	}
	if ok && v == domain {
		return false, nil
	}
	if _, err := store.Add(ctx, name, []byte(domain)); err != nil {
		return false, err
	}
	return true, nil
}
