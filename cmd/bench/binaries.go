package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

const (
	benchBearer = "bench-shared-bearer-token-000001"
	homeLat     = "52.231838"
	homeLon     = "21.005995"
	coldRuns    = 10
)

// benchBinaries builds the worker and the scout as `make build` does and
// measures their size and their cold start.
func benchBinaries(ctx context.Context, b *bench) error {
	for _, name := range []string{"worker", "scout"} {
		out := filepath.Join(b.dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "disable_grpc_modules", "-ldflags", "-s -w", "-o", out,
			"github.com/offpeak-charging/offpeak/cmd/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", name, err, msg)
		}
		info, err := os.Stat(out)
		if err != nil {
			return err
		}
		if name == "worker" {
			b.workerBin = out
		} else {
			b.scoutBin = out
		}
		b.add(name+"_binary_mb", mib(info.Size()), "MB",
			fmt.Sprintf("size of the static %s binary (`CGO_ENABLED=0 -trimpath -tags disable_grpc_modules -ldflags \"-s -w\"`, as `make build` and the images), MiB", name))
	}

	sim := fleetsim.New(fleetsim.Options{})
	simURL, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sim.Close()
	for _, name := range []string{"worker", "scout"} {
		bin := b.workerBin
		if name == "scout" {
			bin = b.scoutBin
		}
		var runs []time.Duration
		for i := 0; i < coldRuns; i++ {
			d, err := coldStart(ctx, bin, serviceEnv(b.dir, simURL))
			if err != nil {
				return fmt.Errorf("%s cold start: %w", name, err)
			}
			runs = append(runs, d)
		}
		b.add(name+"_cold_start_ms", ms(median(runs)), "ms",
			fmt.Sprintf("exec of the %s binary until `GET /health` answers 200 (polled every 5 ms), median of %d", name, coldRuns))
	}
	return nil
}

// serviceEnv is a complete environment for either service on loopback
// with file stores under dir.
func serviceEnv(dir, simURL string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"SECRETS_BACKEND=file", "SECRETS_DIR=" + filepath.Join(dir, "secrets"),
		"STATE_BACKEND=file", "STATE_DIR=" + filepath.Join(dir, "state"),
		"TESLA_AUTH_URL=" + simURL + "/oauth2/v3/token", "TESLA_FLEET_API_URL=" + simURL,
		"WORKER_AUTH=token", "WORKER_AUTH_TOKEN=" + benchBearer,
		"SCOUT_AUTH=token", "SCOUT_AUTH_TOKEN=" + benchBearer, "WORKER_URL=http://127.0.0.1:9",
		"HOME_LAT=" + homeLat, "HOME_LON=" + homeLon, "LOG_FORMAT=json",
	}
}

// process is a started service binary.
type process struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

// startService runs bin on a free port and waits until /health answers
// 200; it returns how long that took from the exec.
func startService(ctx context.Context, bin string, env []string) (*process, time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	p := &process{cmd: exec.Command(bin), url: "http://127.0.0.1:" + port, done: make(chan error, 1)}
	p.cmd.Env = append(append([]string(nil), env...), "PORT="+port)
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, 0, err
	}
	go func() { p.done <- p.cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(p.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, time.Since(start), nil
			}
		}
		select {
		case err := <-p.done:
			return nil, 0, fmt.Errorf("%s exited before answering /health: %v", filepath.Base(bin), err)
		case <-ctx.Done():
			p.stop()
			return nil, 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Second {
			p.stop()
			return nil, 0, errors.New("no answer on /health within 30 s")
		}
	}
}

// stop sends SIGTERM, as Cloud Run does, and waits.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func coldStart(ctx context.Context, bin string, env []string) (time.Duration, error) {
	p, d, err := startService(ctx, bin, env)
	if err != nil {
		return 0, err
	}
	p.stop()
	return d, nil
}

// rssMiB reads a process's resident set size from /proc.
func rssMiB(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return round1(kb / 1024), nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

// percentile is the nearest-rank percentile.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return round1(float64(d) / float64(time.Millisecond)) }

func mib(n int64) float64 { return round1(float64(n) / (1 << 20)) }

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
