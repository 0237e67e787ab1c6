package scout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// Errors of WorkerClient.
var (
	// ErrWorkerUnavailable: the worker could not be reached or answered 5xx;
	// a trigger stays pending and is retried.
	ErrWorkerUnavailable = errors.New("worker unavailable")
	// ErrWorkerRejected: the worker answered 4xx (bad request, auth).
	ErrWorkerRejected = errors.New("worker rejected the request")
	// ErrNeedsOperator: the worker says a person must act before a cycle can
	// change the car (key not paired, no key, bad key, app not
	// registered…); the message names the fix. Retried a few times, in case
	// the owner just fixed it, never for hours.
	ErrNeedsOperator = errors.New("worker reports a problem only the operator can fix")
	// ErrReauthRequired: the worker says the Tesla chain needs a new login.
	ErrReauthRequired = errors.New("worker reports that a new Tesla login is needed (run `fleetctl login`)")
)

// operatorCodes are the worker's error codes that only a person can fix
// (internal/server: the command path's codes).
var operatorCodes = map[string]bool{
	"key_not_paired": true, "key_missing": true, "key_invalid": true, "key_rejected": true,
	"signing_disabled": true, "app_not_registered": true,
}

// WorkerClient calls the worker's API. Its http.Client authenticates
// (svcauth.NewClient: an ID token in iam mode, the bearer in token mode).
type WorkerClient struct {
	BaseURL string
	HTTP    *http.Client
	// RefreshTimeout and CycleTimeout bound each call; they fit inside the
	// tick's deadline (see the README's timeout table).
	RefreshTimeout time.Duration
	CycleTimeout   time.Duration
}

// CycleRequest is POST /run-cycle's body.
type CycleRequest struct {
	VIN      string      `json:"vin"`
	Reason   string      `json:"reason"`
	Observed Observation `json:"observed"`
}

// CycleAnswer is the part of the worker's answer the scout uses.
type CycleAnswer struct {
	Status   string `json:"status"`
	Asleep   bool   `json:"asleep"`
	Changed  bool   `json:"changed"`
	Woke     bool   `json:"woke"`
	Commands struct {
		Added   int `json:"added"`
		Removed int `json:"removed"`
	} `json:"commands"`
}

// RefreshTokens implements TokenRefresher: the answer's "version" is the
// one the worker stored (or found valid).
func (w *WorkerClient) RefreshTokens(ctx context.Context, req RefreshRequest) (string, error) {
	body := map[string]any{"reason": req.Reason, "requested_by": "scout", "force": req.Force}
	if req.Rejected != "" {
		body["rejected_version"] = req.Rejected
	}
	var ans struct {
		Version string `json:"version"`
	}
	err := w.post(ctx, "/refresh-tokens", body, &ans, w.RefreshTimeout)
	return ans.Version, err
}

// RunCycle asks the worker to run the charging cycle for one car.
func (w *WorkerClient) RunCycle(ctx context.Context, req CycleRequest) (CycleAnswer, error) {
	var ans CycleAnswer
	err := w.post(ctx, "/run-cycle", req, &ans, w.CycleTimeout)
	return ans, err
}

func (w *WorkerClient) post(ctx context.Context, path string, in, out any, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.BaseURL+path, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWorkerRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	// Never follow a redirect, whatever client this was given: its
	// transport puts the ID token or bearer on every request it sends.
	resp, err := httpclient.NoRedirects(w.HTTP).Do(req)
	if err != nil {
		var redirect *httpclient.RedirectError
		if errors.As(err, &redirect) {
			// A moved worker is WORKER_URL's problem: retrying will not help.
			return fmt.Errorf("%w: POST %s: %w (check WORKER_URL)", ErrWorkerRejected, path, redirect)
		}
		return fmt.Errorf("%w: POST %s: %v", ErrWorkerUnavailable, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("%w: POST %s: unreadable answer", ErrWorkerUnavailable, path)
			}
		}
		return nil
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	msg := fmt.Sprintf("POST %s: HTTP %d %s: %s", path, resp.StatusCode, e.Error.Code, strings.TrimSpace(e.Error.Message))
	switch {
	case e.Error.Code == "reauth_required":
		return fmt.Errorf("%w: %s", ErrReauthRequired, msg)
	case operatorCodes[e.Error.Code]:
		return fmt.Errorf("%w: %s", ErrNeedsOperator, msg)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s", ErrWorkerUnavailable, msg)
	default:
		return fmt.Errorf("%w: %s", ErrWorkerRejected, msg)
	}
}
