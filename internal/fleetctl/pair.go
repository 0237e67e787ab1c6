package fleetctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleet"
)

// Defaults of pair's polling.
const (
	defaultPairTimeout  = 10 * time.Minute
	defaultPairInterval = 5 * time.Second
	// pairProgressEvery: a progress line at least this often, and on every change.
	pairProgressEvery = time.Minute
)

type pairOptions struct {
	domain   string
	vins     vinList
	timeout  time.Duration
	interval time.Duration
	noWait   bool
	noQR     bool
}

// vinList is a repeatable --vin that also takes comma-separated VINs.
type vinList []string

func (v *vinList) String() string { return strings.Join(*v, ",") }

func (v *vinList) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		if f = strings.ToUpper(strings.TrimSpace(f)); f != "" {
			*v = append(*v, f)
		}
	}
	return nil
}

func pairCommand() *command {
	return &command{
		name:    "pair",
		summary: "print the pairing link and its QR code, then wait until every car has the key",
		help: `Prints the link that pairs the app's key with a car,
https://tesla.com/_ak/<domain>, and a QR code of it. Open it on the phone
with the Tesla app (4.27.3 or newer, signed in to the account that owns the
car and that you logged in with; pick the car first if there are several)
and approve; the car must be online. Then pair polls
POST /api/1/vehicles/fleet_status with the stored user token every
--interval until every car lists the key in key_paired_vins, printing a
progress line, or until --timeout, naming the cars still without it.

Cars: --vin (repeatable, or comma-separated), else every car of the account
except those fleet_status says take unsigned commands
(vehicle_command_protocol_required false: the worker sends them REST
commands, no key needed). The domain is --domain, else the secret
TESLA_DOMAIN_SECRET (fleetctl register stores it). Before printing the link
it checks that the domain serves our public key: the phone installs what it
serves. Exit code 1 if a car is still not paired at the timeout.`,
		flags: func(fs *flag.FlagSet) any {
			o := &pairOptions{}
			fs.StringVar(&o.domain, "domain", "", "the app's domain, e.g. app.example.com (default: the domain secret)")
			fs.Var(&o.vins, "vin", "wait for this car (repeatable or comma-separated; default: every car that needs signed commands)")
			fs.DurationVar(&o.timeout, "timeout", defaultPairTimeout, "give up after this long")
			fs.DurationVar(&o.interval, "interval", defaultPairInterval, "time between fleet_status polls (at least 1s)")
			fs.BoolVar(&o.noWait, "no-wait", false, "print the link and QR code only; do not poll")
			fs.BoolVar(&o.noQR, "no-qr", false, "print the link without the QR code")
			return o
		},
		run: runPair,
	}
}

type pairReport struct {
	OK       bool     `json:"ok"`
	Domain   string   `json:"domain"`
	Link     string   `json:"link"`
	Paired   []string `json:"paired"`
	Unpaired []string `json:"unpaired"`
	// Skipped are cars that take unsigned commands and need no key.
	Skipped []string `json:"skipped,omitempty"`
	Waited  bool     `json:"waited"`
}

func runPair(ctx context.Context, s *session, opts any) error {
	o := opts.(*pairOptions)
	if o.timeout <= 0 {
		return usageError{errors.New("--timeout must be positive")}
	}
	if o.interval < time.Second {
		return usageError{errors.New("--interval must be at least 1s (each poll is a billed Fleet API request)")}
	}
	store, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	domain, _, err := s.appDomain(ctx, store, o.domain)
	if err != nil {
		return err
	}
	rep := pairReport{Domain: domain, Link: "https://tesla.com/_ak/" + domain, Paired: []string{}, Unpaired: []string{}}

	// The phone installs the key the domain serves (vehicle-command issue
	// 218): refuse to send the owner there when it serves another key.
	if key, err := commandKey(ctx, store, s.cfg); err != nil {
		s.notef("warning: %v", err)
	} else if served, match, err := s.servedKey(ctx, domain, key.Public); err != nil {
		s.notef("warning: could not check the key the phone will fetch: %v", err)
	} else if !match {
		return fmt.Errorf("%s serves a public key (fingerprint %s) that is not the public half of %s (fingerprint %s): "+
			"the phone would pair that key. Serve ours there (and run fleetctl register again), then fleetctl pair",
			keyURL(domain), fingerprint(served), s.cfg.PrivateKeySecret, fingerprint(key.Public))
	}

	if !s.json {
		s.printf("Open this link on the phone with the Tesla app (signed in to the car owner's account) and approve the key:")
		s.printf("")
		s.printf("  %s", rep.Link)
		s.printf("")
		if !o.noQR {
			code, err := terminalQR(rep.Link)
			if err != nil {
				return fmt.Errorf("QR code: %w", err)
			}
			_, _ = s.out.Write([]byte(code))
			s.printf("")
		}
	}
	if o.noWait {
		rep.OK = true
		if s.json {
			s.printJSON(rep)
		}
		return nil
	}
	rep.Waited = true

	m := s.manager(store, s.managerConfig())
	client := s.fleetClient(s.cfg.TeslaFleetAPIURL, m)
	err = s.waitForPairing(ctx, client, o, &rep)
	if s.json {
		s.printJSON(rep)
	}
	return err
}

// waitForPairing polls fleet_status until every wanted car lists the key,
// or the timeout passes. rep gets the result.
func (s *session) waitForPairing(ctx context.Context, client *fleet.Client, o *pairOptions, rep *pairReport) error {
	explicit := len(o.vins) > 0
	want := slices.Clone([]string(o.vins))
	if !explicit {
		vehicles, err := client.Vehicles(ctx)
		if err != nil {
			return explainUserCall("list the account's cars", err)
		}
		for _, v := range vehicles {
			want = append(want, v.VIN)
		}
		if len(want) == 0 {
			return errors.New("the account has no cars (GET /api/1/vehicles is empty): log in with the owner's account (fleetctl login)")
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)

	start := s.clock.Now()
	deadline := start.Add(o.timeout)
	var lastLine string
	var lastShown time.Time
	first := true
	for {
		st, err := client.FleetStatus(ctx, want)
		switch {
		case err == nil:
		case fleet.IsTransient(err) && !errors.Is(err, fleet.ErrRateLimited):
			s.notef("fleet_status failed, trying again: %v", err)
		default:
			return explainUserCall("ask fleet_status", err)
		}
		if err == nil {
			if first {
				want = s.dropUnsignedCars(want, st, explicit, rep)
				first = false
				if len(want) == 0 {
					rep.OK = true
					s.notef("No car needs a key.")
					return nil
				}
			}
			paired, unpaired := splitPaired(want, st)
			rep.Paired, rep.Unpaired = paired, unpaired
			if len(unpaired) == 0 {
				rep.OK = true
				if !s.json {
					s.printf("The key is paired with every car: %s", strings.Join(paired, ", "))
				}
				return nil
			}
			now := s.clock.Now()
			line := fmt.Sprintf("waiting for the key on %d of %d cars: %s", len(unpaired), len(want), strings.Join(unpaired, ", "))
			if now.Before(deadline) && (line != lastLine || now.Sub(lastShown) >= pairProgressEvery) {
				s.notef("%s (%s left)", line, humanDuration(max(deadline.Sub(now), 0)))
				lastLine, lastShown = line, now
			}
		}
		left := deadline.Sub(s.clock.Now())
		if left <= 0 {
			break
		}
		if err := s.sleep(ctx, min(o.interval, left)); err != nil {
			return err
		}
	}
	if len(rep.Unpaired) == 0 { // every poll failed
		rep.Unpaired = slices.Clone(want)
	}
	return fmt.Errorf("the key is not paired with %s after %s: open %s on the phone with the Tesla app "+
		"(signed in to the account that owns the car; pick the car first) and approve, with the car online "+
		"and the phone near it, then run fleetctl pair again", strings.Join(rep.Unpaired, ", "), humanDuration(o.timeout), rep.Link)
}

// dropUnsignedCars leaves out, unless they were named with --vin, the cars
// fleet_status says take unsigned commands: the worker sends them REST
// commands (carcmd's router does the same), so they need no key.
func (s *session) dropUnsignedCars(want []string, st fleet.FleetStatus, explicit bool, rep *pairReport) []string {
	var keep []string
	for _, vin := range want {
		info, ok := st.Vehicles[vin]
		switch {
		case !ok && explicit:
			s.notef("warning: fleet_status knows nothing of %s: is it a car of this account?", vin)
		case ok && !info.ProtocolRequired && !explicit:
			rep.Skipped = append(rep.Skipped, vin)
			s.notef("%s takes unsigned commands (vehicle_command_protocol_required false): no key needed; "+
				"pass --vin %s to wait for it anyway", vin, vin)
			continue
		}
		keep = append(keep, vin)
	}
	return keep
}

func splitPaired(want []string, st fleet.FleetStatus) (paired, unpaired []string) {
	paired, unpaired = []string{}, []string{}
	for _, vin := range want {
		if slices.Contains(st.KeyPairedVINs, vin) {
			paired = append(paired, vin)
		} else {
			unpaired = append(unpaired, vin)
		}
	}
	return paired, unpaired
}

// explainUserCall turns a failed Fleet API call with the user's token into
// an operator's words. A 412's own text names fleetctl register; a
// tokens.ErrReauthRequired stays wrapped, so the exit code says "log in".
func explainUserCall(what string, err error) error {
	switch {
	case errors.Is(err, fleet.ErrWrongRegion):
		return fmt.Errorf("%s: %w (NA/APAC %s, EU %s)", what, err, fleet.RegionNA, fleet.RegionEU)
	case fleet.AccountDisabled(err):
		return fmt.Errorf("%s: Tesla has disabled the developer account (%w): add a payment method or raise the billing limit at developer.tesla.com", what, err)
	case errors.Is(err, fleet.ErrUnauthorized):
		return fmt.Errorf("%s: Tesla rejected the stored access token (%w): run fleetctl refresh --force; if it exits 3, fleetctl login", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// sleep waits d through the Runner's Sleep, else a timer that ends with ctx.
func (s *session) sleep(ctx context.Context, d time.Duration) error {
	if s.runner.Sleep != nil {
		return s.runner.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
