// Package atomicfile is the one way Rigger replaces a file: a temp file
// beside the target, written whole, then renamed over it, so a reader (or
// a process killed half way) sees the old or the new content, never a
// mix. What survives a power loss is said at each call (Durability), and
// many files pay for it once: Stage each temp file (synced), Commit them,
// then one Dirs.Sync for every directory touched.
//
// It lives under policy only because policy is the layer every other may
// import (../DESIGN.md, held by cmd/layering_test.go); it imports nothing
// of ours. renameio is not used: it always fsyncs before the rename (no
// batch), never the directory, and with an os.Root it puts the temp file
// at the top of the root instead of beside the target.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Durability says what is on disk when a write returns.
type Durability int

const (
	// Durable: the temp file is fsynced, renamed, then its directory is
	// fsynced: after a power loss the name holds the new content.
	Durable Durability = iota
	// Ordered: the temp file is fsynced before the rename, the directory
	// is not: after a power loss the name holds the old or the new
	// content, complete. For callers that sync the directory later, once
	// for many files (Dirs).
	Ordered
	// Volatile: nothing is synced. Readers and a crash of the process see
	// the old or the new content; after a power loss the file may be
	// either, or empty. Only for files whose loss costs nothing (build
	// output, metrics, a status rewritten at every poll).
	Volatile
)

// TempPrefix is how the temp files of target base begin; a clean-up after
// a crash removes the names with this prefix beside the target.
func TempPrefix(base string) string { return "." + base + ".tmp-" }

// Options are how Stage writes a temp file.
type Options struct {
	// Perm is the mode (permission and setid bits, os form), set on the
	// open file, so the umask does not apply.
	Perm fs.FileMode
	// Chown gives the file to UID:GID, before the mode (chown clears the
	// setid bits).
	Chown    bool
	UID, GID int
	// Sync fsyncs the temp file before Stage returns. Stage calls for
	// different targets may run concurrently, so their fsyncs overlap.
	Sync bool
}

// Pending is a written temp file waiting for its rename.
type Pending struct {
	r        *os.Root // nil: rel and tmp are plain paths
	rel, tmp string
}

// Stage writes data to a new temp file beside rel inside r (created
// O_EXCL, never through a symlink) as o says.
func Stage(r *os.Root, rel string, data []byte, o Options) (*Pending, error) {
	p := &Pending{r: r, rel: rel, tmp: path.Join(path.Dir(rel), TempPrefix(path.Base(rel))+randHex(6))}
	if err := p.write(data, o); err != nil {
		return nil, err
	}
	return p, nil
}

// StagePath is Stage for a path outside any os.Root.
func StagePath(name string, data []byte, o Options) (*Pending, error) {
	p := &Pending{rel: name, tmp: filepath.Join(filepath.Dir(name), TempPrefix(filepath.Base(name))+randHex(6))}
	if err := p.write(data, o); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pending) write(data []byte, o Options) error {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL | syscall.O_NOFOLLOW
	// A file given away is created private and gets its mode after the
	// chown; else it is created with its mode (then fixed if the umask
	// took bits away), which saves a chmod per file of a large build.
	create := o.Perm.Perm()
	if o.Chown {
		create = 0o600
	}
	var f *os.File
	var err error
	if p.r != nil {
		f, err = p.r.OpenFile(p.tmp, flags, create)
	} else {
		f, err = os.OpenFile(p.tmp, flags, create)
	}
	if err != nil {
		return err
	}
	err = func() error {
		if _, err := f.Write(data); err != nil {
			return err
		}
		if o.Chown {
			if err := f.Chown(o.UID, o.GID); err != nil {
				return err
			}
		}
		if o.Chown || o.Perm != o.Perm.Perm() {
			if err := f.Chmod(o.Perm); err != nil {
				return err
			}
		} else if fi, err := f.Stat(); err != nil {
			return err
		} else if fi.Mode().Perm() != o.Perm {
			if err := f.Chmod(o.Perm); err != nil {
				return err
			}
		}
		if o.Sync {
			return f.Sync()
		}
		return nil
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		p.remove()
		return err
	}
	return nil
}

// Commit renames the temp file over the target (replacing a symlink
// planted there, never following it) and adds its directory to dirs (if
// not nil) for one later fsync. On failure the temp file is removed.
func (p *Pending) Commit(dirs *Dirs) error {
	var err error
	if p.r != nil {
		err = p.r.Rename(p.tmp, p.rel)
	} else {
		err = os.Rename(p.tmp, p.rel)
	}
	if err != nil {
		p.Discard()
		return err
	}
	p.tmp = ""
	switch {
	case dirs == nil:
	case p.r != nil:
		dirs.Add(p.r, path.Dir(p.rel))
	default:
		dirs.AddPath(filepath.Dir(p.rel))
	}
	return nil
}

// Discard removes a temp file that will not be renamed; a nil or
// committed Pending is left alone.
func (p *Pending) Discard() {
	if p == nil || p.tmp == "" {
		return
	}
	p.remove()
	p.tmp = ""
}

func (p *Pending) remove() {
	if p.r != nil {
		p.r.Remove(p.tmp)
	} else {
		os.Remove(p.tmp)
	}
}

// WriteFile replaces name with data, mode perm, as d says.
func WriteFile(name string, data []byte, perm fs.FileMode, d Durability) error {
	p, err := StagePath(name, data, Options{Perm: perm, Sync: d != Volatile})
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := p.Commit(nil); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if d == Durable {
		return SyncDir(filepath.Dir(name))
	}
	return nil
}

// WriteFileIn is WriteFile for rel inside r.
func WriteFileIn(r *os.Root, rel string, data []byte, perm fs.FileMode, d Durability) error {
	p, err := Stage(r, rel, data, Options{Perm: perm, Sync: d != Volatile})
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	var dirs Dirs
	if err := p.Commit(&dirs); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if d == Durable {
		return dirs.Sync()
	}
	return nil
}

// SyncDir fsyncs a directory, so the names renamed or removed in it
// survive a power loss.
func SyncDir(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return rootDir{dir: dir}.sync()
}

// RemoveTemps removes the temp files a killed writer left beside rel.
func RemoveTemps(r *os.Root, rel string) {
	dir := path.Dir(rel)
	d, err := r.Open(dir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	prefix := TempPrefix(path.Base(rel))
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			r.Remove(path.Join(dir, n))
		}
	}
}

// Dirs collects directories to fsync once after a batch of renames,
// removals and mkdirs. The zero value is ready; it is not safe for
// concurrent Add.
type Dirs struct {
	m map[rootDir]bool
}

// rootDir is a directory inside r, or a path when r is nil.
type rootDir struct {
	r   *os.Root
	dir string
}

// Add queues dir (inside r) for Sync.
func (d *Dirs) Add(r *os.Root, dir string) {
	if d.m == nil {
		d.m = map[rootDir]bool{}
	}
	d.m[rootDir{r, dir}] = true
}

// AddPath queues the directory at path dir for Sync.
func (d *Dirs) AddPath(dir string) { d.Add(nil, filepath.Clean(dir)) }

// Sync fsyncs every queued directory, a few at a time: fsyncs of
// different directories overlap in the file system's journal instead of
// queueing. A directory removed since is skipped (its parent, queued by
// the removal, holds the change).
func (d *Dirs) Sync() error {
	const workers = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, workers)
	)
	for rd := range d.m {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := rd.sync(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	d.m = nil
	return errors.Join(errs...)
}

func (rd rootDir) sync() error {
	name := rd.dir
	open := os.Open
	if rd.r != nil {
		name = filepath.Join(rd.r.Name(), rd.dir)
		open = rd.r.Open
	}
	f, err := open(rd.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", name, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", name, err)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
