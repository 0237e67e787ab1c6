package secrets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

// File is the local backend: $dir/<secret>/<N> holds the raw payload of
// version N, so an operator can read it with ls and cat. Latest is the
// highest N; a destroyed version's file is gone. Writes are atomic and safe
// across processes sharing the directory: the payload goes to a temp file
// that is fsynced and then hard-linked to the next free number, and a link
// never overwrites, so two writers can't both take N.
type File struct {
	dir   string
	clock clock.Clock
}

var _ Store = (*File)(nil)

// maxPayload mirrors Secret Manager's 64 KiB limit.
const maxPayload = 64 << 10

// NewFile uses dir (created if missing, mode 0700).
func NewFile(dir string, clk clock.Clock) (*File, error) {
	if dir == "" {
		return nil, errors.New("secrets directory not set")
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	return &File{dir: dir, clock: clk}, nil
}

func (f *File) secretDir(secret string) (string, error) {
	if secret == "" || strings.ContainsAny(secret, `/\`) || strings.HasPrefix(secret, ".") {
		return "", fmt.Errorf("invalid secret name %q", secret)
	}
	return filepath.Join(f.dir, secret), nil
}

// numbers lists the version numbers present, highest first.
func (f *File) numbers(secret string) ([]int, error) {
	dir, err := f.secretDir(secret)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", secret, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w: %v", secret, ErrUnavailable, err)
	}
	var out []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 0 && !e.IsDir() {
			out = append(out, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out, nil
}

// Latest implements Store.
func (f *File) Latest(ctx context.Context, secret string) (Version, error) {
	nums, err := f.numbers(secret)
	if err != nil {
		return Version{}, err
	}
	if len(nums) == 0 {
		return Version{}, fmt.Errorf("access %s/latest: %w", secret, ErrNotFound)
	}
	for _, n := range nums {
		v, err := f.Get(ctx, secret, strconv.Itoa(n))
		// A version destroyed between the listing and the read: the next one
		// down is latest now.
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return v, err
	}
	return Version{}, fmt.Errorf("access %s/latest: %w", secret, ErrNotFound)
}

// Get implements Store.
func (f *File) Get(_ context.Context, secret, id string) (Version, error) {
	dir, err := f.secretDir(secret)
	if err != nil {
		return Version{}, err
	}
	if n, err := strconv.Atoi(id); err != nil || n < 1 {
		return Version{}, fmt.Errorf("access %s/%s: %w", secret, id, ErrNotFound)
	}
	p := filepath.Join(dir, id)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Version{}, fmt.Errorf("access %s/%s: %w", secret, id, ErrNotFound)
	}
	if err != nil {
		return Version{}, fmt.Errorf("access %s/%s: %w: %v", secret, id, ErrUnavailable, err)
	}
	var created time.Time
	if fi, err := os.Stat(p); err == nil {
		created = fi.ModTime()
	}
	return Version{Secret: secret, ID: id, Payload: data, Created: created}, nil
}

// Add implements Store.
func (f *File) Add(_ context.Context, secret string, payload []byte) (string, error) {
	if len(payload) > maxPayload {
		return "", fmt.Errorf("add %s: payload of %d bytes exceeds 64 KiB", secret, len(payload))
	}
	dir, err := f.secretDir(secret)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("add %s: %w: %v", secret, ErrUnavailable, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("add %s: %w: %v", secret, ErrUnavailable, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(payload); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("add %s: write: %w: %v", secret, ErrUnavailable, err)
	}
	// The file's mtime is the version's creation time: take it from our
	// clock, so a manual clock in tests and the simulated year ages versions.
	now := f.clock.Now()
	_ = os.Chtimes(tmp.Name(), now, now)
	nums, err := f.numbers(secret)
	if err != nil {
		return "", err
	}
	next := 1
	if len(nums) > 0 {
		next = nums[0] + 1
	}
	for attempt := 0; attempt < 1000; attempt++ {
		target := filepath.Join(dir, strconv.Itoa(next))
		err := os.Link(tmp.Name(), target)
		if err == nil {
			syncDir(dir)
			return strconv.Itoa(next), nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("add %s: %w: %v", secret, ErrUnavailable, err)
		}
		next++ // another writer took this number
	}
	return "", fmt.Errorf("add %s: %w: no free version number", secret, ErrUnavailable)
}

// Versions implements Store.
func (f *File) Versions(_ context.Context, secret string) ([]VersionInfo, error) {
	nums, err := f.numbers(secret)
	if err != nil {
		return nil, err
	}
	dir, _ := f.secretDir(secret)
	out := make([]VersionInfo, 0, len(nums))
	for _, n := range nums {
		fi, err := os.Stat(filepath.Join(dir, strconv.Itoa(n)))
		if err != nil {
			continue // destroyed meanwhile
		}
		out = append(out, VersionInfo{ID: strconv.Itoa(n), Created: fi.ModTime(), State: StateEnabled})
	}
	return out, nil
}

// Destroy implements Store: the version's file is removed.
func (f *File) Destroy(_ context.Context, secret, id string) error {
	dir, err := f.secretDir(secret)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(id); err != nil || n < 1 {
		return fmt.Errorf("destroy %s/%s: %w", secret, id, ErrNotFound)
	}
	err = os.Remove(filepath.Join(dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("destroy %s/%s: %w", secret, id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("destroy %s/%s: %w: %v", secret, id, ErrUnavailable, err)
	}
	syncDir(dir)
	return nil
}

// TryLease implements Store with an exclusive flock on $dir/<secret>/.lease.
// The operating system drops the lock when the holder dies, so a crashed
// worker never blocks the next one; ttl has nothing to add here.
func (f *File) TryLease(_ context.Context, secret, _ string, _ time.Duration) (Lease, error) {
	dir, err := f.secretDir(secret)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lease %s: %w: %v", secret, ErrUnavailable, err)
	}
	lock := flock.New(filepath.Join(dir, ".lease"))
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w: %v", secret, ErrUnavailable, err)
	}
	if !ok {
		return nil, fmt.Errorf("lease %s: %w", secret, ErrLeaseHeld)
	}
	return fileLease{lock: lock}, nil
}

type fileLease struct{ lock *flock.Flock }

func (l fileLease) Release(context.Context) error { return l.lock.Unlock() }

// syncDir makes a rename or link durable; failure only weakens durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
