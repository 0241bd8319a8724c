package apply

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/rigger-bsd/rigger/policy/atomicfile"
	"github.com/rigger-bsd/rigger/verify"
)

// jailsDir holds the jail roots. Everything below /jails/NAME belongs to
// the jail (its root user can plant symlinks there), so those paths are
// resolved inside an os.Root opened at the jail's root, never at the host's.
const jailsDir = "/jails"

// roots confines every file operation of one transaction: an os.Root at
// Config.Root for host paths and one per jail root for jail paths. os.Root
// refuses any symlink, absolute or relative, that leads out of it.
type roots struct {
	host *os.Root
	// jails is filled as paths are resolved, also by the pre-check and
	// the backup running together.
	jailsMu sync.Mutex
	jails   map[string]*os.Root

	// ids caches the passwd and group files read for owner lookups, per
	// root and file, for the life of the transaction.
	idsMu sync.Mutex
	ids   map[idDB]map[string]int

	// dirs caches an os.Root per directory of a target (inDir): each
	// file operation then names one component, where os.Root would open
	// and close every directory on the way at each call.
	dirsMu sync.Mutex
	dirs   map[rootDir]*os.Root
}

type rootDir struct {
	r   *os.Root
	dir string
}

type idDB struct {
	root *os.Root
	db   string // "etc/passwd" or "etc/group"
}

func openRoots(base string) (*roots, error) {
	r, err := os.OpenRoot(base)
	if err != nil {
		return nil, fmt.Errorf("open root: %w", err)
	}
	return &roots{host: r, jails: map[string]*os.Root{}}, nil
}

func (rs *roots) close() {
	rs.forgetDirs()
	rs.host.Close()
	for _, j := range rs.jails {
		j.Close()
	}
}

// forgetDirs closes the directories inDir opened: the next call resolves
// the path again. The install does so before it writes, as the restore
// before it restores: a directory a jail's root swapped for a symlink
// since the pre-check is then refused (os.Root: the path escapes), not
// written in where it was.
func (rs *roots) forgetDirs() {
	rs.dirsMu.Lock()
	defer rs.dirsMu.Unlock()
	for _, d := range rs.dirs {
		d.Close()
	}
	rs.dirs = nil
}

// inDir resolves target to the directory holding it, as an os.Root
// (opened once per transaction, confined to the Root it is in like any
// path: a symlink on the way that leads out is refused), and its base
// name. With create, missing directories are made first (adding the
// parents of those made to dirs); without, a missing one yields an
// fs.ErrNotExist error.
func (rs *roots) inDir(target string, create bool, dirs *atomicfile.Dirs) (*os.Root, string, error) {
	r, rel, err := rs.resolve(target, create)
	if err != nil {
		return nil, "", err
	}
	dir, base := path.Split(rel)
	dir = path.Clean(dir) // "." for a file at the top
	if dir == "." {
		return r, base, nil
	}
	k := rootDir{r, dir}
	rs.dirsMu.Lock()
	d := rs.dirs[k]
	rs.dirsMu.Unlock()
	if d != nil {
		return d, base, nil
	}
	if create {
		if err := mkdirs(r, dir, dirs); err != nil {
			return nil, "", fmt.Errorf("%s: %w", target, err)
		}
	}
	d, err = r.OpenRoot(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", target, err)
	}
	rs.dirsMu.Lock()
	defer rs.dirsMu.Unlock()
	if prev := rs.dirs[k]; prev != nil { // opened meanwhile
		d.Close()
		return prev, base, nil
	}
	if rs.dirs == nil {
		rs.dirs = map[rootDir]*os.Root{}
	}
	rs.dirs[k] = d
	return d, base, nil
}

// resolve maps an absolute target path to the Root confining it and the
// path inside that Root. With create, a missing jail root is created (a
// first apply); without, it yields an fs.ErrNotExist error.
func (rs *roots) resolve(target string, create bool) (*os.Root, string, error) {
	if err := checkTarget(target); err != nil {
		return nil, "", err
	}
	if rest, ok := strings.CutPrefix(target, jailsDir+"/"); ok {
		if name, sub, ok := strings.Cut(rest, "/"); ok {
			jr, err := rs.jail(name, create)
			if err != nil {
				return nil, "", fmt.Errorf("%s: jail root: %w", target, err)
			}
			return jr, sub, nil
		}
	}
	return rs.host, target[1:], nil
}

func (rs *roots) jail(name string, create bool) (*os.Root, error) {
	rs.jailsMu.Lock()
	defer rs.jailsMu.Unlock()
	if jr := rs.jails[name]; jr != nil {
		return jr, nil
	}
	rel := path.Join(jailsDir[1:], name)
	jr, err := rs.host.OpenRoot(rel)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := rs.host.MkdirAll(rel, 0o755); err != nil {
			return nil, err
		}
		jr, err = rs.host.OpenRoot(rel)
	}
	if err != nil {
		return nil, err
	}
	rs.jails[name] = jr
	return jr, nil
}

// fileState is what a target looked like on disk.
type fileState struct {
	exists   bool
	mode     fs.FileMode // permission and setid bits, os form
	uid, gid int
}

// stat reports the target's state; a target that exists but is not a
// regular file (a planted symlink, a directory) is an error.
func (rs *roots) stat(target string) (fileState, error) {
	r, base, err := rs.inDir(target, false, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, err
	}
	fi, err := r.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, fmt.Errorf("%s: %w", target, err)
	}
	return statOf(target, fi)
}

func statOf(target string, fi fs.FileInfo) (fileState, error) {
	if !fi.Mode().IsRegular() {
		return fileState{}, fmt.Errorf("%s: not a regular file (%s); refusing to replace it", target, fi.Mode().Type())
	}
	st := fileState{exists: true, mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.uid, st.gid = int(s.Uid), int(s.Gid)
	}
	return st, nil
}

// read returns the target's contents and state without following a
// symlink at the target itself.
func (rs *roots) read(target string) ([]byte, fileState, error) {
	data, st, f, err := rs.open(target)
	if f != nil {
		f.Close()
	}
	return data, st, err
}

// open is read leaving the target open (nil when absent), for the
// caller to close.
func (rs *roots) open(target string) ([]byte, fileState, *os.File, error) {
	r, base, err := rs.inDir(target, false, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileState{}, nil, nil
	}
	if err != nil {
		return nil, fileState{}, nil, err
	}
	data, fi, f, err := openRegular(r, base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileState{}, nil, nil
	}
	if err != nil {
		return nil, fileState{}, nil, fmt.Errorf("%s: %w", target, err)
	}
	st, err := statOf(target, fi)
	if err != nil && f != nil {
		f.Close()
		f = nil
	}
	return data, st, f, err
}

// held keeps open the files an install replaces or removes, read for
// the backup, until after the renames; then release closes them all at
// once. Freeing a file's blocks can be slow and synchronous: ext4 without
// a journal, mounted with discard (this CI machine's root), discards them
// right where the last reference goes (fs/ext4/mballoc.c,
// ext4_free_blocks, with no journal handle to defer them to), which
// would put one discard per file between consecutive renames. Held, each
// file is freed at its close, and the closes overlap, beside the
// directory fsyncs. On FreeBSD (UFS soft updates, ZFS) freeing is
// deferred anyway; holding costs a descriptor per file, bounded.
type held struct {
	mu    sync.Mutex
	files []*os.File
}

// maxHeld bounds the descriptors held: past it, files are closed at once.
const maxHeld = 256

// keep holds f, or closes it when enough are held.
func (h *held) keep(f *os.File) {
	if f == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.files) >= maxHeld {
		f.Close()
		return
	}
	h.files = append(h.files, f)
}

// release closes every held file, a few at a time. Safe to call again.
func (h *held) release() error {
	h.mu.Lock()
	files := h.files
	h.files = nil
	h.mu.Unlock()
	closes := make([]func() error, len(files))
	for i, f := range files {
		closes[i] = func() error { f.Close(); return nil }
	}
	return parallel(closes)
}

// readRegular opens rel without following a final symlink and without
// blocking on a planted FIFO, and reads it only if it is a regular file.
func readRegular(r *os.Root, rel string) ([]byte, fs.FileInfo, error) {
	data, fi, f, err := openRegular(r, rel)
	if f != nil {
		f.Close()
	}
	return data, fi, err
}

// openRegular is readRegular leaving the file open (nil unless it is a
// regular file read whole), for the caller to close.
func openRegular(r *os.Root, rel string) ([]byte, fs.FileInfo, *os.File, error) {
	f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fi, nil, nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	return data, fi, f, nil
}

// parallel runs fns concurrently, a few at a time: fsyncs of different
// files overlap in the filesystem's journal instead of queueing.
func parallel(fns []func() error) error {
	const workers = 16
	errs := make([]error, len(fns))
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, fn := range fns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pending is one target whose temp file is written and synced, waiting
// for its rename.
type pending struct {
	target string
	r      *os.Root // the target's directory (roots.inDir)
	rel    string   // the target's name in it
	tmp    *atomicfile.Pending
}

// place resolves target and creates its directory inside the Root; it is
// sequential (it may open a new jail root and make directories).
func (rs *roots) place(target string, dirs *atomicfile.Dirs) (*pending, error) {
	r, rel, err := rs.inDir(target, true, dirs)
	if err != nil {
		return nil, err
	}
	return &pending{target: target, r: r, rel: rel}, nil
}

// writeTemp writes the temp file beside the target inside the Root, with
// owner and mode set on the fd, and fsyncs it. Safe to run concurrently
// for different targets.
func (p *pending) writeTemp(data []byte, mode fs.FileMode, uid, gid int) error {
	t, err := atomicfile.Stage(p.r, p.rel, data, atomicfile.Options{Perm: mode, Chown: canChown(), UID: uid, GID: gid, Sync: true})
	if err != nil {
		return fmt.Errorf("%s: %w", p.target, err)
	}
	p.tmp = t
	return nil
}

// rename puts the temp file in place. It replaces a symlink planted at the
// target instead of following it.
func (p *pending) rename(dirs *atomicfile.Dirs) error {
	if err := p.tmp.Commit(dirs); err != nil {
		return fmt.Errorf("%s: %w", p.target, err)
	}
	return nil
}

// discard removes a temp file that will not be renamed.
func (p *pending) discard() {
	if p != nil {
		p.tmp.Discard()
	}
}

// write installs data at target in one go (the restore path): place,
// temp file, rename. The directory is added to dirs for one fsync per
// directory.
func (rs *roots) write(target string, data []byte, mode fs.FileMode, uid, gid int, dirs *atomicfile.Dirs) error {
	p, err := rs.place(target, dirs)
	if err != nil {
		return err
	}
	if err := p.writeTemp(data, mode, uid, gid); err != nil {
		return err
	}
	return p.rename(dirs)
}

// remove deletes target (the link itself if one was planted there).
func (rs *roots) remove(target string, dirs *atomicfile.Dirs) error {
	r, base, err := rs.inDir(target, false, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.Remove(base); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", target, err)
	}
	dirs.Add(r, ".")
	return nil
}

// exists reports whether the directory or file p exists (not following a
// final symlink).
func (rs *roots) exists(p string) bool {
	r, rel, err := rs.resolve(p, false)
	if err != nil {
		return false
	}
	_, err = r.Lstat(rel)
	return err == nil
}

// removeDir removes an empty directory the transaction created.
func (rs *roots) removeDir(p string, dirs *atomicfile.Dirs) {
	r, rel, err := rs.resolve(p, false)
	if err != nil {
		return
	}
	if fi, err := r.Lstat(rel); err != nil || !fi.IsDir() {
		return
	}
	if r.Remove(rel) == nil {
		dirs.Add(r, path.Dir(rel))
	}
}

// removeTemps deletes temp files a killed install left beside target.
func (rs *roots) removeTemps(target string) {
	r, base, err := rs.inDir(target, false, nil)
	if err != nil {
		return
	}
	atomicfile.RemoveTemps(r, base)
}

// mkdirs creates dir inside r and queues the parents of every directory
// it created for an fsync, so the new entries survive a power loss.
func mkdirs(r *os.Root, dir string, dirs *atomicfile.Dirs) error {
	if dir == "." {
		return nil
	}
	fi, err := r.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := mkdirs(r, path.Dir(dir), dirs); err != nil {
		return err
	}
	if err := r.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	dirs.Add(r, path.Dir(dir))
	return nil
}

// fileMode converts manifest permission bits (unix octal) to os form.
func fileMode(m verify.Mode) fs.FileMode {
	v := uint32(m)
	fm := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// canChown: only root may give files away. Tests that run unprivileged
// install files owned by the test user, and owners are not compared.
func canChown() bool { return os.Geteuid() == 0 }

// lookupOwner resolves the manifest owner and group to ids: numeric ids
// as they are; names from the passwd and group files of the root the file
// lives in (a jail has its own users), then the host's; root and wheel are
// 0 on FreeBSD whatever the sandbox has.
func lookupOwner(rs *roots, f verify.File) (uid, gid int, err error) {
	r, _, err := rs.resolve(f.Path, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, err
	}
	uid, err = rs.lookupID(r, "etc/passwd", f.Owner, "root", func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("owner %q: %w", f.Owner, err)
	}
	gid, err = rs.lookupID(r, "etc/group", f.Group, "wheel", func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("group %q: %w", f.Group, err)
	}
	return uid, gid, nil
}

func (rs *roots) lookupID(r *os.Root, db, name, zero string, system func(string) (string, error)) (int, error) {
	if name == "" {
		return 0, errors.New("empty name")
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	for _, root := range []*os.Root{r, rs.host} {
		if root == nil {
			continue
		}
		if id, ok := rs.idsOf(root, db)[name]; ok {
			return id, nil
		}
	}
	if name == "root" || name == zero {
		return 0, nil
	}
	s, err := system(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// idsOf returns the name → id map of a passwd or group file
// (name:x:id:...) in root, read once per transaction; empty if absent.
func (rs *roots) idsOf(root *os.Root, db string) map[string]int {
	rs.idsMu.Lock()
	defer rs.idsMu.Unlock()
	k := idDB{root, db}
	if m, ok := rs.ids[k]; ok {
		return m
	}
	m := map[string]int{}
	if b, fi, err := readRegular(root, db); err == nil && fi.Mode().IsRegular() {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) < 3 {
				continue
			}
			if _, dup := m[fields[0]]; dup {
				continue // the first entry wins, as getpwnam(3)
			}
			if id, err := strconv.Atoi(fields[2]); err == nil && id >= 0 {
				m[fields[0]] = id
			}
		}
	}
	if rs.ids == nil {
		rs.ids = map[idDB]map[string]int{}
	}
	rs.ids[k] = m
	return m
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
