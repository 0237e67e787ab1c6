package tokens

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// Prune destroys old versions of the token secret: Secret Manager bills every
// version that is not destroyed, and the system this replaces grew to ~370.
// It keeps the newest KeepVersions whatever their age; whatever the keep
// count, every version whose refresh token was spent less than GraceKeep
// ago — its successor, written when the token was spent, is younger than
// GraceKeep — since a crash may need that token inside Tesla's 24 h grace;
// and it never touches a version newer than the newest good one (another
// writer may just have added it). It returns the destroyed version ids.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	cur, ver, err := m.read(ctx, true)
	if err != nil || !cur.Usable() {
		return nil, fmt.Errorf("prune needs a good latest version: %w", err)
	}
	return m.prune(ctx, ver)
}

func (m *Manager) prune(ctx context.Context, goodID string) ([]string, error) {
	versions, err := m.store.Versions(ctx, m.cfg.FleetSecret)
	if err != nil {
		return nil, storeErr("list versions", m.cfg.FleetSecret, err)
	}
	good := versionNumber(goodID)
	now := m.clock.Now()
	var destroyed []string
	var errs []error
	kept := 0
	// successor is when the next newer version was written: when this one's
	// refresh token was spent, at the latest. Above the newest listed one
	// is the version just written, or one the (lagging) listing misses.
	successor := now
	for _, v := range versions { // newest first
		n := versionNumber(v.ID)
		spent := successor
		successor = v.Created
		if v.Created.IsZero() {
			successor = now // unknown: protect the next one down too
		}
		if n >= good || kept < m.cfg.KeepVersions {
			kept++
			continue
		}
		if now.Sub(spent) < m.cfg.GraceKeep {
			continue // its refresh token may still be inside Tesla's grace
		}
		if err := m.store.Destroy(ctx, m.cfg.FleetSecret, v.ID); err != nil && !errors.Is(err, secrets.ErrNotFound) {
			errs = append(errs, fmt.Errorf("destroy version %s: %w", v.ID, err))
			continue
		}
		destroyed = append(destroyed, v.ID)
	}
	if len(destroyed) > 0 {
		m.log.Info("pruned old token versions", zap.Strings("destroyed", destroyed))
	}
	return destroyed, errors.Join(errs...)
}
