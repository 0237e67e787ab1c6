package server

import (
	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"
)

// NewRouter returns a chi router with the middleware both services share,
// in the order that makes each work: the logger outermost (it sees the final
// status, including a recovered panic's 500), then panic recovery, then the
// body limit. Unknown paths and wrong methods answer with the error shape.
func NewRouter(logger *zap.Logger, projectID string) chi.Router {
	r := chi.NewRouter()
	r.Use(RequestLogger(logger, projectID), Recoverer(logger), BodyLimit(DefaultMaxBody))
	r.NotFound(NotFound)
	r.MethodNotAllowed(MethodNotAllowed)
	return r
}
