package devstack

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

// gate sits between the scout and the worker, as the network does in
// production, so tests can take the worker "down" without stopping it.
type gate struct {
	proxy *httputil.ReverseProxy
	down  atomic.Bool
	calls atomic.Int64
}

func newGate(target string) (*gate, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	return &gate{proxy: httputil.NewSingleHostReverseProxy(u)}, nil
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.calls.Add(1)
	if g.down.Load() {
		// What a caller sees of a service that is not there: no answer.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		http.Error(w, "worker down", http.StatusBadGateway)
		return
	}
	g.proxy.ServeHTTP(w, r)
}

// SetWorkerDown makes the worker unreachable for the scout (true) or
// reachable again (false).
func (s *Stack) SetWorkerDown(down bool) { s.gate.down.Store(down) }

// WorkerCalls counts the scout's calls to the worker (including failed ones).
func (s *Stack) WorkerCalls() int64 { return s.gate.calls.Load() }
