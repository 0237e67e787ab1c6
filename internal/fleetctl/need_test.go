package fleetctl

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Warsaw whatever the machine's zoneinfo

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/needs"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

const needVIN = "5YJ3E7EB0KF000001"

// newNeedHarness is a logged-in installation with one car and a file state
// store; start is Tuesday 2026-07-21 12:00 in Warsaw.
func newNeedHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := newHarness(t)
	h.seedLogin()
	h.sim.AddCar(fleetsim.CarState{VIN: needVIN, State: fleetsim.StateAsleep})
	dir := filepath.Join(t.TempDir(), "state")
	h.vars["STATE_BACKEND"], h.vars["STATE_DIR"] = "file", dir
	return h, dir
}

func TestNeedAddListRemove(t *testing.T) {
	t.Parallel()
	h, dir := newNeedHarness(t)
	add := []string{"need", "add", "--vin", needVIN, "--target", "90", "--by", "2026-07-24 16:00", "--note", "trip"}
	code, out, errOut := h.run("", add...)
	id := needVIN + "-20260724T1400Z-90"
	if code != ExitOK || !strings.Contains(out, "Added "+id) || !strings.Contains(out, "2026-07-24 16:00 CEST") {
		t.Fatalf("add: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = h.run("", add...)
	if code != ExitOK || !strings.Contains(out, "Already there") {
		t.Fatalf("add again: exit %d\n%s", code, out)
	}
	h.run("", "need", "add", "--vin", needVIN, "--target", "80", "--by", "2026-07-22T05:00:00Z")

	code, out, _ = h.run("", "need", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitOK || len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.Contains(lines[1], "-20260722T0500Z-80") || !strings.Contains(lines[2], id) || !strings.Contains(lines[2], "pending") ||
		!strings.HasSuffix(lines[2], "trip") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}

	code, out, _ = h.run("", "need", "list", "--vin", needVIN, "--json")
	var list struct {
		OK    bool `json:"ok"`
		Needs []struct {
			ID            string `json:"id"`
			TargetPercent int    `json:"target_percent"`
			State         string `json:"state"`
		} `json:"needs"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != ExitOK || err != nil || !list.OK || len(list.Needs) != 2 ||
		list.Needs[1].ID != id || list.Needs[1].State != "pending" || list.Needs[1].TargetPercent != 90 {
		t.Fatalf("list --json: exit %d %v\n%s", code, err, out)
	}

	// The worker's code reads what fleetctl wrote: the same layout.
	s, err := state.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	book, err := needs.NewBook(s, needs.VINList{}, clock.NewManual(start), needs.Config{Location: warsawLoc(t)})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := book.Get(context.Background(), id); err != nil || n.Note != "trip" {
		t.Fatalf("the book sees %+v, %v", n, err)
	}

	// The id may come after the flags or before them.
	code, out, _ = h.run("", "need", "rm", id, "--json")
	var rm struct {
		OK   bool `json:"ok"`
		Need struct {
			ID string `json:"id"`
		} `json:"need"`
	}
	if err := json.Unmarshal([]byte(out), &rm); code != ExitOK || err != nil || !rm.OK || rm.Need.ID != id {
		t.Fatalf("rm: exit %d %v\n%s", code, err, out)
	}
	code, _, errOut = h.run("", "need", "rm", id)
	if code != ExitFailure || !strings.Contains(errOut, "not found") || !strings.Contains(errOut, "need list") {
		t.Fatalf("rm again: exit %d\n%s", code, errOut)
	}
	code, out, _ = h.run("", "need", "rm", "--json", needVIN+"-20260722T0500Z-80")
	if code != ExitOK {
		t.Fatalf("rm with the id last: exit %d\n%s", code, out)
	}
	if code, out, _ = h.run("", "need", "list"); code != ExitOK || strings.TrimSpace(out) != "No charge needs." {
		t.Fatalf("empty list: exit %d\n%s", code, out)
	}
}

func warsawLoc(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestNeedBadInput(t *testing.T) {
	t.Parallel()
	h, _ := newNeedHarness(t)
	base := []string{"need", "add", "--vin", needVIN, "--target", "90", "--by"}
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		code   int
		stderr string
	}{
		{args: append(base[:len(base):len(base)], "2026-07-20 16:00"), code: ExitUsage, stderr: "not after now"},
		{args: append(base[:len(base):len(base)], "2026-08-20 16:00"), code: ExitUsage, stderr: "14 days"},
		{args: append(base[:len(base):len(base)], "2027-03-28 02:30"), code: ExitUsage, stderr: "does not exist"},
		{args: append(base[:len(base):len(base)], "friday"), code: ExitUsage, stderr: "RFC 3339"},
		{args: []string{"need", "add", "--vin", needVIN, "--target", "20", "--by", "2026-07-24 16:00"}, code: ExitUsage, stderr: "between 50 and 100"},
		{args: []string{"need", "add", "--vin", "5YJ3E7EB0KF000009", "--target", "90", "--by", "2026-07-24 16:00"}, code: ExitUsage, stderr: "not a car of this account"},
		{args: []string{"need", "add", "--target", "90", "--by", "2026-07-24 16:00"}, code: ExitUsage, stderr: "vin is required"},
		{args: []string{"need", "add", "--vin", needVIN, "--target", "ninety"}, code: ExitUsage, stderr: "invalid value"},
		{args: []string{"need", "rm"}, code: ExitUsage, stderr: "which need?"},
		{args: []string{"need", "rm", "a", "b"}, code: ExitUsage, stderr: `unexpected argument "b"`},
		{args: []string{"need", "list", "extra"}, code: ExitUsage, stderr: `unexpected argument "extra"`},
		{args: []string{"need"}, code: ExitUsage, stderr: `unknown command "need"`},
		{args: []string{"need", "list"}, env: map[string]string{"TIMEZONE": "Mars/Olympus"}, code: ExitUsage, stderr: "TIMEZONE"},
		{args: []string{"need", "list"}, env: map[string]string{"STATE_BACKEND": "s3"}, code: ExitUsage, stderr: "STATE_BACKEND"},
		{args: []string{"need", "list"}, env: map[string]string{"STATE_BACKEND": "gcs"}, code: ExitUsage, stderr: "STATE_BUCKET"},
	} {
		saved := map[string]string{}
		for k, v := range tc.env {
			saved[k] = h.vars[k]
			h.vars[k] = v
		}
		code, out, errOut := h.run("", tc.args...)
		for k, v := range saved {
			h.vars[k] = v
		}
		if code != tc.code || !strings.Contains(errOut, tc.stderr) || out != "" {
			t.Errorf("fleetctl %v: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, out, errOut)
		}
	}
	if code, out, _ := h.run("", "need", "list"); code != ExitOK || !strings.Contains(out, "No charge needs.") {
		t.Fatalf("a bad add stored something: exit %d\n%s", code, out)
	}
	// Two-word commands have their help too.
	if code, out, _ := h.run("", "help", "need", "rm"); code != ExitOK || !strings.Contains(out, "Usage: fleetctl need rm ID [flags]") {
		t.Fatalf("help need rm: exit %d\n%s", code, out)
	}
	if code, out, _ := h.run("", "need", "add", "--help"); code != ExitOK || !strings.Contains(out, "STATE_BACKEND") {
		t.Fatalf("need add --help: exit %d\n%s", code, out)
	}
}

// The need commands open the worker's store and zone: same variables, same
// defaults as worker.Config.
func TestNeedsEnvMatchesTheWorker(t *testing.T) {
	t.Parallel()
	defaults := func(rt reflect.Type) map[string]string {
		out := map[string]string{}
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
				out[strings.TrimSpace(name)] = def
			}
		}
		walk(rt)
		return out
	}
	workerDefaults := defaults(reflect.TypeOf(worker.Config{}))
	mine := defaults(reflect.TypeOf(needsEnv{}))
	if len(mine) != 4 {
		t.Fatalf("needsEnv reads %v", mine)
	}
	for name, def := range mine {
		if wd, ok := workerDefaults[name]; !ok || wd != def {
			t.Errorf("%s: default %q, the worker's %q (read: %v)", name, def, wd, ok)
		}
	}
}
