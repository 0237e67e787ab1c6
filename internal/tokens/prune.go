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
// It keeps the newest KeepVersions whatever their age, every version younger
// than GraceKeep (a crash may need its refresh token inside Tesla's 24 h
// grace), and never touches a version newer than the newest good one (another
// writer may just have added it). It returns the destroyed version ids.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	cur, ver, err := m.readLatest(ctx)
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
	for _, v := range versions { // newest first
		n := versionNumber(v.ID)
		if n >= good || kept < m.cfg.KeepVersions {
			kept++
			continue
		}
		if v.Created.IsZero() || now.Sub(v.Created) < m.cfg.GraceKeep {
			continue // unknown age or still inside the grace window
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
