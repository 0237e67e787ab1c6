package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

const (
	herdSize         = 1000
	herdTokenLatency = 200 * time.Millisecond
)

// benchHerd fires 1000 concurrent POST /refresh-tokens at a worker process
// whose stored token has expired, with Tesla's token endpoint answering in
// 200 ms: how many exchanges and versions it costs, how long callers wait,
// and the worker's memory afterwards.
func benchHerd(ctx context.Context, b *bench) error {
	if b.workerBin == "" {
		return fmt.Errorf("no worker binary")
	}
	sim := fleetsim.New(fleetsim.Options{})
	simURL, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sim.Close()
	sim.SetLatency(fleetsim.EndpointToken, herdTokenLatency)

	dir := filepath.Join(b.dir, "herd")
	store, err := secrets.NewFile(filepath.Join(dir, "secrets"), clock.Real{})
	if err != nil {
		return err
	}
	p := sim.Login()
	expired, err := tokens.Pair{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, ExpiresAt: time.Now().Add(-time.Minute)}.Marshal()
	if err != nil {
		return err
	}
	for name, v := range map[string][]byte{"tesla-client-id": []byte(fleetsim.DefaultClientID),
		"tesla-client-secret": []byte(fleetsim.DefaultClientSecret), "fleet-tokens": expired} {
		if _, err := store.Add(ctx, name, v); err != nil {
			return err
		}
	}
	w, _, err := startService(ctx, b.workerBin, serviceEnv(dir, simURL))
	if err != nil {
		return err
	}
	defer w.stop()

	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: herdSize, MaxConnsPerHost: 0}}
	lat := make([]time.Duration, herdSize)
	codes := make([]int, herdSize)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < herdSize; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-gate
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.url+"/refresh-tokens", bytes.NewReader([]byte(`{"reason":"herd"}`)))
			req.Header.Set("Authorization", "Bearer "+benchBearer)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			lat[i] = time.Since(start)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}(i)
	}
	close(gate)
	wg.Wait()
	failed := 0
	for _, c := range codes {
		if c != http.StatusOK {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d of %d herd requests did not answer 200\n", failed, herdSize)
	}

	c := sim.Counters().TokenExchanges
	latest, err := store.Latest(ctx, "fleet-tokens")
	if err != nil {
		return err
	}
	written, _ := strconv.Atoi(latest.ID)
	b.add("refresh_herd_exchanges", float64(c[fleetsim.OutcomeRefreshOK]+c[fleetsim.OutcomeGraceReuse]), "exchanges",
		fmt.Sprintf("token-endpoint exchanges for %d concurrent `POST /refresh-tokens` on an expired token (Tesla answering in %s): one flight, everyone else waits for it", herdSize, herdTokenLatency))
	b.add("refresh_herd_versions_written", float64(written-1), "versions", "fleet-tokens versions that herd wrote")
	b.add("refresh_herd_p50_ms", ms(percentile(lat, 50)), "ms", "median time a herd caller waited for its answer (includes the 200 ms exchange)")
	b.add("refresh_herd_p99_ms", ms(percentile(lat, 99)), "ms", "99th percentile of the same")
	rss, err := rssMiB(w.cmd.Process.Pid)
	if err != nil {
		return err
	}
	b.add("worker_rss_mb", rss, "MB", "resident memory of the worker process right after the herd (VmRSS), MiB")
	if failed > 0 {
		return fmt.Errorf("%d herd requests failed", failed)
	}
	return nil
}
