// Package bundle packs, signs and writes per-host bundles: a deterministic
// tar (sorted, regular files only, zeroed times, owners and modes from the
// manifest) compressed with one fixed zstd configuration, and a manifest
// (verify.Manifest) wrapped in a DSSE envelope signed by one or more keys.
// The same render and metadata always give byte-identical archives.
//
// A valid signed bundle from a render in a few lines:
//
//	s, _ := bundle.GenerateSigner(bundle.ECDSA)
//	b, _ := bundle.Build(render, bundle.Meta{Serial: 1, Created: now})
//	_ = b.Sign(s)
//	_, _ = b.Write(outDir) // outDir/<host>/manifest.json, files.tar.zst
//
// and s.Public() is the verify.PublicKey to pin.
package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/atomicfile"
	"github.com/rigger-bsd/rigger/verify"
)

// DefaultExpiry is how long a bundle stays valid when Meta.Expires is zero.
const DefaultExpiry = 30 * 24 * time.Hour

// Meta is what a bundle carries besides the rendered files.
type Meta struct {
	Serial  uint64
	Created time.Time // truncated to the second, UTC
	// Expires defaults to Created + DefaultExpiry.
	Expires time.Time
	// NotBefore defaults to Created + the render's rollout Wave.
	NotBefore time.Time
	Source    verify.Source
	// GateSerials has, for each gating host of the render, the serial of
	// its bundle built from the same commit: the serial it must report
	// healthy before this host applies.
	GateSerials map[string]uint64
	// Paths is the path policy the manifest is checked against before
	// signing; zero means the render's (the host's agent's roots).
	Paths policy.Paths
}

// Built is a packed bundle: its manifest, the exact archive bytes the
// manifest pins, and (after Sign) the signed envelope.
type Built struct {
	Manifest verify.Manifest
	Archive  []byte
	Envelope []byte // manifest.json; nil until signed
}

// Build packs one host's render into an unsigned bundle. It refuses what
// verify would refuse (paths outside the policy, bad units, duplicates).
// It does not modify r (a shared topology.Repo.Rendered is fine) and the
// bundle shares no slice with it but the read-only host description.
func Build(r *topology.HostRender, m Meta) (*Built, error) {
	if r == nil {
		return nil, errors.New("bundle: nil render")
	}
	if m.Created.IsZero() {
		return nil, fmt.Errorf("bundle %s: created time is required", r.Host)
	}
	p, err := Pack(r)
	if err != nil {
		return nil, err
	}
	return p.build(m, p.files)
}

// Packed is a host's archive and the digests of its files: the part of a
// bundle that depends on the render alone. Pack makes it as soon as the
// host is rendered (Packer); Build adds the metadata.
type Packed struct {
	r       *topology.HostRender
	archive []byte
	sum     string        // the archive's SHA-256, hex
	files   []verify.File // the manifest's files, sorted by path
}

// Pack packs r's files into the deterministic archive and lists them with
// their digests. It does not modify r.
func Pack(r *topology.HostRender) (*Packed, error) {
	if r == nil {
		return nil, errors.New("bundle: nil render")
	}
	// The sorted copy of the files lives only during Pack: a reused
	// slice, cleared after use (it points at the render's contents).
	nf := filesPool.Get().(*[]topology.RenderedFile)
	defer func() {
		clear(*nf)
		if cap(*nf) <= 1<<12 {
			filesPool.Put(nf)
		}
	}()
	files := normalize((*nf)[:0], r.Files)
	*nf = files
	archive, err := Archive(files)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", r.Host, err)
	}
	// Every digest in one string: one allocation, not one per file.
	// sums[0] is the archive's, sums[1+i] file i's.
	sums := hexSums(archive, files)
	p := &Packed{r: r, archive: archive, sum: sums[0], files: make([]verify.File, 0, len(files))}
	for i, f := range files {
		p.files = append(p.files, verify.File{
			Path: f.Path, Mode: f.Mode, Owner: f.Owner, Group: f.Group,
			SHA256: sums[1+i], Size: int64(len(f.Content)), Unit: f.Unit,
		})
	}
	return p, nil
}

// Build makes the unsigned bundle of the packed host with m, as Build
// does. Bundles built from one Packed share its archive bytes, which no
// one modifies.
func (p *Packed) Build(m Meta) (*Built, error) {
	if m.Created.IsZero() {
		return nil, fmt.Errorf("bundle %s: created time is required", p.r.Host)
	}
	return p.build(m, slices.Clone(p.files))
}

// build is Build with the manifest's files list (p.files itself when
// p is used once).
func (p *Packed) build(m Meta, files []verify.File) (*Built, error) {
	r := p.r
	created := m.Created.UTC().Truncate(time.Second)
	expires := m.Expires
	if expires.IsZero() {
		expires = created.Add(DefaultExpiry)
	}
	notBefore := m.NotBefore
	if notBefore.IsZero() {
		notBefore = created.Add(r.Wave)
	}
	man := verify.Manifest{
		Schema:       verify.Schema,
		Host:         r.Host,
		Serial:       m.Serial,
		Source:       m.Source,
		Created:      created,
		Expires:      expires.UTC().Truncate(time.Second),
		NotBefore:    notBefore.UTC().Truncate(time.Second),
		Archive:      verify.Archive{SHA256: p.sum, Size: int64(len(p.archive))},
		Health:       slices.Clone(r.Health),
		Secrets:      slices.Clone(r.Secrets),
		NetifRestart: slices.Clone(r.NetifRestart),
		ReportKey:    r.ReportKey,
		HostDesc:     r.Desc,
		Files:        files,
	}
	if len(r.Gate) > 0 {
		man.Gate = &verify.Gate{Bake: verify.Duration(r.Bake)}
		for _, g := range r.Gate {
			serial := m.GateSerials[g]
			if serial == 0 {
				return nil, fmt.Errorf("bundle %s: gating host %s: no serial of its bundle from this build", r.Host, g)
			}
			man.Gate.Hosts = append(man.Gate.Hosts, verify.GateHost{Host: g, Key: r.ReportKeys[g], Serial: serial})
		}
	}
	paths := m.Paths
	if len(paths.Roots) == 0 {
		paths = r.Paths // the host's agent's roots, as the topology states them
	}
	if err := verify.CheckManifest(&man, paths); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", r.Host, err)
	}
	return &Built{Manifest: man, Archive: p.archive}, nil
}

// Packer packs hosts while the topology renders them: Rendered is a
// topology.Options.Rendered. A host packed on the core that just rendered
// it finds its files still in that core's cache, and packing overlaps the
// rest of the fleet's rendering instead of waiting for all of it
// (BenchmarkBuildSignFleet1000: about 3,500 -> 4,300 hosts/s against
// packing after the load, same run; signing there too was slower).
type Packer struct {
	want   map[string]bool // nil: every host
	mu     sync.Mutex
	packed map[string]packResult
}

type packResult struct {
	p   *Packed
	err error
}

// NewPacker packs the given hosts as they render, or every host when
// hosts is empty.
func NewPacker(hosts ...string) *Packer {
	k := &Packer{packed: map[string]packResult{}}
	if len(hosts) > 0 {
		k.want = map[string]bool{}
		for _, h := range hosts {
			k.want[h] = true
		}
	}
	return k
}

// Rendered packs r if its host is wanted; for topology.Options.Rendered.
func (k *Packer) Rendered(r *topology.HostRender) {
	if k.want != nil && !k.want[r.Host] {
		return
	}
	p, err := Pack(r)
	k.mu.Lock()
	k.packed[r.Host] = packResult{p, err}
	k.mu.Unlock()
}

// Packed is host's pack: the one made as it rendered, else repo's render
// of it packed now.
func (k *Packer) Packed(repo *topology.Repo, host string) (*Packed, error) {
	k.mu.Lock()
	res, ok := k.packed[host]
	k.mu.Unlock()
	if ok {
		return res.p, res.err
	}
	r, err := repo.Rendered(host)
	if err != nil {
		return nil, err
	}
	return Pack(r)
}

var filesPool = sync.Pool{New: func() any { return new([]topology.RenderedFile) }}

// normalize appends to dst the files sorted by path, with the defaults the
// topology may leave empty filled: root:wheel, mode 0644, unit none.
func normalize(dst, in []topology.RenderedFile) []topology.RenderedFile {
	files := append(dst, in...)
	for i := range files {
		f := &files[i]
		if f.Owner == "" {
			f.Owner = "root"
		}
		if f.Group == "" {
			f.Group = "wheel"
		}
		if f.Mode == 0 {
			f.Mode = 0o644
		}
		if f.Unit == "" {
			f.Unit = string(verify.UnitNone)
		}
	}
	slices.SortFunc(files, func(a, b topology.RenderedFile) int { return strings.Compare(a.Path, b.Path) })
	return files
}

// epoch is every entry's modification time: archives never depend on when
// or where they were built.
var epoch = time.Unix(0, 0)

// Archive packs files (already normalized and sorted) into the
// deterministic tar and compresses it with the fixed zstd encoder.
func Archive(files []topology.RenderedFile) ([]byte, error) {
	sc := scratchPool.Get().(*scratch)
	defer sc.put()
	var err error
	if sc.tar, err = appendTar(sc.tar[:0], files); err != nil {
		return nil, err
	}
	enc, err := encoder()
	if err != nil {
		return nil, err
	}
	// Compress into the reused buffer, then keep an exact-size copy:
	// zstd would otherwise allocate the tar's size for a few KiB.
	sc.zst = enc.EncodeAll(sc.tar, sc.zst[:0])
	return bytes.Clone(sc.zst), nil
}

// appendTar appends the tar of files to dst: the bytes archive/tar writes
// for them (USTAR headers, contents padded to blocks, two end blocks).
// Headers are written by hand when USTAR holds them as they are (short
// ASCII names, see ustarFits), a third of a host's build time otherwise
// (a Header, its format checks and octal strings per file);
// TestTarSameBytesAsArchiveTar holds the two writers byte-equal. Anything
// else (long names: prefix split or PAX records) goes through archive/tar.
func appendTar(dst []byte, files []topology.RenderedFile) ([]byte, error) {
	// The tar's size is known (a header block per file, contents padded
	// to blocks, two end blocks): one allocation, no regrowth. Longer
	// names (PAX records) just grow it.
	size := 2 * tarBlock
	fits := true
	for _, f := range files {
		size += tarBlock + (len(f.Content)+tarBlock-1)/tarBlock*tarBlock
		fits = fits && ustarFits(f)
	}
	if cap(dst)-len(dst) < size {
		dst = slices.Grow(dst, size)
	}
	if !fits {
		return archiveTar(dst, files)
	}
	for _, f := range files {
		dst = appendUSTARHeader(dst, f)
		dst = append(dst, f.Content...)
		dst = appendZeros(dst, -len(f.Content)&(tarBlock-1))
	}
	return appendZeros(dst, 2*tarBlock), nil
}

// archiveTar is appendTar through archive/tar, for any file.
func archiveTar(dst []byte, files []topology.RenderedFile) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	tw := tar.NewWriter(buf)
	for _, f := range files {
		if err := tw.WriteHeader(tarHeader(f)); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.Path, err)
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarHeader is f's entry as archive/tar is given it.
func tarHeader(f topology.RenderedFile) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     verify.EntryName(f.Path),
		Size:     int64(len(f.Content)),
		Mode:     int64(f.Mode),
		Uname:    f.Owner,
		Gname:    f.Group,
		ModTime:  epoch,
	}
}

// USTAR header fields (POSIX ustar, as archive/tar lays them out).
const (
	tarBlock      = 512
	ustarName     = 0   // 100 bytes
	ustarMode     = 100 // 8: 7 octal digits, NUL
	ustarSize     = 124 // 12: 11 octal digits, NUL
	ustarChecksum = 148 // 8: 6 octal digits, NUL, space
	ustarUname    = 265 // 32
	ustarGname    = 297 // 32
	maxUSTARMode  = 1<<21 - 1
	maxUSTARSize  = 1<<33 - 1
)

// ustarTemplate is the header of every entry before its name, mode,
// size, owner and checksum: a regular file, uid and gid 0, modified at
// the epoch, ustar magic, device numbers 0, numbers written as archive/tar
// writes them (zero-padded octal, NUL-terminated).
var ustarTemplate = func() (b [tarBlock]byte) {
	copy(b[108:], "0000000\x00")     // uid
	copy(b[116:], "0000000\x00")     // gid
	copy(b[136:], "00000000000\x00") // mtime: epoch
	b[156] = tar.TypeReg
	copy(b[257:], "ustar\x0000") // magic, version
	copy(b[329:], "0000000\x00") // devmajor
	copy(b[337:], "0000000\x00") // devminor
	return b
}()

var ustarTemplateSum = func() (sum uint64) {
	for i, c := range ustarTemplate {
		if i >= ustarChecksum && i < ustarChecksum+8 {
			c = ' '
		}
		sum += uint64(c)
	}
	return sum
}()

// ustarFits reports whether archive/tar writes f's header as plain USTAR
// with no name split: name at most 100 bytes, names in ASCII without NUL,
// mode and size within their octal fields.
func ustarFits(f topology.RenderedFile) bool {
	name := verify.EntryName(f.Path)
	return len(name) <= 100 && len(f.Owner) <= 32 && len(f.Group) <= 32 &&
		plainASCII(name) && plainASCII(f.Owner) && plainASCII(f.Group) &&
		uint64(f.Mode) <= maxUSTARMode && int64(len(f.Content)) <= maxUSTARSize
}

func plainASCII(s string) bool {
	for i := range len(s) {
		if s[i] == 0 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// appendUSTARHeader appends f's header block (f must fit: ustarFits).
func appendUSTARHeader(dst []byte, f topology.RenderedFile) []byte {
	h := ustarTemplate
	copy(h[ustarName:ustarName+100], verify.EntryName(f.Path))
	putOctal(h[ustarMode:ustarMode+7], uint64(f.Mode))
	putOctal(h[ustarSize:ustarSize+11], uint64(len(f.Content)))
	copy(h[ustarUname:ustarUname+32], f.Owner)
	copy(h[ustarGname:ustarGname+32], f.Group)
	// The checksum is the sum of the block's bytes, its own field
	// counted as spaces: the template's sum plus the fields set here
	// (zero in the template).
	sum := ustarTemplateSum
	for _, field := range [...][]byte{h[ustarName : ustarName+100], h[ustarMode : ustarMode+7], h[ustarSize : ustarSize+11], h[ustarUname : ustarUname+64]} {
		for _, c := range field {
			sum += uint64(c)
		}
	}
	putOctal(h[ustarChecksum:ustarChecksum+6], sum)
	h[ustarChecksum+7] = ' '
	return append(dst, h[:]...)
}

// putOctal writes x as zero-padded octal filling b (x must fit).
func putOctal(b []byte, x uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + x&7)
		x >>= 3
	}
}

var zeros [2 * tarBlock]byte

func appendZeros(dst []byte, n int) []byte { return append(dst, zeros[:n]...) }

// scratch is the memory one Archive call reuses from an earlier one: the
// tar and its compressed form before the copy Archive returns.
type scratch struct{ tar, zst []byte }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// put returns sc to the pool unless a huge bundle grew it: the pool keeps
// what a typical host needs, not the largest host's memory.
func (sc *scratch) put() {
	const keep = 4 << 20
	if cap(sc.tar) > keep || cap(sc.zst) > keep {
		return
	}
	scratchPool.Put(sc)
}

var encoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	// One API (EncodeAll), one level, a 1 MiB window (well under the
	// verifier's limit): the same tar always compresses to the same bytes
	// with this compress version. Each EncodeAll runs on one goroutine;
	// the concurrency is how many may run at once (one per core: hosts
	// are built in parallel, see ForEach), not how one is split.
	//
	// SpeedFastest, not SpeedDefault: archives are small (uirig serverA's
	// tar is 35,840 bytes) and Default's double-fast tables (1.25 MiB per
	// encoder, the same for any input) miss the cache on every lookup
	// once rendering runs beside them: in BenchmarkBuildSignFleet1000
	// EncodeAll took 92 µs per host at Default, 50 µs at Fastest (256 KiB
	// table). It costs 4% in size: serverA 5,209 → 5,412 bytes, the
	// generated 1,000-host fleet 5.21 → 5.43 MB.
	//
	// The other options that keep the format gain too little for their
	// cost (EncodeAll of 100 fleet tars of 35,840 bytes, one core, median
	// of 6; a fleet host costs about 450 µs of CPU in all): today 42.6 µs,
	// 5,425 bytes; without the CRC 38.5 µs, 5,421 bytes (under 1% of a
	// host; verify checks the archive's SHA-256 first, so only tools like
	// zstd -t use the CRC); WithNoEntropyCompression 32.6 µs but 6,841
	// bytes (+26%); WithWindowSize(64 KiB), WithLowerEncoderMem and
	// WithZeroFrames give the same size at the same speed (such a tar is
	// one block in one segment, and a tar is never empty).
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(1<<20),
		zstd.WithEncoderCRC(true),
	)
})

// ForEach runs fn(0) … fn(n-1) on every core (at most GOMAXPROCS at a
// time) and returns their errors by index. Hosts are independent: this
// is how a fleet is built.
func ForEach(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// BatchGCPercent is the garbage collector's target (GOGC) while bundles
// are built: a build is a short batch whose live heap is the rendered
// fleet, so collecting at twice that heap instead of at once it trades
// about 100 MB more peak memory for the 1,000-host fleet (170 -> 270 MB)
// for 8-10% less CPU (BenchmarkBuildSignFleet1000, GOGC=100 vs 200, same
// run). The Go compiler raises its own starting heap for the same reason
// (cmd/compile/internal/base, AdjustStartingHeap).
const BatchGCPercent = 200

// BatchGC sets the GC target to BatchGCPercent for a build, unless the
// operator set GOGC, and returns the function that puts it back.
func BatchGC() (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	old := debug.SetGCPercent(BatchGCPercent)
	return func() { debug.SetGCPercent(old) }
}

// hexSums is the SHA-256 of archive, then of each file's content, in
// lower-case hex: substrings of one string.
func hexSums(archive []byte, files []topology.RenderedFile) []string {
	const n = 2 * sha256.Size
	var b strings.Builder
	b.Grow(n * (1 + len(files)))
	var h [n]byte
	add := func(content []byte) {
		sum := sha256.Sum256(content)
		hex.Encode(h[:], sum[:])
		b.Write(h[:])
	}
	add(archive)
	for _, f := range files {
		add(f.Content)
	}
	all := b.String()
	out := make([]string, 0, 1+len(files))
	for i := 0; i < len(all); i += n {
		out = append(out, all[i:i+n])
	}
	return out
}

// Payload is the manifest JSON that signatures cover.
func (b *Built) Payload() ([]byte, error) { return appendPayload(nil, &b.Manifest) }

// Write stores the bundle as outDir/<host>/files.tar.zst and
// outDir/<host>/manifest.json (archive first, each replaced atomically) and
// returns the host folder.
func (b *Built) Write(outDir string) (string, error) {
	if b.Envelope == nil {
		return "", fmt.Errorf("bundle %s: not signed", b.Manifest.Host)
	}
	dir := filepath.Join(outDir, b.Manifest.Host)
	if err := mkdir(dir); err != nil {
		return "", fmt.Errorf("write bundle %s: %w", b.Manifest.Host, err)
	}
	if err := writeFile(filepath.Join(dir, verify.ArchiveFile), b.Archive, 0o644); err != nil {
		return "", fmt.Errorf("write bundle %s: %w", b.Manifest.Host, err)
	}
	if err := writeFile(filepath.Join(dir, verify.ManifestFile), b.Envelope, 0o644); err != nil {
		return "", fmt.Errorf("write bundle %s: %w", b.Manifest.Host, err)
	}
	return dir, nil
}

// PreviousSerial returns the serial of host's bundle in dir (a bundles
// folder), or 0 when there is none. The manifest is read without checking
// signatures: it only decides the next serial, which verify re-checks.
func PreviousSerial(dir, host string) (uint64, error) {
	b, err := verify.ReadFileLimited(filepath.Join(dir, host, verify.ManifestFile), verify.DefaultLimits().ManifestSize)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	m, err := verify.ReadManifestUnverified(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, host, verify.ManifestFile), err)
	}
	if m.Host != host {
		return 0, fmt.Errorf("%s: manifest is for host %q", filepath.Join(dir, host), m.Host)
	}
	return m.Serial, nil
}

// mkdir makes dir, and its parents only when they are missing: one
// mkdir(2) for each host of a fleet, where os.MkdirAll stats dir and its
// parent first.
func mkdir(dir string) error {
	err := os.Mkdir(dir, 0o755)
	switch {
	case err == nil || errors.Is(err, fs.ErrExist):
		return nil // an existing non-folder fails the file writes, naming it
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o755)
	}
	return err
}

// writeFile replaces name atomically (temp file in the same folder, then
// rename) so a reader never sees half a bundle file. No fsync: build output
// is re-creatable and the publisher reads it right away.
func writeFile(name string, data []byte, perm os.FileMode) error {
	return atomicfile.WriteFile(name, data, perm, atomicfile.Volatile)
}
