package fleetctl

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	qr "github.com/piglig/go-qr"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

// decodeTerminalQR reads the half-block QR code in out back into an image
// and decodes it: what a phone's camera would do with the terminal.
func decodeTerminalQR(t *testing.T, out string) string {
	t.Helper()
	var rows [][]bool // true = light module
	for _, line := range strings.Split(out, "\n") {
		if !strings.ContainsAny(line, "█▀▄") {
			continue
		}
		top, bottom := []bool{}, []bool{}
		for _, r := range line {
			top = append(top, r == '█' || r == '▀')
			bottom = append(bottom, r == '█' || r == '▄')
		}
		rows = append(rows, top, bottom)
	}
	if len(rows) == 0 {
		t.Fatalf("no QR code in:\n%s", out)
	}
	const scale, margin = 6, 4
	w := len(rows[0])
	img := image.NewGray(image.Rect(0, 0, (w+2*margin)*scale, (len(rows)+2*margin)*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for y, row := range rows {
		for x, light := range row {
			if light {
				continue
			}
			for dy := range scale {
				for dx := range scale {
					img.SetGray((x+margin)*scale+dx, (y+margin)*scale+dy, color.Gray{})
				}
			}
		}
	}
	// The last text line's lower half is blank (dark), as is a real
	// terminal's background: paint the margin below it light again.
	text, err := qr.Decode(lightBelow(img, (len(rows)-1+margin)*scale, scale))
	if err != nil {
		t.Fatalf("the printed QR code does not decode: %v\n%s", err, out)
	}
	return text
}

// lightBelow paints the rows from y on white.
func lightBelow(img *image.Gray, y, _ int) image.Image {
	b := img.Bounds()
	for yy := y; yy < b.Max.Y; yy++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			img.SetGray(x, yy, color.Gray{Y: 0xff})
		}
	}
	return img
}

func TestPairPrintsTheLinkAndAQRCode(t *testing.T) {
	t.Parallel()
	h := newAppHarness(t, fleetsim.Options{})
	_, private := h.storeKey()
	h.put("tesla-domain", appDomain)
	tr := h.transcript(t)

	code, stdout, stderr := tr.run("", "pair", "--no-wait")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	link := "https://tesla.com/_ak/" + appDomain
	if got := decodeTerminalQR(t, stdout); got != link {
		t.Errorf("the QR code says %q, want %q", got, link)
	}
	noPrivateKey(t, private, stdout, stderr)

	code, stdout, _ = h.run("", "pair", "--no-wait", "--json", "--domain", "other.example.com")
	var rep pairReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != ExitOK || rep.Link != "https://tesla.com/_ak/other.example.com" || rep.Waited {
		t.Errorf("JSON: exit %d %+v %v\n%s", code, rep, err, stdout)
	}
	if strings.ContainsAny(stdout, "█▀▄") {
		t.Error("--json printed the QR code")
	}
	if code, stdout, _ := tr.run("", "pair", "--no-wait", "--no-qr"); code != ExitOK || strings.ContainsAny(stdout, "█▀▄") {
		t.Errorf("--no-qr: exit %d\n%s", code, stdout)
	}
	tr.check("pair_no_wait")
}

// fakeSleep advances the harness clock instead of sleeping and calls
// onSleep (with the call's number, from 1) first.
type fakeSleep struct {
	mu      sync.Mutex
	calls   int
	slept   time.Duration
	onSleep func(n int)
}

func (f *fakeSleep) install(h *harness) {
	h.runner.Sleep = func(ctx context.Context, d time.Duration) error {
		f.mu.Lock()
		f.calls++
		n, hook := f.calls, f.onSleep
		f.slept += d
		f.mu.Unlock()
		if hook != nil {
			hook(n)
		}
		h.clock.Advance(d)
		return ctx.Err()
	}
}

func (f *fakeSleep) count() (int, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.slept
}

// The owner approves the link while pair polls: pair sees the key on the
// car and ends well. The legacy car needs no key and is not waited for.
func TestPairWaitsUntilTheCarHasTheKey(t *testing.T) {
	t.Parallel()
	h := newAppHarness(t, fleetsim.Options{RequireRegistration: true})
	key, private := h.storeKey()
	if err := h.sim.RegisterPartner(appDomain, key.PublicPEM()); err != nil {
		t.Fatal(err)
	}
	h.seedLogin()
	sleep := &fakeSleep{}
	sleep.onSleep = func(n int) {
		if n != 3 {
			return
		}
		// The owner taps the link on the phone, somewhere else.
		done := make(chan error, 1)
		go func() {
			resp, err := http.Post(h.url+"/sim/pair/"+appDomain, "application/json", nil)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = errors.New("POST /sim/pair: " + resp.Status)
				}
			}
			done <- err
		}()
		if err := <-done; err != nil {
			t.Errorf("pairing step: %v", err)
		}
	}
	sleep.install(h.harness)
	tr := h.transcript(t)
	tr.note("registered, logged in; the owner approves the link during the third pause")

	// One progress line, not one per poll: nothing changed between them.
	code, stdout, stderr := tr.run("", "pair", "--domain", appDomain, "--interval", "7s", "--no-qr")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	calls, slept := sleep.count()
	if calls != 3 || slept != 21*time.Second {
		t.Errorf("slept %d times, %s; want 3 polls 7 s apart", calls, slept)
	}
	tr.check("pair_waits")
	noPrivateKey(t, private, stdout, stderr)
}

// Nobody approves: pair gives up at the timeout, naming the car, with a
// progress line at least every minute, and --json reports it.
func TestPairTimesOutNamingTheUnpairedCar(t *testing.T) {
	t.Parallel()
	h := newAppHarness(t, fleetsim.Options{})
	key, _ := h.storeKey()
	if err := h.sim.RegisterPartner(appDomain, key.PublicPEM()); err != nil {
		t.Fatal(err)
	}
	h.seedLogin()
	// Only the legacy car gets the key; it is named with --vin, so it counts.
	if _, err := h.sim.PairDomain(context.Background(), appDomain, restVIN); err != nil {
		t.Fatal(err)
	}
	sleep := &fakeSleep{}
	sleep.install(h.harness)

	tr := h.transcript(t)
	tr.note("registered, logged in; only %s has the key, and nobody approves the link", restVIN)
	code, stdout, stderr := tr.run("", "pair", "--domain", appDomain, "--vin", signVIN+","+restVIN, "--timeout", "3m", "--json")
	if code != ExitFailure {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	calls, slept := sleep.count()
	if slept != 3*time.Minute || calls != 36 {
		t.Errorf("slept %d times, %s in all", calls, slept)
	}
	// A progress line at least every minute.
	tr.check("pair_times_out")
	var rep pairReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, stdout)
	}
	if rep.OK || !rep.Waited || len(rep.Unpaired) != 1 || rep.Unpaired[0] != signVIN || len(rep.Paired) != 1 || rep.Paired[0] != restVIN {
		t.Errorf("report %+v", rep)
	}
}

func TestPairRefusals(t *testing.T) {
	t.Parallel()
	disabled := `{"response":null,"error":"account disabled: EXCEEDED_LIMIT","error_description":""}`
	outOfRegion := `{"response":null,"error":"user out of region, use base URL: https://fleet-api.prd.na.vn.cloud.tesla.com","error_description":""}`
	for _, tc := range []struct {
		name  string
		setup func(h *appHarness)
		args  []string
		code  int
	}{
		{"served key is not ours", func(h *appHarness) { h.host.set(h.otherKey()) }, nil, ExitFailure},
		{"no domain", nil, []string{}, ExitUsage},
		{"bad domain", nil, []string{"--domain", "App.example.com"}, ExitUsage},
		{"bad interval", nil, []string{"--domain", appDomain, "--interval", "10ms"}, ExitUsage},
		// The link is printed before these failures.
		{"not logged in", nil, []string{"--domain", appDomain, "--no-qr"}, ExitReauth},
		{"wrong region", func(h *appHarness) {
			h.seedLogin()
			h.sim.InjectFault(fleetsim.EndpointVehicles, fleetsim.Fault{Status: http.StatusMisdirectedRequest, Body: outOfRegion})
		}, []string{"--domain", appDomain, "--no-qr"}, ExitFailure},
		{"account disabled", func(h *appHarness) {
			h.seedLogin()
			h.sim.InjectFault(fleetsim.EndpointFleetStatus, fleetsim.Fault{Status: http.StatusForbidden, Body: disabled})
		}, []string{"--domain", appDomain, "--no-qr"}, ExitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newAppHarness(t, fleetsim.Options{})
			h.storeKey()
			if tc.setup != nil {
				tc.setup(h)
			}
			(&fakeSleep{}).install(h.harness)
			args := tc.args
			if args == nil {
				args = []string{"--domain", appDomain}
			}
			tr := h.transcript(t)
			tr.note("%s", tc.name)
			if code, _, _ := tr.run("", append([]string{"pair"}, args...)...); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			tr.check("pair_refuses/" + strings.ReplaceAll(tc.name, " ", "_"))
		})
	}
}
