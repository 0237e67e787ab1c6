package fleetctl

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestUsageAndExitCodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tr := h.transcript(t)
	// The usage texts are help.golden's; here they only need to be there.
	var top strings.Builder
	writeTopUsage(&top)
	tr.elide(top.String(), "fleetctl help")
	for _, name := range []string{"status", "refresh"} {
		var cmd strings.Builder
		c := findCommand(name)
		fs, _, _, _ := c.flagSet()
		writeCommandUsage(&cmd, c, fs)
		tr.elide(cmd.String(), "fleetctl help "+name)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, ExitUsage},
		{[]string{"--help"}, ExitOK},
		{[]string{"help", "nope"}, ExitUsage},
		{[]string{"nope"}, ExitUsage},
		{[]string{"--json", "status"}, ExitUsage},
		{[]string{"status", "--nope"}, ExitUsage},
		{[]string{"status", "extra"}, ExitUsage},
		{[]string{"refresh", "--force=maybe"}, ExitUsage},
		{[]string{"status", "--backend", "gcp"}, ExitUsage},
		{[]string{"status", "--fleet-api-url", "ftp://x"}, ExitUsage},
		// https everywhere but loopback (envcfg.CheckURL, as the services):
		// the client secret and refresh tokens never travel in clear text.
		// (The harness's own URLs are http://127.0.0.1:…, which every other
		// case here accepts.)
		{[]string{"status", "--auth-url", "http://auth.example.com/oauth2/v3/token"}, ExitUsage},
		{[]string{"status", "--fleet-api-url", "http://fleet-api.example.com"}, ExitUsage},
		{[]string{"status", "--authorize-url", "https://user:pw@auth.example.com/authorize"}, ExitUsage},
	} {
		if code, _, _ := tr.run("", tc.args...); code != tc.code {
			t.Errorf("fleetctl %v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
	// The same rule for the variables, named as such.
	fleetURL := h.vars["TESLA_FLEET_API_URL"]
	h.vars["TESLA_FLEET_API_URL"] = "http://fleet-api.example.com/"
	tr.note("TESLA_FLEET_API_URL=%s", h.vars["TESLA_FLEET_API_URL"])
	if code, _, _ := tr.run("", "status"); code != ExitUsage {
		t.Errorf("TESLA_FLEET_API_URL over http: exit %d", code)
	}
	h.vars["TESLA_FLEET_API_URL"] = fleetURL
	// With --json, a usage error from the configuration is one JSON object too.
	code, out, _ := tr.run("", "status", "--json", "--backend", "s3")
	var res struct {
		OK       bool   `json:"ok"`
		Kind     string `json:"kind"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitUsage || res.OK || res.Kind != "usage" || res.ExitCode != ExitUsage {
		t.Errorf("exit %d, %+v (%v):\n%s", code, res, err, out)
	}
	tr.check("usage")
}

// Every command has --help on stdout with exit 0, documenting the exit codes.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tr := h.transcript(t)
	if code, _, errOut := tr.run("", "help"); code != ExitOK || errOut != "" {
		t.Errorf("help: exit %d, stderr:\n%s", code, errOut)
	}
	for _, c := range commands() {
		if code, _, errOut := tr.run("", c.name, "--help"); code != ExitOK || errOut != "" {
			t.Errorf("%s --help: exit %d, stderr:\n%s", c.name, code, errOut)
		}
	}
	tr.check("help")
}
