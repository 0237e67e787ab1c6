package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func buildScout(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scout")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func TestScoutProcess(t *testing.T) {
	t.Parallel()
	bin := buildScout(t)
	base := []string{"PATH=" + os.Getenv("PATH"), "SECRETS_DIR=" + t.TempDir(), "STATE_DIR=" + t.TempDir(),
		"HOME_LAT=52.23", "HOME_LON=21.01", "WORKER_URL=http://127.0.0.1:9", "WORKER_AUTH=token",
		"WORKER_AUTH_TOKEN=scout-test-token-0000001", "SCOUT_AUTH=token", "SCOUT_AUTH_TOKEN=scout-test-token-0000002"}

	t.Run("a missing variable is named", func(t *testing.T) {
		for want, drop := range map[string]string{"WORKER_URL": "WORKER_URL=", "HOME_LAT": "HOME_LAT=", "SCOUT_AUTH_TOKEN": "SCOUT_AUTH_TOKEN="} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = append(append([]string{}, base...), "PORT="+freePort(t), drop)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			cancel()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), want) {
				t.Errorf("without %s: exit %v, stderr %q", want, err, stderr.String())
			}
		}
	})

	t.Run("SIGTERM stops it cleanly", func(t *testing.T) {
		port := freePort(t)
		cmd := exec.Command(bin)
		cmd.Env = append(append([]string{}, base...), "PORT="+port)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		healthy := false
		for i := 0; i < 1000 && !healthy; i++ {
			if resp, err := http.Get("http://127.0.0.1:" + port + "/health"); err == nil {
				resp.Body.Close()
				healthy = resp.StatusCode == 200
			} else {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if !healthy {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("scout never healthy:\n%s", logs.String())
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil || !strings.Contains(logs.String(), `"stopped"`) {
			t.Errorf("exit %v, logs:\n%s", err, logs.String())
		}
	})
}
