package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// EntryName is the tar entry name of a target path: the path without its
// leading slash ("/etc/pf.conf" → "etc/pf.conf").
func EntryName(target string) string { return strings.TrimPrefix(target, "/") }

// readArchive reads exactly the manifest's archive size, checks its digest,
// decompresses it within limits and matches every tar entry against the
// manifest. It returns the verified file contents by target path.
func readArchive(m *Manifest, r io.Reader, lim Limits) (map[string][]byte, error) {
	if m.Archive.Size > lim.ArchiveSize {
		return nil, reject(ErrTooLarge, "archive size %d over the limit %d", m.Archive.Size, lim.ArchiveSize)
	}
	if len(m.Files) > lim.MaxFiles {
		return nil, reject(ErrTooLarge, "%d files over the limit %d", len(m.Files), lim.MaxFiles)
	}
	var total int64
	for _, f := range m.Files {
		total += f.Size
		if f.Size > lim.DecodedSize || total > lim.DecodedSize {
			return nil, reject(ErrTooLarge, "files add up to more than the decoded limit %d bytes", lim.DecodedSize)
		}
	}
	// One byte more than announced tells a longer archive from an exact one.
	buf := getBuf(int(m.Archive.Size) + 1)
	defer putBuf(buf)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return nil, reject(ErrArchiveDigest, "archive longer than the %d bytes the manifest says", m.Archive.Size)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
	default:
		return nil, fmt.Errorf("read archive: %w", err)
	}
	if int64(n) != m.Archive.Size {
		return nil, reject(ErrArchiveDigest, "archive is %d bytes, manifest says %d (truncated)", n, m.Archive.Size)
	}
	data := buf[:n]
	if err := checkDigest(data, m.Archive.SHA256); err != nil {
		return nil, reject(ErrArchiveDigest, "archive %v", err)
	}
	tarBuf := getBuf(0)
	defer func() { putBuf(tarBuf) }()
	tarBytes, err := decompress(tarBuf, data, decodedLimit(m, lim), lim)
	tarBuf = tarBytes
	if err != nil {
		return nil, err
	}
	return readTar(m, tarBytes, total)
}

// bufs keeps the archive and tar buffers between verifications: nothing
// read from them outlives readArchive (readTar copies each file out).
var bufs sync.Pool

// maxPooledBuf bounds what a pooled buffer keeps: one large bundle must
// not pin its memory in the agent for good.
const maxPooledBuf = 4 << 20

// getBuf returns a buffer of length n from the pool, or a new one.
func getBuf(n int) []byte {
	if p, _ := bufs.Get().(*[]byte); p != nil && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

func putBuf(b []byte) {
	if b == nil || cap(b) > maxPooledBuf {
		return
	}
	bufs.Put(&b)
}

// decodedLimit is the most tar bytes a manifest can explain: a header block
// or three per file (PAX records for long names), the padded contents and
// the trailer, with a floor so small bundles never trip on zstd framing.
func decodedLimit(m *Manifest, lim Limits) int64 {
	n := int64(2 << 20)
	for _, f := range m.Files {
		n += 4096 + (f.Size+511)/512*512
	}
	mem := int64(math.MaxInt64)
	if lim.MaxMemory < math.MaxInt64 {
		mem = int64(lim.MaxMemory)
	}
	return min(n, lim.DecodedSize, mem)
}

// decoders keeps zstd decoders between verifications: a new one costs
// more than decoding a configuration bundle. Each is synchronous
// (concurrency 1, no goroutines) and gets the limits of its next use
// through ResetWithOptions.
var decoders sync.Pool

// decompress decodes a whole zstd archive with every limit set: window,
// memory and output, synchronously (no decoder goroutines).
// The result is written into dst's storage when it fits.
func decompress(dst, data []byte, limit int64, lim Limits) ([]byte, error) {
	d, _ := decoders.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
	}
	if err := d.ResetWithOptions(nil, zstd.WithDecoderMaxWindow(lim.MaxWindow), zstd.WithDecoderMaxMemory(uint64(limit))); err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	defer decoders.Put(d)
	out, err := d.DecodeAll(data, dst[:0])
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded):
		return nil, reject(ErrTooLarge, "zstd window over the limit %d: %v", lim.MaxWindow, err)
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return nil, reject(ErrTooLarge, "decompressed archive over the limit %d bytes", limit)
	case err != nil:
		return nil, reject(ErrMalformed, "archive: zstd: %v", err)
	}
	if int64(len(out)) > limit {
		return nil, reject(ErrTooLarge, "decompressed archive over the limit %d bytes", limit)
	}
	return out, nil
}

// readTar matches the tar against the manifest: regular files only, local
// names, each manifest file exactly once with its size, mode, owner and
// digest, and nothing else. total is the sum of the manifest's file
// sizes (already held to the limits): the contents share one allocation.
func readTar(m *Manifest, tarBytes []byte, total int64) (map[string][]byte, error) {
	want := make(map[string]*File, len(m.Files))
	for i := range m.Files {
		want[EntryName(m.Files[i].Path)] = &m.Files[i]
	}
	files := make(map[string][]byte, len(m.Files))
	// Each manifest file is read at most once, with its manifest size, so
	// the contents fit exactly; each body is capped at its own length so
	// an append to one never writes into the next.
	store := make([]byte, total)
	tr := tarReader{b: tarBytes}
	for {
		e, err := tr.next()
		if err == errTarEnd {
			break
		}
		if err != nil {
			return nil, err
		}
		// The name as a string: the manifest's when it is one of its
		// (the same bytes), so a valid archive costs no copy of it.
		f, ok := want[string(e.name)]
		name := string(e.name)
		if ok {
			name = EntryName(f.Path)
		}
		if err := nameSafe(name); err != nil {
			return nil, err
		}
		if !ok {
			return nil, reject(ErrMismatch, "tar entry %q is not in the manifest", name)
		}
		if _, dup := files[f.Path]; dup {
			return nil, reject(ErrUnsafeEntry, "tar entry %q appears twice", name)
		}
		size := int64(len(e.body))
		if size != f.Size {
			return nil, reject(ErrMismatch, "%s: %d bytes in the archive, manifest says %d", f.Path, size, f.Size)
		}
		if e.mode != int64(f.Mode) {
			return nil, reject(ErrMismatch, "%s: mode %04o in the archive, manifest says %04o", f.Path, e.mode, uint32(f.Mode))
		}
		if string(e.uname) != f.Owner || string(e.gname) != f.Group {
			return nil, reject(ErrMismatch, "%s: owner %s:%s in the archive, manifest says %s:%s", f.Path, e.uname, e.gname, f.Owner, f.Group)
		}
		if size > int64(len(store)) { // only if the manifest was never checked
			return nil, reject(ErrMismatch, "%s: more bytes than the manifest's files add up to", f.Path)
		}
		body := store[:size:size]
		store = store[size:]
		copy(body, e.body)
		if err := checkDigest(body, f.SHA256); err != nil {
			return nil, reject(ErrMismatch, "%s: %v", f.Path, err)
		}
		files[f.Path] = body
	}
	if len(files) != len(m.Files) {
		for _, f := range m.Files {
			if _, ok := files[f.Path]; !ok {
				return nil, reject(ErrMismatch, "%s is in the manifest but not in the archive", f.Path)
			}
		}
	}
	return files, nil
}

// nameSafe refuses a tar entry name that is not a local, clean path.
func nameSafe(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || !filepath.IsLocal(name) || path.Clean(name) != name ||
		strings.Contains(name, "\\") {
		return reject(ErrUnsafeEntry, "tar entry %q: not a clean relative path", name)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == ".." {
			return reject(ErrUnsafeEntry, "tar entry %q: contains ..", name)
		}
	}
	return nil
}

// checkDigest compares b's SHA-256 with want (lowercase hex, as
// CheckManifest holds it), spelling the digest out only for the error.
func checkDigest(b []byte, want string) error {
	sum := sha256.Sum256(b)
	var got [2 * sha256.Size]byte
	hex.Encode(got[:], sum[:])
	if string(got[:]) != want {
		return fmt.Errorf("sha256 %s, manifest says %s", string(got[:]), want)
	}
	return nil
}
