package state

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
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// Sidecar suffixes of the file backend; ValidateKey keeps keys off them.
const (
	lockSuffix = ".lock"
	genSuffix  = ".gen"
)

// lockRetryDelay is how often a waiter polls a held file lock. flock's
// blocking call cannot be cancelled, so waits poll to honour the context.
const lockRetryDelay = 2 * time.Millisecond

// File is a Store in a directory (STATE_DIR), safe across OS processes.
// For a key k:
//
//	$dir/k       the JSON exactly as written: an operator can cat it
//	$dir/k.gen   its generation in decimal; kept after a delete as a
//	             tombstone so a re-created object never reuses a generation
//	$dir/k.lock  the flock(2) file serialising every read and write of k;
//	             never removed (removing a lock file others wait on would
//	             let two holders in)
//
// A write runs under the exclusive lock and replaces k.gen and then k, each
// by temp file, fsync and rename, with the directory synced after each. A
// crash between the two renames leaves the old data under a new generation,
// which readers see as a write that changed nothing: no reader can ever see
// new data under an old generation, so no stale compare-and-swap can win.
//
// A JSON file dropped in by hand with no .gen beside it reads as generation 1.
// Keys are paths, so "a" and "a/b" cannot both exist here (unlike in GCS).
type File struct {
	dir string
	// Timeout bounds the wait for a key's lock when the context has no
	// earlier deadline; zero means DefaultTimeout.
	Timeout time.Duration
}

var _ Store = (*File)(nil)

// NewFile returns a File store rooted at dir (STATE_DIR), creating it if needed.
func NewFile(dir string) (*File, error) {
	if dir == "" {
		return nil, errors.New("state: STATE_DIR is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state: STATE_DIR %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("state: create STATE_DIR: %w", err)
	}
	return &File{dir: abs}, nil
}

func (f *File) path(key string) string {
	return filepath.Join(f.dir, filepath.FromSlash(key))
}

// Get implements Store.
func (f *File) Get(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	// The data file is the commit point of create and delete, so its
	// absence is a consistent answer without taking (and creating) a lock.
	if _, err := os.Lstat(f.path(key)); isNotExist(err) {
		return Object{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	defer unlock()

	st, err := f.readLocked(key, true)
	if err != nil {
		return Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	if !st.exists {
		return Object{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	if err := ValidateStored(key, st.data); err != nil {
		return Object{}, fmt.Errorf("get %s at generation %d: %w", key, st.gen, err)
	}
	return Object{Data: st.data, Generation: st.gen}, nil
}

// Put implements Store.
func (f *File) Put(ctx context.Context, key string, data []byte, ifGeneration int64) (int64, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ValidateData(data); err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	defer unlock()

	st, err := f.readLocked(key, false)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	cur := int64(0)
	if st.exists {
		cur = st.gen
	}
	if cur != ifGeneration {
		return 0, fmt.Errorf("put %s if generation %d (now %d): %w", key, ifGeneration, cur, ErrConflict)
	}
	// Generations grow by at least one over anything this key has had
	// (tombstone included) and are at least the wall clock in
	// microseconds, like Cloud Storage's, so even a key whose files were
	// removed by hand does not hand an old generation out again.
	next := max(st.gen+1, time.Now().UnixMicro())

	p := f.path(key)
	if err := writeAtomic(p+genSuffix, []byte(strconv.FormatInt(next, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("put %s: write generation: %w", key, err)
	}
	if err := writeAtomic(p, data); err != nil {
		return 0, fmt.Errorf("put %s: write data: %w", key, err)
	}
	return next, nil
}

// Delete implements Store. The generation sidecar stays as a tombstone.
func (f *File) Delete(ctx context.Context, key string, ifGeneration int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if _, err := os.Lstat(f.path(key)); isNotExist(err) {
		return fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	defer unlock()

	st, err := f.readLocked(key, false)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if !st.exists {
		return fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	if ifGeneration != 0 && st.gen != ifGeneration {
		return fmt.Errorf("delete %s if generation %d (now %d): %w", key, ifGeneration, st.gen, ErrConflict)
	}
	p := f.path(key)
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// List implements Store. It lists data files only: sidecars, temp files and
// files whose names are not valid keys are skipped.
func (f *File) List(_ context.Context, prefix string) ([]string, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	// Walk only the deepest directory the prefix names.
	start := f.dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = f.path(prefix[:i])
	}
	var keys []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && isNotExist(err) {
				return fs.SkipAll
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(f.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) && ValidateKey(key) == nil {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// lock takes the key's exclusive lock, waiting at most until ctx (bounded
// by Timeout) ends. Reads take it too: a lock-free reader could see the new
// generation beside the old data mid-write and later win a CAS it should lose.
func (f *File) lock(ctx context.Context, key string) (unlock func(), err error) {
	lp := f.path(key) + lockSuffix
	if err := os.MkdirAll(filepath.Dir(lp), 0o700); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx, f.Timeout)
	defer cancel()
	fl := flock.New(lp, flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, lockRetryDelay)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: waiting for lock: %w", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("lock %s: %w", lp, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: lock %s not acquired", ErrUnavailable, lp)
	}
	return func() { _ = fl.Unlock() }, nil
}

type fileState struct {
	exists bool   // the data file exists
	gen    int64  // generation of the data, or the tombstone's when !exists
	data   []byte // only when read with withData
}

// readLocked reads the key's generation sidecar and, with withData, its
// data. The caller holds the key's lock.
func (f *File) readLocked(key string, withData bool) (fileState, error) {
	p := f.path(key)
	var st fileState

	if withData {
		data, err := readLimited(p)
		switch {
		case err == nil:
			st.exists, st.data = true, data
		case isNotExist(err):
		default:
			return st, err
		}
	} else {
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			st.exists = true
		case isNotExist(err):
		default:
			return st, err
		}
	}

	raw, err := os.ReadFile(p + genSuffix)
	switch {
	case err == nil:
		g, perr := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if perr != nil || g < 1 {
			return st, fmt.Errorf("%w: generation file %s holds %q", ErrCorrupt, p+genSuffix, truncate(raw, 40))
		}
		st.gen = g
	case isNotExist(err):
		if st.exists {
			st.gen = 1 // placed by hand
		}
	default:
		return st, err
	}
	return st, nil
}

func readLimited(p string) ([]byte, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxObjectSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxObjectSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, p, MaxObjectSize)
	}
	return data, nil
}

// writeAtomic replaces p with data: temp file in the same directory, fsync,
// rename, fsync of the directory, so p holds either the old or the new bytes
// after a crash, never a mix.
func writeAtomic(p string, data []byte) (err error) {
	dir := filepath.Dir(p)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// isNotExist also treats "a parent is a file" (key a/b when a is an
// object) as absence.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
