package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/logging"
)

// Service is what a main hands to Main: how to log and listen, and how to
// build the handler once the logger exists.
type Service struct {
	Name      string // "worker", "scout": the service field of every log line
	Version   string
	Port      string // $PORT
	LogFormat string // $LOG_FORMAT, already validated
	// Build wires the service; close releases what it opened.
	Build func(ctx context.Context, logger *zap.Logger) (h http.Handler, close func() error, err error)
}

// Main is the life of a service process: set up logging, open the listener
// before building (a port problem is reported first and fast), build, serve
// until ctx ends (SIGTERM), then stop gracefully and release.
func Main(ctx context.Context, s Service) error {
	format, err := logging.ParseFormat(s.LogFormat)
	if err != nil {
		return err
	}
	logger := logging.New(logging.Options{Format: format, Service: s.Name, Version: s.Version})
	defer func() { _ = logger.Sync() }()
	ln, err := Listen(s.Port)
	if err != nil {
		return err
	}
	h, closeFn, err := s.Build(ctx, logger)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer func() { _ = closeFn() }()
	return New(ln, h, logger, Options{}).Serve(ctx)
}

// Exit runs a command's body with a context that ends on SIGTERM (Cloud
// Run's stop) or Ctrl-C, and exits 1 with "name: error" on stderr when it
// fails: the part every main shares.
func Exit(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
