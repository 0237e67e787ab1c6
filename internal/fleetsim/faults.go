package fleetsim

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Endpoint names a group of simulated endpoints for faults and latency.
type Endpoint string

// Endpoints that faults and latency can target.
const (
	EndpointToken       Endpoint = "token"        // POST /oauth2/v3/token
	EndpointAuthorize   Endpoint = "authorize"    // GET /oauth2/v3/authorize
	EndpointVehicles    Endpoint = "vehicles"     // GET /api/1/vehicles
	EndpointVehicle     Endpoint = "vehicle"      // GET /api/1/vehicles/{vin}
	EndpointVehicleData Endpoint = "vehicle_data" // GET /api/1/vehicles/{vin}/vehicle_data
	EndpointWakeUp      Endpoint = "wake_up"      // POST /api/1/vehicles/{vin}/wake_up
	EndpointCommand     Endpoint = "command"      // POST /api/1/vehicles/{vin}/command/{name}
	EndpointRegion      Endpoint = "region"       // GET /api/1/users/region
	// EndpointSignedCommand is POST /api/1/vehicles/{vin}/signed_command
	// (handshakes and signed commands alike).
	EndpointSignedCommand Endpoint = "signed_command"
	EndpointFleetStatus   Endpoint = "fleet_status" // POST /api/1/vehicles/fleet_status
	// EndpointPartnerAccounts is POST /api/1/partner_accounts and GET
	// /api/1/partner_accounts/public_key.
	EndpointPartnerAccounts Endpoint = "partner_accounts"
	EndpointAllFleet        Endpoint = "*" // every Fleet API endpoint (not token/authorize)
)

func (e Endpoint) valid() bool {
	switch e {
	case EndpointToken, EndpointAuthorize, EndpointVehicles, EndpointVehicle, EndpointVehicleData,
		EndpointWakeUp, EndpointCommand, EndpointRegion, EndpointSignedCommand, EndpointFleetStatus,
		EndpointPartnerAccounts, EndpointAllFleet:
		return true
	}
	return false
}

func (e Endpoint) fleet() bool { return e != EndpointToken && e != EndpointAuthorize }

// Fault is an injected misbehaviour of one endpoint.
//
// Without HoldAfterCommit a fault that sets Status, Drop or Malformed
// replaces the answer and the request is not processed; a fault with only
// Latency delays a normal answer. With HoldAfterCommit the request is
// processed (a refresh rotates the token), the answer held back, and then
// sent — or replaced by Status/Drop/Malformed if those are set too.
type Fault struct {
	Status          int           // answer with this status (and Body, or a default body)
	Body            string        // raw body for Status
	RetryAfter      string        // Retry-After header value
	Latency         time.Duration // real time to wait before anything else
	Drop            bool          // close the connection without an answer (Go's Transport silently retries an idempotent request once when a reused connection closes so; use Times: 2 or a POST)
	Malformed       bool          // 200 with a truncated JSON body
	HoldAfterCommit time.Duration // process, then wait this long before answering
	Times           int           // how many calls it applies to; 0 means 1
	// CarFault, for EndpointSignedCommand, makes the car answer 200 with a
	// RoutableMessage whose signedMessageStatus carries this fault (a
	// MessageFault_E name such as "BUSY", "INTERNAL" or "REMOTE_ACCESS_DISABLED",
	// with or without the MESSAGEFAULT_ERROR_ prefix) instead of handling the
	// message: nothing runs and no counter is spent. A synchronization fault
	// (INVALID_SIGNATURE, INVALID_TOKEN_OR_COUNTER, INCORRECT_EPOCH,
	// TIME_EXPIRED, TIME_TO_LIVE_TOO_LONG) on a command from a paired key
	// also carries fresh session info. An unknown name answers INTERNAL.
	// Other endpoints ignore it (the fault is still used up). Status, Drop
	// and Malformed take precedence.
	CarFault string
}

// carFaultKey carries a Fault.CarFault to the signed_command handler.
type carFaultKey struct{}

func (f Fault) replaces() bool { return f.Status != 0 || f.Drop || f.Malformed }

type pendingFault struct {
	f    Fault
	left int
}

type faultTable struct {
	mu      sync.Mutex
	queue   map[Endpoint][]*pendingFault
	latency map[Endpoint]time.Duration
}

func (t *faultTable) init() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queue = map[Endpoint][]*pendingFault{}
	t.latency = map[Endpoint]time.Duration{}
}

// take consumes one use of the first fault for ep (then of "*" for Fleet endpoints).
func (t *faultTable) take(ep Endpoint) (Fault, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := []Endpoint{ep}
	if ep.fleet() {
		keys = append(keys, EndpointAllFleet)
	}
	for _, k := range keys {
		q := t.queue[k]
		if len(q) == 0 {
			continue
		}
		pf := q[0]
		pf.left--
		if pf.left <= 0 {
			t.queue[k] = q[1:]
		}
		return pf.f, true
	}
	return Fault{}, false
}

func (t *faultTable) latencyFor(ep Endpoint) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d, ok := t.latency[ep]; ok {
		return d
	}
	if ep.fleet() {
		return t.latency[EndpointAllFleet]
	}
	return 0
}

// InjectFault queues f for endpoint; faults for one endpoint apply in the
// order injected, each for f.Times calls. A specific endpoint's faults are
// used before those of "*".
func (s *Sim) InjectFault(endpoint Endpoint, f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.queue[endpoint] = append(s.faults.queue[endpoint], &pendingFault{f: f, left: f.Times})
}

// SetLatency adds a persistent real-time delay to every call of endpoint
// ("*": every Fleet endpoint without its own setting); 0 removes it.
func (s *Sim) SetLatency(endpoint Endpoint, d time.Duration) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if d <= 0 {
		delete(s.faults.latency, endpoint)
		return
	}
	s.faults.latency[endpoint] = d
}

// ClearFaults removes every pending fault and every latency setting.
func (s *Sim) ClearFaults() { s.faults.init() }

// withFaults runs handle for endpoint ep under the configured latency and the
// next pending fault. onReplaced is told the status of an answer a fault
// made up instead of handle (0 for a dropped connection), for counting.
func (s *Sim) withFaults(ep Endpoint, w http.ResponseWriter, r *http.Request, handle http.HandlerFunc, onReplaced func(status int)) {
	s.sleepCtx(r.Context(), s.faults.latencyFor(ep))
	f, ok := s.faults.take(ep)
	if !ok {
		handle(w, r)
		return
	}
	s.log.Debug("fault injected", zap.String("endpoint", string(ep)), zap.Int("status", f.Status),
		zap.Bool("drop", f.Drop), zap.Bool("malformed", f.Malformed), zap.Duration("hold_after_commit", f.HoldAfterCommit), zap.String("car_fault", f.CarFault))
	s.sleepCtx(r.Context(), f.Latency)
	if f.CarFault != "" {
		r = r.WithContext(context.WithValue(r.Context(), carFaultKey{}, f.CarFault))
	}
	if f.HoldAfterCommit > 0 {
		buf := &bufferedResponse{header: http.Header{}}
		handle(buf, r)
		s.sleepCtx(r.Context(), f.HoldAfterCommit)
		if !f.replaces() {
			buf.flushTo(w)
			return
		}
		s.answerFault(ep, w, f, buf.body.Bytes())
		return
	}
	if !f.replaces() {
		handle(w, r)
		return
	}
	switch {
	case f.Drop:
		onReplaced(0)
	case f.Malformed:
		onReplaced(http.StatusOK)
	default:
		onReplaced(f.Status)
	}
	s.answerFault(ep, w, f, nil)
}

// answerFault writes the fault's answer; real is the processed answer's body, if any.
func (s *Sim) answerFault(ep Endpoint, w http.ResponseWriter, f Fault, real []byte) {
	if f.Drop {
		dropConnection(w)
		return
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	if f.Malformed {
		body := real
		if len(body) < 4 {
			if ep.fleet() {
				body = []byte(`{"response":{"id":1,"vin":"`)
			} else {
				body = []byte(`{"access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJ`)
			}
		} else {
			body = body[:len(body)/2]
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return
	}
	body := f.Body
	if body == "" {
		text := strings.ToLower(http.StatusText(f.Status))
		if text == "" {
			text = fmt.Sprintf("status %d", f.Status)
		}
		if ep.fleet() {
			body = fmt.Sprintf(`{"response":null,"error":%q,"error_description":""}`, text)
		} else {
			body = fmt.Sprintf(`{"error":%q,"error_description":"injected fault"}`, strings.ReplaceAll(text, " ", "_"))
		}
	}
	w.WriteHeader(f.Status)
	_, _ = w.Write([]byte(body))
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// Not hijackable (HTTP/2, a recorder): abort the response instead.
	panic(http.ErrAbortHandler)
}

// bufferedResponse records an answer so it can be held back or mangled.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) flushTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
