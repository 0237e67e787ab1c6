package fleetctl

// The doctor's checks from the app to the car and the deployment: the
// secret files' modes, the command key, the domain and the key it serves,
// the partner registration in this region, each car's pairing and whether
// it needs signing, the worker's health and the Scheduler job.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

type doctorOptions struct {
	domain       string
	workerURL    string
	region       string
	schedulerJob string
	gcloud       string
}

func doctorFlags(fs *flag.FlagSet) any {
	o := &doctorOptions{}
	fs.StringVar(&o.domain, "domain", "", "the app's domain (default: the domain secret, tesla-domain)")
	fs.StringVar(&o.workerURL, "worker-url", "", "the worker's URL, to check its /health (env WORKER_URL)")
	fs.StringVar(&o.region, "region", "", "the Cloud Run / Scheduler region, to check the Scheduler job (env REGION)")
	fs.StringVar(&o.schedulerJob, "scheduler-job", "offpeak-scout-tick", "the Scheduler job that calls the scout")
	fs.StringVar(&o.gcloud, "gcloud", "gcloud", "the gcloud command, for the Scheduler check")
	return o
}

// checkFileModes fails on secret files group or others can reach.
func (d *doctor) checkFileModes(store secrets.Store) {
	f, ok := store.(*secrets.File)
	if !ok {
		return
	}
	paths, err := f.Exposed()
	switch {
	case err != nil:
		d.add(levelWarn, "secret files", err.Error(), "")
	case len(paths) > 0:
		d.add(levelFail, "secret files", "readable by group or others: "+strings.Join(paths, ", "), "chmod -R go-rwx "+f.Dir())
	default:
		d.add(levelOK, "secret files", "only the owner can read them", "")
	}
}

// checkCommandKey reads the command key; nil when there is no usable one.
func (d *doctor) checkCommandKey(ctx context.Context, store secrets.Store) *carcmd.PrivateKey {
	check := "secret " + d.s.cfg.PrivateKeySecret
	k, err := commandKey(ctx, store, d.s.cfg)
	switch {
	case errors.Is(err, carcmd.ErrNoKey):
		d.add(levelFail, check, "no command key: commands to cars that need signing will fail", "run fleetctl keygen, then register and pair")
	case errors.Is(err, carcmd.ErrKeyInvalid):
		d.add(levelFail, check, err.Error(), "store a PEM P-256 private key as its new version (fleetctl keygen --force makes one, and unpairs every car)")
	case err != nil:
		msg, fix := d.secretProblem(d.s.cfg.PrivateKeySecret, err)
		d.add(levelFail, check, msg, fix)
	default:
		d.add(levelOK, check, "a P-256 key, public key sha256 "+k.Fingerprint[:16], "")
	}
	return k
}

// checkDomain checks the domain's served key and the partner registration.
func (d *doctor) checkDomain(ctx context.Context, store secrets.Store, key *carcmd.PrivateKey, o *doctorOptions) {
	domain, from, err := d.s.appDomain(ctx, store, o.domain)
	if err != nil {
		d.add(levelWarn, "domain", err.Error(), "give --domain, or run fleetctl register --domain <your domain>")
		return
	}
	d.add(levelOK, "domain", domain+" (from "+from+")", "")
	if key != nil {
		served, match, err := d.s.servedKey(ctx, domain, key.Public)
		switch {
		case err != nil:
			d.add(levelFail, "public key", "not served at "+keyURL(domain)+": "+err.Error(),
				"serve the PEM fleetctl keygen printed there (200, no redirect): the pubkey service behind your domain, or any web host")
		case !match:
			d.add(levelFail, "public key", fmt.Sprintf("%s serves key %s, not ours (%s)", keyURL(domain), fingerprint(served), key.Fingerprint[:16]),
				"serve the public half of the stored key there (fleetctl keygen prints it)")
		default:
			d.add(levelOK, "public key", "served at "+keyURL(domain)+" and matches the stored key", "")
		}
	}
	d.checkRegistration(ctx, store, domain, key)
}

func (d *doctor) checkRegistration(ctx context.Context, store secrets.Store, domain string, key *carcmd.PrivateKey) {
	base := d.s.cfg.TeslaFleetAPIURL
	id, secret, err := appCredentials(ctx, store, d.s.cfg)
	if err != nil {
		d.add(levelWarn, "registration", "not checked: "+err.Error(), "")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	auth := fleet.PartnerAuth{TokenURL: d.s.cfg.TeslaAuthURL, ClientID: id, ClientSecret: secret, HTTPClient: d.s.httpClient()}
	tok, err := auth.Token(cctx, base)
	if err != nil {
		d.add(levelFail, "registration", "no partner token: "+err.Error(), "check the client id and secret of your app (developer.tesla.com)")
		return
	}
	client := d.s.fleetClient(base, tok)
	registered, err := client.PartnerPublicKey(cctx, domain)
	switch {
	case err != nil:
		d.add(levelFail, "registration", fmt.Sprintf("%s is not registered at %s: %v", domain, base, err), "run fleetctl register --domain "+domain)
	case key != nil && string(registered) != string(key.Public):
		d.add(levelFail, "registration", fmt.Sprintf("Tesla holds key %s for %s, not ours (%s)", fingerprint(registered), domain, key.Fingerprint[:16]),
			"run fleetctl register --domain "+domain+" again (Tesla fetches the served key)")
	default:
		d.add(levelOK, "registration", domain+" registered at "+base, "")
	}
}

// checkCars asks fleet_status whether each car has our key and needs signing.
func (d *doctor) checkCars(ctx context.Context, pair tokens.Pair) {
	if !pair.ExpiresAt.After(d.s.clock.Now()) {
		d.add(levelWarn, "cars", "not checked: the access token has expired", "run fleetctl refresh, then doctor again")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := d.s.fleetClient(d.s.cfg.TeslaFleetAPIURL, staticToken(pair.AccessToken))
	cars, err := client.Vehicles(cctx)
	if err != nil {
		d.add(levelFail, "cars", "cannot list the account's cars: "+err.Error(), "see the fleet API line above")
		return
	}
	if len(cars) == 0 {
		d.add(levelWarn, "cars", "the account has no cars", "")
		return
	}
	vins := make([]string, len(cars))
	for i, c := range cars {
		vins[i] = c.VIN
	}
	st, err := client.FleetStatus(cctx, vins)
	if err != nil {
		d.add(levelFail, "cars", "fleet_status failed: "+err.Error(), "")
		return
	}
	paired := map[string]bool{}
	for _, v := range st.KeyPairedVINs {
		paired[v] = true
	}
	mode, modeErr := carcmd.ParseMode(d.s.cfg.Command.TeslaCommandMode, d.s.cfg.Command.TeslaCommandURL)
	for _, vin := range vins {
		check := "car " + vin
		info, known := st.Vehicles[vin]
		needs := !known || info.ProtocolRequired
		switch {
		case needs && modeErr == nil && mode == carcmd.ModeREST:
			d.add(levelFail, check, "needs signed commands but TESLA_COMMAND_MODE=rest", "set TESLA_COMMAND_MODE=auto on the worker")
		case needs && mode == carcmd.ModeProxy:
			d.add(levelOK, check, "needs signed commands; the external signer at TESLA_COMMAND_URL signs them", "")
		case needs && !paired[vin]:
			d.add(levelFail, check, "needs signed commands and does not have this app's key", "run fleetctl pair (the owner opens https://tesla.com/_ak/<domain> in the Tesla app)")
		case needs:
			d.add(levelOK, check, "needs signed commands; our key is paired", "")
		default:
			d.add(levelOK, check, "takes plain REST commands (a pre-2021 Model S/X)", "")
		}
	}
}

// checkWorker reads the worker's /health (open, no credentials).
func (d *doctor) checkWorker(ctx context.Context, o *doctorOptions) {
	u := strings.TrimRight(strings.TrimSpace(o.workerURL), "/")
	if u == "" {
		u = strings.TrimRight(d.s.cfg.Command.WorkerURL, "/")
	}
	if u == "" {
		d.add(levelWarn, "worker", "not checked", "give --worker-url (or WORKER_URL)")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := d.getHealth(cctx, u, o.gcloud)
	if err != nil {
		d.add(levelFail, "worker", "unreachable: "+err.Error(), "check --worker-url and that the service is deployed")
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		d.add(levelFail, "worker", fmt.Sprintf("/health answered %d: Cloud Run refused the caller", resp.StatusCode),
			"log in with gcloud as an account with roles/run.invoker on the worker (deploy's OPERATOR)")
		return
	}
	d.judgeHealth(resp)
}

// getHealth GETs base/health; refused, it asks once more with gcloud's
// identity token. On Cloud Run the service is private: its invoker check
// wants a Google ID token of an account with run.invoker, and the worker's
// /health asks nothing more (README, Operations).
func (d *doctor) getHealth(ctx context.Context, base, gcloud string) (*http.Response, error) {
	get := func(bearer string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
		if err != nil {
			return nil, err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return d.s.httpClient().Do(req)
	}
	resp, err := get("")
	if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
		return resp, err
	}
	tok, terr := exec.CommandContext(ctx, gcloud, "auth", "print-identity-token").Output()
	if terr != nil || len(strings.TrimSpace(string(tok))) == 0 {
		return resp, nil
	}
	resp.Body.Close()
	return get(strings.TrimSpace(string(tok)))
}

// judgeHealth reads a /health answer: healthy, and able to sign when it
// signs.
func (d *doctor) judgeHealth(resp *http.Response) {
	var h struct {
		Status string `json:"status"`
		Tokens struct {
			State string `json:"state"`
		} `json:"tokens"`
		Commands *struct {
			Mode    string `json:"mode"`
			Signing string `json:"signing"`
		} `json:"commands"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &h) != nil || h.Status != "ok" {
		d.add(levelFail, "worker", fmt.Sprintf("/health answered %d", resp.StatusCode), "see the worker's logs")
		return
	}
	msg := "healthy; tokens " + orUnknown(h.Tokens.State)
	if c := h.Commands; c != nil {
		msg += "; commands " + c.Mode
		if c.Signing != "" {
			msg += ", signing " + c.Signing
		}
		if c.Mode == string(carcmd.ModeSign) && c.Signing != carcmd.KeyOK && c.Signing != carcmd.KeyUnknown {
			d.add(levelFail, "worker", msg, "the worker cannot sign: store a valid key (fleetctl keygen), then redeploy or wait for its next start")
			return
		}
	}
	d.add(levelOK, "worker", msg, "")
}

// checkScheduler asks gcloud whether the job that calls the scout exists.
func (d *doctor) checkScheduler(ctx context.Context, o *doctorOptions) {
	region := strings.TrimSpace(o.region)
	if region == "" {
		region = d.s.cfg.Command.Region
	}
	if d.s.cfg.Secrets.Backend != "gcp" || region == "" {
		d.add(levelWarn, "scheduler", "not checked", "give --region (and use SECRETS_BACKEND=gcp) to check the Cloud Scheduler job")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, o.gcloud, "scheduler", "jobs", "describe", o.schedulerJob,
		"--project", d.s.cfg.Secrets.Project, "--location", region, "--format", "value(state)").Output()
	state := strings.TrimSpace(string(out))
	switch {
	case err != nil:
		d.add(levelFail, "scheduler", fmt.Sprintf("job %s not found in %s: %v", o.schedulerJob, region, err), "run make deploy (it creates the job)")
	case state != "ENABLED":
		d.add(levelFail, "scheduler", fmt.Sprintf("job %s is %s", o.schedulerJob, orUnknown(state)),
			fmt.Sprintf("gcloud scheduler jobs resume %s --location %s", o.schedulerJob, region))
	default:
		d.add(levelOK, "scheduler", "job "+o.schedulerJob+" is enabled", "")
	}
}
