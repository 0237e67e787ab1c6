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

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
)

// Errors of WorkerClient, besides patrol.ErrNeedsOperator for the answers
// only a person can fix (contract.NeedsOperator).
var (
	// ErrWorkerUnavailable: the worker could not be reached or answered 5xx;
	// a trigger stays pending and is retried.
	ErrWorkerUnavailable = errors.New("worker unavailable")
	// ErrWorkerRejected: the worker answered 4xx (bad request, auth).
	ErrWorkerRejected = errors.New("worker rejected the request")
	// ErrReauthRequired: the worker says the Tesla chain needs a new login.
	ErrReauthRequired = errors.New("worker reports that a new Tesla login is needed (run `fleetctl login`)")
)

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

// RefreshTokens implements TokenRefresher: the answer's "version" is the
// one the worker stored (or found valid).
func (w *WorkerClient) RefreshTokens(ctx context.Context, req contract.RefreshRequest) (string, error) {
	req.RequestedBy = "scout"
	var ans contract.TokenActionResponse
	err := w.post(ctx, contract.PathRefreshTokens, req, &ans, w.RefreshTimeout)
	return ans.Version, err
}

// RunCycle asks the worker to run the charging cycle for one car.
func (w *WorkerClient) RunCycle(ctx context.Context, req contract.CycleRequest) (contract.CycleResponse, error) {
	var ans contract.CycleResponse
	err := w.post(ctx, contract.PathRunCycle, req, &ans, w.CycleTimeout)
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
	return answerError(path, resp.StatusCode, raw)
}

// answerError turns the worker's error answer into the client's kinds: the
// code says when a person must act; otherwise the status says whether a
// later try may succeed.
func answerError(path string, status int, raw []byte) error {
	var e contract.ErrorBody
	_ = json.Unmarshal(raw, &e)
	msg := fmt.Sprintf("POST %s: HTTP %d %s: %s", path, status, e.Error.Code, strings.TrimSpace(e.Error.Message))
	switch {
	case e.Error.Code == contract.CodeReauthRequired:
		return fmt.Errorf("%w: %s", ErrReauthRequired, msg)
	case contract.NeedsOperator(e.Error.Code):
		return fmt.Errorf("%w: %s", patrol.ErrNeedsOperator, msg)
	case status >= 500 || status == http.StatusConflict || status == http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s", ErrWorkerUnavailable, msg)
	default:
		return fmt.Errorf("%w: %s", ErrWorkerRejected, msg)
	}
}
