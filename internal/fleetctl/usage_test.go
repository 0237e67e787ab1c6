package fleetctl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/worker"
)

func TestUsageAndExitCodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string // substring expected on stdout
		stderr     string // substring expected on stderr
		stdoutNone bool
	}{
		{args: nil, code: ExitUsage, stderr: "Usage: fleetctl <command>", stdoutNone: true},
		{args: []string{"help"}, code: ExitOK, stdout: "Exit codes:"},
		{args: []string{"--help"}, code: ExitOK, stdout: "Commands:"},
		{args: []string{"help", "prune"}, code: ExitOK, stdout: "Usage: fleetctl prune [flags]"},
		{args: []string{"help", "nope"}, code: ExitUsage, stderr: `unknown command "nope"`, stdoutNone: true},
		{args: []string{"nope"}, code: ExitUsage, stderr: `unknown command "nope"`, stdoutNone: true},
		{args: []string{"--json", "status"}, code: ExitUsage, stderr: "flags go after the command", stdoutNone: true},
		{args: []string{"status", "--nope"}, code: ExitUsage, stderr: "Usage: fleetctl status [flags]", stdoutNone: true},
		{args: []string{"status", "extra"}, code: ExitUsage, stderr: `unexpected argument "extra"`, stdoutNone: true},
		{args: []string{"refresh", "--force=maybe"}, code: ExitUsage, stderr: "invalid boolean value", stdoutNone: true},
		{args: []string{"status", "--backend", "gcp"}, code: ExitUsage, stderr: "GOOGLE_CLOUD_PROJECT (--project): required", stdoutNone: true},
		{args: []string{"status", "--fleet-api-url", "ftp://x"}, code: ExitUsage, stderr: "--fleet-api-url: \"ftp://x\" is not an absolute http(s) URL", stdoutNone: true},
		// https everywhere but loopback (envcfg.CheckURL, as the services):
		// the client secret and refresh tokens never travel in clear text.
		// (The harness's own URLs are http://127.0.0.1:…, which every other
		// case here accepts.)
		{args: []string{"status", "--auth-url", "http://auth.example.com/oauth2/v3/token"}, code: ExitUsage,
			stderr: "--auth-url: \"http://auth.example.com/oauth2/v3/token\" must use https", stdoutNone: true},
		{args: []string{"status", "--fleet-api-url", "http://fleet-api.example.com"}, code: ExitUsage, stderr: "--fleet-api-url: \"http://fleet-api.example.com\" must use https", stdoutNone: true},
		{args: []string{"status", "--authorize-url", "https://user:pw@auth.example.com/authorize"}, code: ExitUsage, stderr: "--authorize-url: \"https://auth.example.com/authorize\" carries credentials in the URL", stdoutNone: true},
	} {
		code, out, errOut := h.run("", tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) || (tc.stdoutNone && out != "") {
			t.Errorf("fleetctl %v: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, out, errOut)
		}
	}
	// Every command has --help on stdout with exit 0, documenting the exit codes.
	for _, c := range commands() {
		code, out, errOut := h.run("", c.name, "--help")
		if code != ExitOK || !strings.Contains(out, "Usage: fleetctl "+c.name) || !strings.Contains(out, "3  log in again") || errOut != "" {
			t.Errorf("%s --help: exit %d\nstdout:\n%s\nstderr:\n%s", c.name, code, out, errOut)
		}
	}
	// The same rule for the variables, named as such.
	fleetURL := h.vars["TESLA_FLEET_API_URL"]
	h.vars["TESLA_FLEET_API_URL"] = "http://fleet-api.example.com/"
	if code, out, errOut := h.run("", "status"); code != ExitUsage || out != "" ||
		!strings.Contains(errOut, `TESLA_FLEET_API_URL (--fleet-api-url): "http://fleet-api.example.com/" must use https`) {
		t.Errorf("TESLA_FLEET_API_URL over http: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	h.vars["TESLA_FLEET_API_URL"] = fleetURL
	// With --json, a usage error from the configuration is one JSON object too.
	code, out, _ := h.run("", "status", "--json", "--backend", "s3")
	var res struct {
		OK       bool   `json:"ok"`
		Kind     string `json:"kind"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitUsage || res.OK || res.Kind != "usage" || res.ExitCode != ExitUsage {
		t.Errorf("exit %d, %+v (%v):\n%s", code, res, err, out)
	}
}

// The CLI must open the secrets the worker opens: same variables, same
// defaults. The worker's Config tags are the reference.
func TestConfigMatchesTheWorker(t *testing.T) {
	t.Parallel()
	workerDefaults := map[string]string{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			tag := f.Tag.Get("env")
			if tag == "" {
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type)
				}
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			def := ""
			for _, o := range strings.Split(opts, ",") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(o), "default="); ok {
					def = v
				}
			}
			workerDefaults[strings.TrimSpace(name)] = def
		}
	}
	walk(reflect.TypeOf(worker.Config{}))
	for _, s := range settings {
		// Only a login needs the authorize URL, and only register and pair the
		// domain; the worker reads neither.
		if s.env == "TESLA_AUTHORIZE_URL" || s.env == "TESLA_DOMAIN_SECRET" {
			continue
		}
		def, ok := workerDefaults[s.env]
		if !ok {
			t.Errorf("%s: the worker does not read it", s.env)
			continue
		}
		if def != s.def {
			t.Errorf("%s: default %q, the worker's is %q", s.env, s.def, def)
		}
	}
}
