package secrets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

var _ Store = (*File)(nil)

// File is the local backend, laid out for an operator with ls and cat:
//
//	$dir/<secret>/<N>              raw payload of version N (1, 2, …); latest is the highest N
//	$dir/<secret>/.destroyed-<N>   empty tombstone: version N was destroyed (its file is gone)
//	$dir/<secret>/.lease           flock(2) lock file of the writer lease (holder and expiry inside)
//	$dir/<secret>/.tmp-*           payloads being written
//
// Writes are atomic and safe between processes sharing the directory: a
// payload is written to a temp file, fsynced, then hard-linked to the next
// free number. link(2) never overwrites, so two writers cannot both take N;
// the loser moves on to N+1. The tombstones keep destroyed numbers from being
// handed out again (a version id must always name the same payload) and let
// Latest report a destroyed newest version as Secret Manager does.
//
// A version's creation time is its file's mtime, set from the store's clock
// so a manual clock ages versions too.
type File struct {
	dir string
	clk clock.Clock
}

const (
	tombstonePrefix = ".destroyed-"
	leaseFile       = ".lease"
	tempPattern     = ".tmp-*"
)

// NewFile returns a File store on dir, creating it (mode 0700) if needed;
// clk stamps versions and leases.
func NewFile(dir string, clk clock.Clock) (*File, error) {
	if dir == "" {
		return nil, errors.New("secrets directory not set")
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create secrets directory: %w", err)
	}
	return &File{dir: dir, clk: clk}, nil
}

// Dir returns the directory the store lives in.
func (f *File) Dir() string { return f.dir }

func (f *File) secretDir(secret string) (string, error) {
	if err := ValidateName(secret); err != nil {
		return "", err
	}
	return filepath.Join(f.dir, secret), nil
}

// fileErr maps an operating-system error onto the package's kinds. The
// messages name paths (secret and version), never payloads.
func fileErr(op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: %w: %w", op, ErrPermissionDenied, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	default:
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
}

// listing is one read of a secret directory.
type listing struct {
	live    []int64 // version files present, highest first
	highest int64   // highest number ever allocated that we can see (live or tombstoned)
}

func (l listing) topIsTombstone() bool {
	return l.highest > 0 && (len(l.live) == 0 || l.live[0] < l.highest)
}

func (f *File) list(op, secret string) (string, listing, error) {
	dir, err := f.secretDir(secret)
	if err != nil {
		return "", listing{}, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return dir, listing{}, fileErr(op+" "+secret, err)
	}
	var l listing
	for _, e := range entries {
		name := e.Name()
		if n, ok := strings.CutPrefix(name, tombstonePrefix); ok {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > l.highest {
				l.highest = v
			}
			continue
		}
		v, err := strconv.ParseInt(name, 10, 64)
		if err != nil || v <= 0 || strconv.FormatInt(v, 10) != name || !e.Type().IsRegular() {
			continue // anything an operator left lying around
		}
		l.live = append(l.live, v)
		l.highest = max(l.highest, v)
	}
	slices.Sort(l.live)
	slices.Reverse(l.live)
	return dir, l, nil
}

func tombstoned(dir string, n int64) bool {
	_, err := os.Lstat(filepath.Join(dir, tombstonePrefix+strconv.FormatInt(n, 10)))
	return err == nil
}

// Latest reads the highest-numbered version: ErrVersionUnavailable if it was
// destroyed, ErrNotFound if the secret has no versions.
func (f *File) Latest(ctx context.Context, secret string) (Version, error) {
	if err := ctx.Err(); err != nil {
		return Version{}, fmt.Errorf("access %s/latest: %w", secret, err)
	}
	dir, l, err := f.list("access", secret)
	if err != nil {
		return Version{}, err
	}
	if l.highest == 0 {
		return Version{}, fmt.Errorf("access %s/latest: no versions: %w", secret, ErrNotFound)
	}
	if l.topIsTombstone() {
		return Version{}, fmt.Errorf("access %s/latest (version %d): %w", secret, l.highest, ErrVersionUnavailable)
	}
	return f.read(dir, secret, l.live[0])
}

// Get reads version id: ErrVersionUnavailable if it was destroyed.
func (f *File) Get(ctx context.Context, secret, id string) (Version, error) {
	if err := ctx.Err(); err != nil {
		return Version{}, fmt.Errorf("access %s/%s: %w", secret, id, err)
	}
	dir, err := f.secretDir(secret)
	if err != nil {
		return Version{}, err
	}
	n, err := ParseVersionID(secret, id)
	if err != nil {
		return Version{}, err
	}
	return f.read(dir, secret, n)
}

func (f *File) read(dir, secret string, n int64) (Version, error) {
	id := strconv.FormatInt(n, 10)
	op := "access " + secret + "/" + id
	fh, err := os.Open(filepath.Join(dir, id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && tombstoned(dir, n) {
			return Version{}, fmt.Errorf("%s: %w", op, ErrVersionUnavailable)
		}
		return Version{}, fileErr(op, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return Version{}, fileErr(op, err)
	}
	data, err := io.ReadAll(fh)
	if err != nil {
		return Version{}, fileErr(op, err)
	}
	return Version{Secret: secret, ID: id, Payload: data, Created: fi.ModTime()}, nil
}

// Add writes payload as the next version, creating the secret's directory
// (0700; files 0600) if needed.
func (f *File) Add(ctx context.Context, secret string, payload []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("add %s: %w", secret, err)
	}
	if err := ValidatePayload(secret, payload); err != nil {
		return "", err
	}
	dir, err := f.secretDir(secret)
	if err != nil {
		return "", err
	}
	op := "add " + secret
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fileErr(op, err)
	}
	tmp, err := f.writeTemp(dir, payload)
	if err != nil {
		return "", fileErr(op, err)
	}
	defer os.Remove(tmp)

	_, l, err := f.list("add", secret)
	if err != nil {
		return "", err
	}
	for n := l.highest + 1; ; n++ {
		if tombstoned(dir, n) {
			continue
		}
		target := filepath.Join(dir, strconv.FormatInt(n, 10))
		err := os.Link(tmp, target)
		if errors.Is(err, fs.ErrExist) {
			continue // another writer took n first
		}
		if err != nil {
			return "", fileErr(op, err)
		}
		// n may have been added and destroyed by others between the check
		// above and our link; Destroy writes the tombstone before it
		// unlinks, so it is visible now if that happened. Numbers are never
		// reused: give n back and go on.
		if tombstoned(dir, n) {
			_ = os.Remove(target)
			continue
		}
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fileErr(op, err)
		}
		if err := syncDir(dir); err != nil {
			return "", fileErr(op, err)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

// writeTemp writes payload to a fsynced temp file in dir, stamped with the
// clock's time, and returns its path.
func (f *File) writeTemp(dir string, payload []byte) (string, error) {
	tmp, err := os.CreateTemp(dir, tempPattern) // mode 0600
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(payload)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		now := f.clk.Now()
		err = os.Chtimes(tmp.Name(), now, now)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// Versions lists the versions whose files exist, newest first.
func (f *File) Versions(ctx context.Context, secret string) ([]VersionInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("versions %s: %w", secret, err)
	}
	dir, l, err := f.list("versions", secret)
	if err != nil {
		return nil, err
	}
	out := make([]VersionInfo, 0, len(l.live))
	for _, n := range l.live {
		id := strconv.FormatInt(n, 10)
		fi, err := os.Stat(filepath.Join(dir, id))
		if err != nil {
			continue // destroyed since the listing
		}
		out = append(out, VersionInfo{ID: id, Created: fi.ModTime(), State: StateEnabled})
	}
	return out, nil
}

// Destroy removes version id's file after leaving its tombstone; destroying
// it again fails with ErrVersionUnavailable.
func (f *File) Destroy(ctx context.Context, secret, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("destroy %s/%s: %w", secret, id, err)
	}
	dir, err := f.secretDir(secret)
	if err != nil {
		return err
	}
	n, err := ParseVersionID(secret, id)
	if err != nil {
		return err
	}
	op := "destroy " + secret + "/" + id
	if _, err := os.Lstat(filepath.Join(dir, id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) && tombstoned(dir, n) {
			return fmt.Errorf("%s: already destroyed: %w", op, ErrVersionUnavailable)
		}
		return fileErr(op, err)
	}
	// Tombstone first: from this moment Add will not hand n out again.
	ts, err := os.OpenFile(filepath.Join(dir, tombstonePrefix+id), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fileErr(op, err)
	}
	if err := ts.Close(); err != nil {
		return fileErr(op, err)
	}
	if err := os.Remove(filepath.Join(dir, id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: already destroyed: %w", op, ErrVersionUnavailable)
		}
		return fileErr(op, err)
	}
	if err := syncDir(dir); err != nil {
		return fileErr(op, err)
	}
	return nil
}

// TryLease takes an exclusive flock(2) on $dir/<secret>/.lease. The operating
// system drops it when the holding process dies, so ttl is advisory: it is
// written into the lock file, with the holder, for operators to read. Two
// TryLease calls conflict even inside one process, whatever their holders.
func (f *File) TryLease(ctx context.Context, secret, holder string, ttl time.Duration) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lease %s: %w", secret, err)
	}
	if err := ValidateLeaseArgs(secret, holder, ttl); err != nil {
		return nil, err
	}
	dir, err := f.secretDir(secret)
	if err != nil {
		return nil, err
	}
	op := "lease " + secret
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fileErr(op, err)
	}
	path := filepath.Join(dir, leaseFile)
	lock := flock.New(path, flock.SetPermissions(0o600))
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fileErr(op, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, ErrLeaseHeld)
	}
	l := &fileLease{lock: lock, path: path, holder: holder, ttl: ttl, clk: f.clk}
	if err := l.note(); err != nil {
		_ = lock.Unlock()
		return nil, fileErr(op, err)
	}
	return l, nil
}

type fileLease struct {
	lock   *flock.Flock
	path   string
	holder string
	ttl    time.Duration
	clk    clock.Clock
}

// note writes the holder and the advisory expiry for operators.
func (l *fileLease) note() error {
	info := l.holder + "|" + l.clk.Now().Add(l.ttl).UTC().Format(time.RFC3339Nano) + "\n"
	return os.WriteFile(l.path, []byte(info), 0o600)
}

// Renew refreshes the operator's note; the lock itself cannot be taken from
// a live holder, so only a released lease is lost.
func (l *fileLease) Renew(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("renew lease %s: %w", l.path, err)
	}
	if !l.lock.Locked() {
		return fmt.Errorf("renew lease %s: released: %w", l.path, ErrLeaseLost)
	}
	if err := l.note(); err != nil {
		return fileErr("renew lease "+l.path, err)
	}
	return nil
}

// Release clears the holder note and unlocks; releasing twice is harmless.
func (l *fileLease) Release(context.Context) error {
	if !l.lock.Locked() {
		return nil
	}
	_ = os.Truncate(l.path, 0) // still ours: we hold the lock
	if err := l.lock.Unlock(); err != nil {
		return fmt.Errorf("release lease %s: %w", l.path, err)
	}
	return nil
}

// syncDir makes a new or removed directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Exposed lists the paths under the store's directory (itself included)
// that group or others may read, write or enter: on a shared machine they
// would hand out the tokens and the command key. The store creates
// everything 0700/0600; this finds what someone else created or chmod-ed.
func (f *File) Exposed() ([]string, error) {
	var out []string
	err := filepath.WalkDir(f.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			out = append(out, fmt.Sprintf("%s (%s)", path, info.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("check permissions under %s: %w", f.dir, err)
	}
	return out, nil
}

// WarnIfExposed logs, once at start, the store's files that group or
// others can reach (nothing for other backends).
func WarnIfExposed(s Store, warn func(msg string, paths []string)) {
	f, ok := s.(*File)
	if !ok {
		return
	}
	if paths, _ := f.Exposed(); len(paths) > 0 {
		warn("secret files are readable by group or others: run chmod -R go-rwx "+f.dir, paths)
	}
}
