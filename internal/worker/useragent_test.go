package worker_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// agents records the User-Agent of each request that passes.
type agents struct {
	mu   sync.Mutex
	next http.RoundTripper
	seen map[string]string // "METHOD path" → User-Agent
}

func (a *agents) RoundTrip(r *http.Request) (*http.Response, error) {
	a.mu.Lock()
	a.seen[r.Method+" "+r.URL.Path] = r.Header.Get("User-Agent")
	a.mu.Unlock()
	return a.next.RoundTrip(r)
}

// client is the worker's own kind of client with a recording transport.
func (a *agents) client() *http.Client {
	c := httpclient.New(20 * time.Second)
	a.next = c.Transport
	if a.next == nil {
		a.next = http.DefaultTransport
	}
	a.seen = map[string]string{}
	c.Transport = a
	return c
}

// Tesla asks API clients to say who they are: every Fleet API request of a
// cycle carries offpeak-worker/<version>.
func TestFleetRequestsCarryTheUserAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	rec := &agents{}
	e.httpClient, e.version = rec.client(), "1.2.3"
	e.start()
	e.seed(8 * time.Hour)
	e.addCar(nil)
	if a := e.cycle(); a.status != http.StatusOK {
		t.Fatalf("cycle: %d %s", a.status, a.raw)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	fleetCalls := 0
	for req, ua := range rec.seen {
		if !strings.Contains(req, " /api/1/") {
			continue
		}
		fleetCalls++
		if ua != "offpeak-worker/1.2.3" {
			t.Errorf("%s: User-Agent %q, want offpeak-worker/1.2.3", req, ua)
		}
	}
	if fleetCalls == 0 {
		t.Fatalf("no Fleet API request seen: %v", rec.seen)
	}
}
