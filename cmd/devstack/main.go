// Command devstack is `make run`: it starts the Tesla simulator, the worker
// and the scout on loopback with file stores under .local/, seeds a token
// chain, and plays a scripted day — a tick every second stands for Cloud
// Scheduler's 15 minutes — printing what each service did and why.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	dir := flag.String("dir", ".local", "where the file stores and service logs go (wiped at start)")
	pause := flag.Duration("pause", time.Second, "real time between ticks")
	ticks := flag.Int("ticks", 96, "ticks to play (96 = one day of 15-minute ticks)")
	flag.Parse()

	root := filepath.Join(*dir, "devstack")
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(root, "services.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logger := logging.New(logging.Options{Format: logging.FormatConsole, Output: logFile, Level: zap.InfoLevel})

	st, err := devstack.Start(ctx, devstack.Options{Dir: root, Clock: clock.NewManual(devstack.StoryStart), Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("stopping the services…")
		if err := st.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "stop:", err)
		}
	}()
	if err := st.SeedTokens(ctx); err != nil {
		return err
	}
	fmt.Printf(`offpeak local stack
  simulator  %s
  worker     %s
  scout      %s
  stores     %s (ls/cat them), service logs in %s

One tick per %s stands for 15 minutes. Ctrl-C stops everything.

`, st.SimURL, st.WorkerURL, st.ScoutURL, root, logPath, *pause)
	_, err = devstack.Play(ctx, st, os.Stdout, devstack.PlayOptions{Ticks: *ticks, Pause: *pause, PairLate: true})
	return err
}
