// Package server is the HTTP lifecycle both services share: listen on $PORT,
// sensible timeouts, body and header limits, the error shape on every error
// (net/http's own pre-routing answers included), request logging with trace
// correlation, panic recovery, and a graceful shutdown that fits inside
// Cloud Run's 10 s.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Options tune a Server. Zero values take the defaults below.
type Options struct {
	ReadHeaderTimeout time.Duration // default 5 s
	ReadTimeout       time.Duration // default 30 s
	WriteTimeout      time.Duration // default 5 min: a refresh or charging cycle may wait on Tesla
	IdleTimeout       time.Duration // default 120 s
	// ShutdownTimeout bounds the graceful stop. Cloud Run sends SIGKILL 10 s
	// after SIGTERM; 8 s leaves time to flush logs.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; more is a 431
	// with the error shape. Default DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 5*time.Second)
	def(&o.ReadTimeout, 30*time.Second)
	def(&o.WriteTimeout, 5*time.Minute)
	def(&o.IdleTimeout, 120*time.Second)
	def(&o.ShutdownTimeout, 8*time.Second)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return o
}

// Server serves one handler on one listener.
type Server struct {
	listener net.Listener
	http     *http.Server
	logger   *zap.Logger
	shutdown time.Duration
}

// Listen opens the listener on all interfaces at port (Cloud Run's $PORT);
// port "0" picks a free one, which tests use.
func Listen(port string) (net.Listener, error) {
	if port == "" {
		port = "8080"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return nil, fmt.Errorf("PORT: %q is not a port number", port)
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return nil, fmt.Errorf("listen on port %s: %w", port, err)
	}
	return ln, nil
}

// New builds a Server. Opening the listener first (Listen) lets a caller
// learn the port before serving, which is how tests start on port 0.
func New(ln net.Listener, handler http.Handler, logger *zap.Logger, opts Options) *Server {
	opts = opts.withDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Server{
		// The answers net/http gives before routing get the error shape too.
		listener: &preRouteListener{Listener: ln, maxHeaderBytes: opts.MaxHeaderBytes, logger: logger.Named("http")},
		logger:   logger,
		shutdown: opts.ShutdownTimeout,
		http: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: opts.ReadHeaderTimeout,
			ReadTimeout:       opts.ReadTimeout,
			WriteTimeout:      opts.WriteTimeout,
			IdleTimeout:       opts.IdleTimeout,
			MaxHeaderBytes:    opts.MaxHeaderBytes,
			ErrorLog:          zap.NewStdLog(logger.Named("http")),
		},
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Serve answers requests until ctx is cancelled (SIGTERM), then stops
// accepting and lets in-flight requests finish within the shutdown timeout.
// Request contexts are deliberately not derived from ctx: a token refresh
// in flight when SIGTERM arrives should complete and be stored, not be cut
// off half way.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	s.logger.Info("listening", zap.String("addr", s.listener.Addr().String()))

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.logger.Info("shutting down", zap.Duration("grace", s.shutdown))
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdown)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if err != nil {
		// The grace ran out: cut the remaining connections rather than be
		// killed mid-write by SIGKILL.
		_ = s.http.Close()
		s.logger.Warn("shutdown grace expired; closed remaining connections", zap.Error(err))
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serr)
	}
	s.logger.Info("stopped")
	return err
}
