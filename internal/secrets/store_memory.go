package secrets

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

// Memory is an in-process Store for tests. It behaves like Secret Manager
// where that matters (numbered versions, a destroyed latest fails access)
// and can be told to fail.
type Memory struct {
	clock clock.Clock

	mu      sync.Mutex
	secrets map[string]*memSecret
	fail    map[string][]error
	calls   map[string]int
}

type memSecret struct {
	versions []memVersion // index i holds version i+1
	lease    *memLease
}

type memVersion struct {
	payload   []byte
	created   time.Time
	destroyed bool
}

type memLease struct {
	holder  string
	expires time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store on clk.
func NewMemory(clk clock.Clock) *Memory {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Memory{clock: clk, secrets: map[string]*memSecret{}, fail: map[string][]error{}, calls: map[string]int{}}
}

// FailNext makes the next n calls of op ("latest", "get", "add", "versions",
// "destroy", "lease") fail with err.
func (m *Memory) FailNext(op string, err error, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 0; i < n; i++ {
		m.fail[op] = append(m.fail[op], err)
	}
}

// Calls counts the calls of op made so far (failed ones included).
func (m *Memory) Calls(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

// enter counts a call and returns the injected failure, if any. Callers hold m.mu.
func (m *Memory) enter(op, secret string) error {
	m.calls[op]++
	if q := m.fail[op]; len(q) > 0 {
		m.fail[op] = q[1:]
		return fmt.Errorf("%s %s (injected): %w", op, secret, q[0])
	}
	return nil
}

// Latest implements Store.
func (m *Memory) Latest(_ context.Context, secret string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter("latest", secret); err != nil {
		return Version{}, err
	}
	s, ok := m.secrets[secret]
	if !ok || len(s.versions) == 0 {
		return Version{}, fmt.Errorf("access %s/latest: %w", secret, ErrNotFound)
	}
	return m.version(secret, s, len(s.versions))
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, secret, id string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter("get", secret); err != nil {
		return Version{}, err
	}
	n, err := strconv.Atoi(id)
	s, ok := m.secrets[secret]
	if err != nil || !ok || n < 1 || n > len(s.versions) {
		return Version{}, fmt.Errorf("access %s/%s: %w", secret, id, ErrNotFound)
	}
	return m.version(secret, s, n)
}

func (m *Memory) version(secret string, s *memSecret, n int) (Version, error) {
	v := s.versions[n-1]
	id := strconv.Itoa(n)
	if v.destroyed {
		return Version{ID: id}, fmt.Errorf("access %s/%s: %w", secret, id, ErrVersionUnavailable)
	}
	return Version{Secret: secret, ID: id, Payload: append([]byte(nil), v.payload...), Created: v.created}, nil
}

// Add implements Store; a secret that does not exist yet is created.
func (m *Memory) Add(_ context.Context, secret string, payload []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter("add", secret); err != nil {
		return "", err
	}
	s, ok := m.secrets[secret]
	if !ok {
		s = &memSecret{}
		m.secrets[secret] = s
	}
	s.versions = append(s.versions, memVersion{payload: append([]byte(nil), payload...), created: m.clock.Now()})
	return strconv.Itoa(len(s.versions)), nil
}

// Versions implements Store.
func (m *Memory) Versions(_ context.Context, secret string) ([]VersionInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter("versions", secret); err != nil {
		return nil, err
	}
	s, ok := m.secrets[secret]
	if !ok {
		return nil, fmt.Errorf("list %s: %w", secret, ErrNotFound)
	}
	var out []VersionInfo
	for i, v := range s.versions {
		if !v.destroyed {
			out = append(out, VersionInfo{ID: strconv.Itoa(i + 1), Created: v.created, State: StateEnabled})
		}
	}
	sort.Slice(out, func(i, j int) bool { return versionNum(out[i].ID) > versionNum(out[j].ID) })
	return out, nil
}

// Destroy implements Store.
func (m *Memory) Destroy(_ context.Context, secret, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter("destroy", secret); err != nil {
		return err
	}
	n, err := strconv.Atoi(id)
	s, ok := m.secrets[secret]
	if err != nil || !ok || n < 1 || n > len(s.versions) {
		return fmt.Errorf("destroy %s/%s: %w", secret, id, ErrNotFound)
	}
	s.versions[n-1] = memVersion{created: s.versions[n-1].created, destroyed: true}
	return nil
}

// ActiveVersions counts versions not destroyed (what Secret Manager bills).
func (m *Memory) ActiveVersions(secret string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	if s, ok := m.secrets[secret]; ok {
		for _, v := range s.versions {
			if !v.destroyed {
				n++
			}
		}
	}
	return n
}

// TryLease implements Store.
func (m *Memory) TryLease(_ context.Context, secret, holder string, ttl time.Duration) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter("lease", secret); err != nil {
		return nil, err
	}
	s, ok := m.secrets[secret]
	if !ok {
		s = &memSecret{}
		m.secrets[secret] = s
	}
	now := m.clock.Now()
	if s.lease != nil && s.lease.holder != holder && now.Before(s.lease.expires) {
		return nil, fmt.Errorf("lease %s: %w", secret, ErrLeaseHeld)
	}
	l := &memLease{holder: holder, expires: now.Add(ttl)}
	s.lease = l
	return memLeaseHandle{m: m, s: s, l: l}, nil
}

type memLeaseHandle struct {
	m *Memory
	s *memSecret
	l *memLease
}

func (h memLeaseHandle) Release(context.Context) error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.s.lease == h.l {
		h.s.lease = nil
	}
	return nil
}

func versionNum(id string) int {
	n, err := strconv.Atoi(id)
	if err != nil {
		return -1
	}
	return n
}
