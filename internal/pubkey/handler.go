package pubkey

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/server"
)

const (
	// Path is where Tesla (at partner registration) and the owner's phone
	// (at pairing) fetch an app's public key, on the app's domain, over
	// https, expecting 200 and no redirect
	// (reference/vehicle-commands.md §4 step 3).
	Path = "/.well-known/appspecific/com.tesla.3p.public-key.pem"
	// ContentType is what evcc serves the same file as. What Tesla
	// expects is UNCONFIRMED; the body is the PEM either way.
	ContentType = "application/x-pem-file"
	// CacheControl lets a cache keep the key a few minutes: a new key
	// (`fleetctl keygen --force`) is seen soon after it is served.
	CacheControl = "public, max-age=300"
	// RetryAfter is what a 503 tells the caller to wait.
	RetryAfter = 30 * time.Second
)

// KeySource gives the key to serve; *Keys is one.
type KeySource interface {
	Current(ctx context.Context) (Public, error)
}

// Deps are what the handler needs.
type Deps struct {
	Keys      KeySource
	Logger    *zap.Logger
	ProjectID string // links request logs to traces
}

// NewHandler serves GET and HEAD on Path and nothing else: other methods
// there answer 405, every other path 404, both in the project's error shape.
// There is no /health either: the service is public, and Cloud Run's
// startup probe checks the port.
func NewHandler(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	r := server.NewRouter(d.Logger, d.ProjectID)
	// chi answers a method it does not know (PROPFIND) itself: the one
	// route's Allow header goes on that answer too.
	r.MethodNotAllowed(methodNotAllowed)
	r.HandleFunc(Path, func(w http.ResponseWriter, req *http.Request) { serveKey(w, req, d.Keys) })
	return r
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	server.MethodNotAllowed(w, r)
}

func serveKey(w http.ResponseWriter, r *http.Request, keys KeySource) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r)
		return
	}
	pub, err := keys.Current(r.Context())
	if err != nil {
		code, msg := contract.CodeStoreUnavailable, "no public key to serve: the key store could not be read; try again later"
		switch {
		case errors.Is(err, ErrNoKey):
			code, msg = contract.CodeKeyMissing, "no public key to serve yet: no command key is stored (fleetctl keygen stores one)"
		case errors.Is(err, ErrKeyInvalid):
			code, msg = contract.CodeKeyInvalid, "no public key to serve: the stored command key is not a PEM P-256 private key"
		}
		// The details (secret name, version, cause) are in the log; the
		// answer says only what a caller can act on.
		server.WriteRetryableError(w, http.StatusServiceUnavailable, code, msg, RetryAfter)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", CacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(pub.PEM)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(pub.PEM)
}
