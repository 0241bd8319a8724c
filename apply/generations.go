package apply

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/policy/atomicfile"
	"github.com/rigger-bsd/rigger/verify"
)

const (
	genDir      = "generations"
	currentFile = "current"
	genMetaFile = "generation.json"
	genEnvFile  = "manifest.json"
	genTarFile  = "files.tar"
	tmpSuffix   = ".tmp"
)

// generation is a bundle in memory: what a transaction installs, or what
// the state dir keeps.
type generation struct {
	meta     genMeta
	files    map[string][]byte
	envelope []byte
}

type genMeta struct {
	Serial    uint64          `json:"serial"`
	Manifest  verify.Manifest `json:"manifest"`
	Signers   []string        `json:"signers,omitempty"`
	AppliedAt time.Time       `json:"applied_at"`
}

func (m genMeta) public() Generation {
	return Generation(m)
}

// file returns the bytes g keeps for path; false when g is nil or has no
// such file.
func (g *generation) file(path string) ([]byte, bool) {
	if g == nil {
		return nil, false
	}
	b, ok := g.files[path]
	return b, ok
}

func bundleGen(b *verify.Bundle) *generation {
	return &generation{
		meta:     genMeta{Serial: b.Manifest.Serial, Manifest: b.Manifest, Signers: b.Signers},
		files:    maps.Clone(b.Files), // kept past the call (Engine.kept)
		envelope: b.Envelope,
	}
}

// currentRec is the content of StateDir/current. Txn ties it to the
// journal: a journal whose txn equals current's was committed.
type currentRec struct {
	Serial uint64 `json:"serial"`
	Txn    string `json:"txn"`
}

func (e *Engine) genPath(serial uint64) string {
	return filepath.Join(e.cfg.StateDir, genDir, strconv.FormatUint(serial, 10))
}

func (e *Engine) readCurrent() (*currentRec, error) {
	b, err := os.ReadFile(filepath.Join(e.cfg.StateDir, currentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("current generation: %w", err)
	}
	var c currentRec
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("current generation %s: %w", filepath.Join(e.cfg.StateDir, currentFile), err)
	}
	return &c, nil
}

// loadCurrent returns the generation StateDir/current names. It reads
// current (one small file) every time, and the generation itself only
// when current names another transaction than the one kept in memory:
// every commit, rollback and recovery writes current with a new txn, so
// a matching txn means the same generation, unchanged on disk (a kept
// generation is never rewritten).
func (e *Engine) loadCurrent() (*generation, error) {
	c, err := e.readCurrent()
	if err != nil || c == nil {
		return nil, err
	}
	e.keptMu.Lock()
	g := e.kept
	hit := g != nil && c.Txn != "" && c.Txn == e.keptTxn && g.meta.Serial == c.Serial
	e.keptMu.Unlock()
	if hit {
		return g, nil
	}
	g, err = e.loadGeneration(c.Serial)
	if err != nil {
		return nil, fmt.Errorf("current generation: %w", err)
	}
	e.keep(g, c.Txn)
	return g, nil
}

// keep remembers g as the generation StateDir/current names with txn.
func (e *Engine) keep(g *generation, txn string) {
	e.keptMu.Lock()
	defer e.keptMu.Unlock()
	e.kept, e.keptTxn = g, txn
}

func readMeta(dir string) (genMeta, error) {
	var m genMeta
	b, err := os.ReadFile(filepath.Join(dir, genMetaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, genMetaFile), err)
	}
	return m, nil
}

func (e *Engine) loadGeneration(serial uint64) (*generation, error) {
	dir := e.genPath(serial)
	m, err := readMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("generation %d: %w", serial, err)
	}
	files, err := readTar(filepath.Join(dir, genTarFile))
	if err != nil {
		return nil, fmt.Errorf("generation %d: %w", serial, err)
	}
	for _, f := range m.Manifest.Files {
		if _, ok := files[f.Path]; !ok {
			return nil, fmt.Errorf("generation %d: %s missing from %s", serial, f.Path, genTarFile)
		}
	}
	env, err := os.ReadFile(filepath.Join(dir, genEnvFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("generation %d: %w", serial, err)
	}
	return &generation{meta: m, files: files, envelope: env}, nil
}

// storeGeneration writes g under generations/<serial>.tmp, synced; commit
// renames it into place.
func (e *Engine) storeGeneration(g *generation) error {
	dir := e.genPath(g.meta.Serial) + tmpSuffix
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("store generation: %w", err)
	}
	m := g.meta
	if m.AppliedAt.IsZero() {
		m.AppliedAt = time.Now().UTC()
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(g.meta.Manifest.Files))
	for _, f := range g.meta.Manifest.Files {
		paths = append(paths, f.Path)
	}
	writes := []func() error{
		func() error { return writeSynced(filepath.Join(dir, genMetaFile), mb) },
		func() error { return writeTar(filepath.Join(dir, genTarFile), paths, g.files, nil) },
	}
	if len(g.envelope) > 0 {
		writes = append(writes, func() error { return writeSynced(filepath.Join(dir, genEnvFile), g.envelope) })
	}
	if err := parallel(writes); err != nil {
		return fmt.Errorf("store generation: %w", err)
	}
	return atomicfile.SyncDir(dir)
}

// Generations lists the kept generations, newest first.
func (e *Engine) Generations() ([]Generation, error) {
	serials, err := e.keptSerials()
	if err != nil {
		return nil, err
	}
	out := make([]Generation, 0, len(serials))
	for _, s := range serials {
		m, err := readMeta(e.genPath(s))
		if err != nil {
			return nil, fmt.Errorf("generation %d: %w", s, err)
		}
		out = append(out, m.public())
	}
	return out, nil
}

// keptSerials returns the committed generation serials, newest first.
func (e *Engine) keptSerials() ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Join(e.cfg.StateDir, genDir))
	if err != nil {
		return nil, fmt.Errorf("generations: %w", err)
	}
	var out []uint64
	for _, d := range ents {
		s, err := strconv.ParseUint(d.Name(), 10, 64)
		if err != nil || !d.IsDir() {
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out, nil
}

// prune keeps the newest Keep generations and always the current one.
func (e *Engine) prune(current uint64) error {
	serials, err := e.keptSerials()
	if err != nil {
		return err
	}
	keep := map[uint64]bool{current: true}
	for _, s := range serials {
		if len(keep) < e.cfg.Keep {
			keep[s] = true
		}
	}
	for _, s := range serials {
		if keep[s] {
			continue
		}
		if err := removeGeneration(e.genPath(s)); err != nil {
			return fmt.Errorf("prune generation %d: %w", s, err)
		}
	}
	return nil
}

// removeGeneration removes a generation's folder, its files together
// (each removal may wait for a discard of the freed blocks, see held).
func removeGeneration(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return os.RemoveAll(dir) // gone already, or not a plain folder
	}
	rms := make([]func() error, 0, len(ents))
	for _, d := range ents {
		rms = append(rms, func() error { return os.RemoveAll(filepath.Join(dir, d.Name())) })
	}
	if err := parallel(rms); err != nil {
		return err
	}
	return os.Remove(dir)
}

// removeStaleTmp removes generations that were never committed.
func (e *Engine) removeStaleTmp() error {
	ents, err := os.ReadDir(filepath.Join(e.cfg.StateDir, genDir))
	if err != nil {
		return err
	}
	for _, d := range ents {
		if strings.HasSuffix(d.Name(), tmpSuffix) {
			if err := os.RemoveAll(filepath.Join(e.cfg.StateDir, genDir, d.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTar writes the files named by paths (in that order) to a new tar
// file and syncs it. after, if set, is called after each entry (the crash
// test stops there).
func writeTar(name string, paths []string, files map[string][]byte, after func(i int) error) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for i, p := range paths {
		data := files[p]
		hdr := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if after != nil {
			if err := tw.Flush(); err != nil {
				return err
			}
			if err := after(i); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}

// readTar reads a tar written by writeTar; keys are absolute paths.
func readTar(name string) (map[string][]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, h.Name, err)
		}
		out["/"+h.Name] = data
	}
}

// writeSynced creates name with data and syncs the file (not the directory).
func writeSynced(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// removeStateTemps deletes temp files a killed process left in the state dir.
func (e *Engine) removeStateTemps() {
	tmps, _ := filepath.Glob(filepath.Join(e.cfg.StateDir, atomicfile.TempPrefix("*")+"*"))
	for _, t := range tmps {
		os.Remove(t)
	}
}
