package fleetsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

// rawQueryKey keeps a request's query as sent: vehicle_data's endpoints
// parameter is ';'-separated, which net/http's query parsing drops.
type rawQueryKey struct{}

// rawQuery is the query string as the client sent it.
func rawQuery(r *http.Request) string {
	if q, ok := r.Context().Value(rawQueryKey{}).(string); ok {
		return q
	}
	return r.URL.RawQuery
}

// queryParam reads one parameter from the raw query, treating ';' as data.
func queryParam(r *http.Request, name string) string {
	for _, kv := range strings.Split(rawQuery(r), "&") {
		k, v, _ := strings.Cut(kv, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != name {
			continue
		}
		if val, err := url.QueryUnescape(v); err == nil {
			return val
		}
		return v
	}
	return ""
}

// routes builds the simulator's handler: token endpoints, Fleet API, admin API.
func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth2/v3/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, tokenError{"invalid_request", "POST only"})
			return
		}
		s.Tick()
		s.withFaults(EndpointToken, w, r, s.handleToken, func(int) { s.counters.tokenExchange(OutcomeFault) })
	})
	mux.HandleFunc("/oauth2/v3/authorize", func(w http.ResponseWriter, r *http.Request) {
		s.withFaults(EndpointAuthorize, w, r, s.handleAuthorize, func(int) {})
	})
	mux.HandleFunc("/api/1/", s.handleFleet)

	mux.HandleFunc("GET /sim/cars", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Cars())
	})
	mux.HandleFunc("GET /sim/cars/{vin}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.Car(r.PathValue("vin"))
		if !ok {
			adminError(w, http.StatusNotFound, "unknown car")
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("PUT /sim/cars/{vin}", s.adminPutCar)
	mux.HandleFunc("GET /sim/cars/{vin}/schedules", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.Car(r.PathValue("vin")); !ok {
			adminError(w, http.StatusNotFound, "unknown car")
			return
		}
		list := s.Schedules(r.PathValue("vin"))
		if list == nil {
			list = []ChargeSchedule{}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /sim/cars/{vin}/energy", func(w http.ResponseWriter, r *http.Request) {
		st, ok := s.Energy(r.PathValue("vin"))
		if !ok {
			adminError(w, http.StatusNotFound, "unknown car")
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /sim/cars/{vin}/keys", s.adminListKeys)
	mux.HandleFunc("POST /sim/cars/{vin}/keys", s.adminPairKey)
	mux.HandleFunc("DELETE /sim/cars/{vin}/keys", s.adminUnpairKey)
	mux.HandleFunc("DELETE /sim/cars/{vin}/keys/{key}", s.adminUnpairKey)
	mux.HandleFunc("POST /sim/cars/{vin}/reboot", func(w http.ResponseWriter, r *http.Request) {
		if err := s.RebootCar(r.PathValue("vin")); err != nil {
			adminError(w, http.StatusNotFound, "unknown car")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /sim/app-key", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"app_public_key": keyView(s.AppPublicKey(), nil)})
	})
	mux.HandleFunc("PUT /sim/app-key", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			PublicKey string `json:"public_key"`
		}
		if !decodeAdmin(w, r, &in) {
			return
		}
		if err := s.SetAppPublicKey([]byte(in.PublicKey)); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"app_public_key": keyView(s.AppPublicKey(), nil)})
	})
	mux.HandleFunc("DELETE /sim/app-key", func(w http.ResponseWriter, r *http.Request) {
		_ = s.SetAppPublicKey(nil)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /sim/pair/{domain}", s.adminPair)
	mux.HandleFunc("GET /sim/partner-accounts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.PartnerAccounts())
	})
	mux.HandleFunc("POST /sim/partner-accounts", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ClientID  string `json:"client_id"`
			Domain    string `json:"domain"`
			PublicKey string `json:"public_key"`
		}
		if !decodeAdmin(w, r, &in) {
			return
		}
		var err error
		if in.ClientID == "" || in.ClientID == s.opts.ClientID {
			err = s.RegisterPartner(in.Domain, []byte(in.PublicKey))
		} else {
			err = s.RegisterOtherApp(in.ClientID, in.Domain, []byte(in.PublicKey))
		}
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.PartnerAccounts())
	})
	mux.HandleFunc("DELETE /sim/partner-accounts/{domain}", func(w http.ResponseWriter, r *http.Request) {
		s.UnregisterPartner(r.PathValue("domain"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /sim/faults", s.adminInjectFault)
	mux.HandleFunc("DELETE /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /sim/latency", s.adminLatency)
	mux.HandleFunc("GET /sim/clock", func(w http.ResponseWriter, r *http.Request) {
		_, manual := s.clock.(*clock.Manual)
		writeJSON(w, http.StatusOK, map[string]any{"now": s.now().Format(time.RFC3339Nano), "manual": manual})
	})
	mux.HandleFunc("POST /sim/clock", s.adminClock)
	mux.HandleFunc("POST /sim/tick", func(w http.ResponseWriter, r *http.Request) {
		s.Tick()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /sim/counters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Counters())
	})
	mux.HandleFunc("POST /sim/counters/reset", func(w http.ResponseWriter, r *http.Request) {
		s.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /sim/login", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		p, _ := s.newChainLocked(s.baseURL(r), DefaultScope)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST /sim/chain-valid", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			RefreshTokens []string `json:"refresh_tokens"`
		}
		if !decodeAdmin(w, r, &in) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"valid": s.ChainValid(in.RefreshTokens...)})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"response": nil, "error": "not_found"})
	})
	// AllowQuerySemicolons also silences net/http's warning about ';' in queries.
	inner := http.AllowQuerySemicolons(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), rawQueryKey{}, r.URL.RawQuery)))
	})
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		adminError(w, http.StatusBadRequest, "unreadable body")
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		adminError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return false
	}
	return true
}

// adminPutCar applies the JSON fields present in the body to the car,
// creating it if it does not exist.
func (s *Sim) adminPutCar(w http.ResponseWriter, r *http.Request) {
	vin := r.PathValue("vin")
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		adminError(w, http.StatusBadRequest, "unreadable body")
		return
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		adminError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	var signing struct {
		CommandSigning *string `json:"command_signing"`
	}
	if err := json.Unmarshal(data, &signing); err == nil && signing.CommandSigning != nil && !validCommandSigning(*signing.CommandSigning) {
		adminError(w, http.StatusBadRequest, `command_signing must be "required", "off" (or "legacy") or "allowed"`)
		return
	}
	if _, ok := s.Car(vin); !ok {
		c := CarState{VIN: vin}
		if err := json.Unmarshal(data, &c); err != nil {
			adminError(w, http.StatusBadRequest, "invalid car: "+err.Error())
			return
		}
		c.VIN = vin
		s.AddCar(c)
	} else {
		var decodeErr error
		_ = s.SetCar(vin, func(c *CarState) {
			next := *c
			if decodeErr = json.Unmarshal(data, &next); decodeErr == nil {
				*c = next
			}
		})
		if decodeErr != nil {
			adminError(w, http.StatusBadRequest, "invalid car: "+decodeErr.Error())
			return
		}
	}
	c, _ := s.Car(vin)
	writeJSON(w, http.StatusOK, c)
}

// faultRequest is the JSON shape of POST /sim/faults.
type faultRequest struct {
	Endpoint          Endpoint `json:"endpoint"`
	Status            int      `json:"status"`
	Body              string   `json:"body"`
	RetryAfter        string   `json:"retry_after"`
	LatencyMS         int      `json:"latency_ms"`
	Drop              bool     `json:"drop"`
	Malformed         bool     `json:"malformed"`
	HoldAfterCommitMS int      `json:"hold_after_commit_ms"`
	Times             int      `json:"times"`
	CarFault          string   `json:"car_fault"`
}

func (s *Sim) adminInjectFault(w http.ResponseWriter, r *http.Request) {
	var in faultRequest
	if !decodeAdmin(w, r, &in) {
		return
	}
	if !in.Endpoint.valid() {
		adminError(w, http.StatusBadRequest, "unknown endpoint "+string(in.Endpoint))
		return
	}
	f := Fault{
		Status: in.Status, Body: in.Body, RetryAfter: in.RetryAfter,
		Latency: time.Duration(in.LatencyMS) * time.Millisecond, Drop: in.Drop, Malformed: in.Malformed,
		HoldAfterCommit: time.Duration(in.HoldAfterCommitMS) * time.Millisecond, Times: in.Times,
		CarFault: in.CarFault,
	}
	if f.CarFault != "" {
		if _, ok := parseMessageFault(f.CarFault); !ok {
			adminError(w, http.StatusBadRequest, "unknown car_fault "+f.CarFault+" (want a MessageFault_E name such as BUSY)")
			return
		}
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 999) {
		adminError(w, http.StatusBadRequest, "status out of range")
		return
	}
	s.InjectFault(in.Endpoint, f)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) adminLatency(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Endpoint  Endpoint `json:"endpoint"`
		LatencyMS int      `json:"latency_ms"`
	}
	if !decodeAdmin(w, r, &in) {
		return
	}
	if !in.Endpoint.valid() {
		adminError(w, http.StatusBadRequest, "unknown endpoint "+string(in.Endpoint))
		return
	}
	s.SetLatency(in.Endpoint, time.Duration(in.LatencyMS)*time.Millisecond)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) adminClock(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Advance string `json:"advance"`
		Set     string `json:"set"`
	}
	if !decodeAdmin(w, r, &in) {
		return
	}
	m, ok := s.clock.(*clock.Manual)
	if !ok {
		adminError(w, http.StatusConflict, "the simulator runs on the real clock")
		return
	}
	switch {
	case in.Advance != "":
		d, err := time.ParseDuration(in.Advance)
		if err != nil || d < 0 {
			adminError(w, http.StatusBadRequest, "advance must be a positive Go duration like 15m")
			return
		}
		m.Advance(d)
	case in.Set != "":
		t, err := time.Parse(time.RFC3339Nano, in.Set)
		if err != nil {
			adminError(w, http.StatusBadRequest, "set must be an RFC 3339 time")
			return
		}
		m.Set(t)
	default:
		adminError(w, http.StatusBadRequest, `give "advance" or "set"`)
		return
	}
	s.Tick()
	writeJSON(w, http.StatusOK, map[string]any{"now": s.now().Format(time.RFC3339Nano), "manual": true})
}

// keyView is how the admin API shows a public key: the point in hex and
// base64 and as PEM. Only public keys are ever shown.
func keyView(point, appKey []byte) map[string]any {
	if point == nil {
		return nil
	}
	v := map[string]any{
		"public_key":        hex.EncodeToString(point),
		"public_key_base64": base64.StdEncoding.EncodeToString(point),
		"pem":               publicKeyPEM(point),
	}
	if appKey != nil {
		v["app_key"] = bytes.Equal(point, appKey)
	}
	return v
}

// adminListKeys is GET /sim/cars/{vin}/keys: the car's public key and its paired keys.
func (s *Sim) adminListKeys(w http.ResponseWriter, r *http.Request) {
	vin := r.PathValue("vin")
	vehicleKey := s.VehiclePublicKey(vin)
	if vehicleKey == nil {
		adminError(w, http.StatusNotFound, "unknown car")
		return
	}
	app := s.AppPublicKey()
	keys := []map[string]any{}
	for _, k := range s.PairedKeys(vin) {
		keys = append(keys, keyView(k, app))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"vin":                vin,
		"vehicle_public_key": keyView(vehicleKey, nil),
		"keys":               keys,
	})
}

// adminPairKey is POST /sim/cars/{vin}/keys {"public_key":"<PEM, hex or base64>"}:
// what approving the pairing link in the Tesla app does.
func (s *Sim) adminPairKey(w http.ResponseWriter, r *http.Request) {
	var in struct {
		PublicKey string `json:"public_key"`
	}
	if !decodeAdmin(w, r, &in) {
		return
	}
	if err := s.PairKey(r.PathValue("vin"), []byte(in.PublicKey)); err != nil {
		adminKeyError(w, err)
		return
	}
	s.adminListKeys(w, r)
}

// adminUnpairKey is DELETE /sim/cars/{vin}/keys/{key} (key in hex or
// URL-safe base64) or DELETE /sim/cars/{vin}/keys {"public_key":"…"}.
func (s *Sim) adminUnpairKey(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "" {
		var in struct {
			PublicKey string `json:"public_key"`
		}
		if !decodeAdmin(w, r, &in) {
			return
		}
		key = in.PublicKey
	}
	if err := s.UnpairKey(r.PathValue("vin"), []byte(key)); err != nil {
		adminKeyError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func adminKeyError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrUnknownCar), errors.Is(err, ErrUnknownKey):
		adminError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrKeychainFull):
		adminError(w, http.StatusConflict, err.Error())
	default:
		adminError(w, http.StatusBadRequest, err.Error())
	}
}
