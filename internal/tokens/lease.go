package tokens

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sethvargo/go-retry"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// acquire takes the writer lease, waiting while another writer holds it.
// Inside the process, flights of different kinds (ensure, force, migrate,
// login, a Fleet 401) take turns on a one-slot semaphore first: the store's
// lease may be re-entrant for one holder, and two of our own flights must
// no more spend a refresh token together than two instances may. While
// waiting it re-reads: when the other writer has stored a pair that
// satisfies w, there is nothing left to do. Tries are a doubling pause
// apart, from 25 ms to at most 1 s, for at most LeaseWait.
//
// The lease is renewed every LeaseRenewEvery while the flight runs, and
// every write under it first proves it is still held (heldLease.check).
func (m *Manager) acquire(ctx context.Context, w want) (*heldLease, *Result, error) {
	wctx, cancel := context.WithTimeout(ctx, m.cfg.LeaseWait)
	defer cancel()
	var (
		held    *heldLease
		res     *Result
		tried   bool
		settled bool // the last attempt ended the wait: a lease, a result, or a store failure
	)
	backoff := retry.WithCappedDuration(time.Second, retry.NewExponential(25*time.Millisecond))
	err := retry.Do(wctx, backoff, func(ctx context.Context) error {
		tried = true
		var err error
		held, res, err = m.tryAcquire(ctx, w)
		if errors.Is(err, secrets.ErrLeaseHeld) {
			return retry.RetryableError(err)
		}
		settled = true
		return err
	})
	switch {
	case settled:
		return held, res, err
	case !tried: // ctx had ended already: what the store would have said
		return nil, nil, storeErr("take lease on", m.cfg.FleetSecret, err)
	default:
		return nil, nil, fmt.Errorf("%w (waited %s)", ErrBusy, m.cfg.LeaseWait)
	}
}

// tryAcquire is one attempt of acquire: the writer slot and the store's
// lease, or else a look at whether the writer that holds either has stored
// a pair that satisfies w. secrets.ErrLeaseHeld means wait and try again.
func (m *Manager) tryAcquire(ctx context.Context, w want) (*heldLease, *Result, error) {
	err := secrets.ErrLeaseHeld
	select {
	case m.writer <- struct{}{}:
		var lease secrets.Lease
		if lease, err = m.store.TryLease(ctx, m.cfg.FleetSecret, m.cfg.Holder, m.cfg.LeaseTTL); err == nil {
			return m.hold(lease), nil, nil
		}
		<-m.writer
	default:
	}
	if !errors.Is(err, secrets.ErrLeaseHeld) {
		return nil, nil, storeErr("take lease on", m.cfg.FleetSecret, err)
	}
	if cur, ver, rerr := m.read(ctx, false); rerr == nil && m.satisfied(cur, ver, w, m.clock.Now()) {
		res := none(cur, ver)
		return nil, &res, nil
	}
	return nil, nil, err
}

// heldLease is the store's lease plus this process's writer slot, renewed
// in the background while the flight runs.
type heldLease struct {
	lease secrets.Lease
	slot  chan struct{}
	log   *zap.Logger
	stop  chan struct{}
	done  chan struct{}

	mu     sync.Mutex // one renewal at a time
	lost   error      // set once a renewal found the lease taken over
	proven time.Time  // when the store last confirmed the lease (monotonic)
}

func (m *Manager) hold(lease secrets.Lease) *heldLease {
	l := &heldLease{lease: lease, slot: m.writer, log: m.log, stop: make(chan struct{}), done: make(chan struct{}),
		proven: time.Now()}
	go l.renewEvery(m.cfg.LeaseRenewEvery)
	return l
}

// recentProof is how old a confirmation of the lease may be before a
// refresh token is spent under it: taking the lease is one, and Secret
// Manager allows only about two updates of a secret a second. The check
// before a write is always made afresh.
const recentProof = 5 * time.Second

// checkRecent is check, unless the store confirmed the lease within maxAge.
func (l *heldLease) checkRecent(ctx context.Context, maxAge time.Duration) error {
	l.mu.Lock()
	ok := l.lost == nil && time.Since(l.proven) < maxAge
	l.mu.Unlock()
	if ok {
		return nil
	}
	return l.check(ctx)
}

func (l *heldLease) renewEvery(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := l.check(ctx)
			cancel()
			if err != nil && errors.Is(err, secrets.ErrLeaseLost) {
				return
			}
			if err != nil {
				l.log.Warn("renewing the token lease failed; trying again", zap.Error(err))
			}
		}
	}
}

// check renews the lease now: nil while it is still ours. Once another
// writer has taken it over it is ErrBusy wrapping secrets.ErrLeaseLost,
// and stays so; a store failure is returned as it is (retry).
func (l *heldLease) check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	err := l.lease.Renew(ctx)
	if err == nil {
		l.proven = time.Now()
		return nil
	}
	if errors.Is(err, secrets.ErrLeaseLost) {
		l.lost = fmt.Errorf("%w: the token lease was taken over while this refresh ran (it stalled longer than the lease): %w", ErrBusy, err)
		l.log.Error("lost the token lease to another writer; nothing more is written under it", zap.Error(err))
		return l.lost
	}
	return storeErr("renew the lease on", "the token secret", err)
}

func (l *heldLease) Release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	defer func() { <-l.slot }()
	return l.lease.Release(ctx)
}

func (m *Manager) release(lease *heldLease) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lease.Release(ctx); err != nil {
		m.log.Warn("releasing the token lease failed; it expires by itself", zap.Error(err))
	}
}
