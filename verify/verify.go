package verify

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rigger-bsd/rigger/policy"
)

// CONTRACT (shared with the agent and the bundler CLI): the names and
// signatures in this file are used by other packages.

// PublicKey is a pinned trusted key.
type PublicKey struct {
	ID  string // KeyID of the key
	Key crypto.PublicKey
}

// Limits bound every resource an untrusted bundle can make us spend.
type Limits struct {
	ManifestSize int64  // bytes of manifest.json
	ArchiveSize  int64  // bytes of files.tar.zst
	DecodedSize  int64  // bytes of the decompressed tar
	MaxWindow    uint64 // zstd window
	MaxMemory    uint64 // zstd decoder memory
	MaxFiles     int
}

// DefaultLimits are generous for configuration bundles and tiny for attacks.
func DefaultLimits() Limits {
	return Limits{
		ManifestSize: 1 << 20,
		ArchiveSize:  32 << 20,
		DecodedSize:  64 << 20,
		MaxWindow:    8 << 20,
		MaxMemory:    64 << 20,
		MaxFiles:     1000,
	}
}

// Options are the trust anchors and expectations of one verification.
type Options struct {
	Keys       []PublicKey
	Threshold  int
	Host       string // the expected host; "" only for offline inspection
	LastSerial uint64 // serial must be strictly greater
	Now        func() time.Time
	Limits     Limits
	Paths      policy.Paths
}

// Verify checks a bundle in the order of SECURITY.md and returns it only if
// every check passed. Errors are *RejectError for anything the bundle did
// wrong; anything else is an I/O problem of the caller.
//
// Verify writes nothing and runs nothing: it only reads the two inputs.
// A zero Limits (or zero field) means DefaultLimits; a zero Paths means
// policy.DefaultPaths; a nil Now means time.Now. Threshold must be at least
// 1 and no more than the number of distinct keys.
func Verify(manifest []byte, archive io.Reader, opts Options) (*Bundle, error) {
	keys, err := distinctKeys(opts.Keys)
	if err != nil {
		return nil, err
	}
	if opts.Threshold < 1 {
		return nil, fmt.Errorf("verify: threshold %d: must be at least 1", opts.Threshold)
	}
	if opts.Threshold > len(keys) {
		return nil, fmt.Errorf("verify: threshold %d but only %d distinct trusted key(s)", opts.Threshold, len(keys))
	}
	lim := opts.Limits.withDefaults()
	if int64(len(manifest)) > lim.ManifestSize {
		return nil, reject(ErrTooLarge, "manifest is %d bytes, limit %d", len(manifest), lim.ManifestSize)
	}
	env, payload, err := parseEnvelope(manifest)
	if err != nil {
		return nil, err
	}
	signers, err := checkSignatures(env, payload, keys, opts.Threshold)
	if err != nil {
		return nil, err
	}
	b, err := verifyPayload(env, payload, archive, opts, lim)
	if err != nil {
		return nil, err
	}
	b.Signers = signers
	b.Envelope = manifest
	return b, nil
}

// Inspect runs every check of Verify except the signatures and the trust
// state (serial, expiry): for review tools such as "bundler diff" without
// keys. Its result is NOT trusted and must never be applied.
func Inspect(manifest []byte, archive io.Reader, opts Options) (*Bundle, error) {
	lim := opts.Limits.withDefaults()
	if int64(len(manifest)) > lim.ManifestSize {
		return nil, reject(ErrTooLarge, "manifest is %d bytes, limit %d", len(manifest), lim.ManifestSize)
	}
	env, payload, err := parseEnvelope(manifest)
	if err != nil {
		return nil, err
	}
	opts.LastSerial = 0
	opts.Now = func() time.Time { return time.Time{} }
	b, err := verifyPayload(env, payload, archive, opts, lim)
	if err != nil {
		return nil, err
	}
	b.Envelope = manifest
	return b, nil
}

// ReadManifestUnverified decodes the manifest inside an envelope without
// checking any signature: for tools that only need the published serial of
// a host (bundler build --previous, publish). Never trust its content.
func ReadManifestUnverified(manifest []byte) (*Manifest, error) {
	if int64(len(manifest)) > DefaultLimits().ManifestSize {
		return nil, reject(ErrTooLarge, "manifest is %d bytes, limit %d", len(manifest), DefaultLimits().ManifestSize)
	}
	env, payload, err := parseEnvelope(manifest)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, reject(ErrPayloadType, "got %q, want %q", env.PayloadType, PayloadType)
	}
	// Only the serial is wanted: the host agent's roots are not known here.
	return DecodeManifest(payload, policy.Paths{Any: true})
}

// verifyPayload is everything after the signatures: payload type, manifest,
// trust state, archive.
func verifyPayload(env *Envelope, payload []byte, archive io.Reader, opts Options, lim Limits) (*Bundle, error) {
	if env.PayloadType != PayloadType {
		return nil, reject(ErrPayloadType, "got %q, want %q", env.PayloadType, PayloadType)
	}
	m, err := DecodeManifest(payload, opts.Paths)
	if err != nil {
		return nil, err
	}
	if err := checkFresh(m, opts); err != nil {
		return nil, err
	}
	files, err := readArchive(m, archive, lim)
	if err != nil {
		return nil, err
	}
	return &Bundle{Manifest: *m, Files: files}, nil
}

// The file names of a bundle folder (contract).
const (
	ManifestFile = "manifest.json"
	ArchiveFile  = "files.tar.zst"
)

// VerifyDir verifies the bundle in dir (dir/manifest.json and
// dir/files.tar.zst), reading the manifest with a bound.
func VerifyDir(dir string, opts Options) (*Bundle, error) {
	return fromDir(dir, opts, Verify)
}

// InspectDir is Inspect on a bundle folder. Never trust its result.
func InspectDir(dir string, opts Options) (*Bundle, error) {
	return fromDir(dir, opts, Inspect)
}

func fromDir(dir string, opts Options, check func([]byte, io.Reader, Options) (*Bundle, error)) (*Bundle, error) {
	lim := opts.Limits.withDefaults()
	man, err := ReadFileLimited(filepath.Join(dir, ManifestFile), lim.ManifestSize)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, ArchiveFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return check(man, f, opts)
}

// ReadFileLimited reads a file of at most limit bytes; a longer file is a
// *RejectError with ErrTooLarge, and the rest is never read.
func ReadFileLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, reject(ErrTooLarge, "%s is over the limit of %d bytes", name, limit)
	}
	return b, nil
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.ManifestSize <= 0 {
		l.ManifestSize = d.ManifestSize
	}
	if l.ArchiveSize <= 0 {
		l.ArchiveSize = d.ArchiveSize
	}
	if l.DecodedSize <= 0 {
		l.DecodedSize = d.DecodedSize
	}
	if l.MaxWindow == 0 {
		l.MaxWindow = d.MaxWindow
	}
	if l.MaxMemory == 0 {
		l.MaxMemory = d.MaxMemory
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	return l
}

// RejectError says why a bundle was refused. Reason is one of the Err*
// sentinels, so callers use errors.Is(err, verify.ErrRollback).
type RejectError struct {
	Reason error
	Detail string
}

func (e *RejectError) Error() string {
	if e.Detail == "" {
		return e.Reason.Error()
	}
	return e.Reason.Error() + ": " + e.Detail
}

func (e *RejectError) Unwrap() error { return e.Reason }

// Reasons a bundle is rejected.
var (
	ErrMalformed      = errors.New("malformed envelope or manifest")
	ErrBadSignature   = errors.New("bad signature")
	ErrThreshold      = errors.New("not enough trusted signatures")
	ErrPayloadType    = errors.New("wrong payload type")
	ErrWrongHost      = errors.New("bundle for another host")
	ErrRollback       = errors.New("serial not above the last accepted")
	ErrExpired        = errors.New("bundle expired")
	ErrArchiveDigest  = errors.New("archive digest mismatch")
	ErrTooLarge       = errors.New("over the size limit")
	ErrUnsafeEntry    = errors.New("unsafe archive entry")
	ErrMismatch       = errors.New("manifest and archive disagree")
	ErrPathNotAllowed = errors.New("target path not allowed")
	ErrSerialJump     = errors.New("serial jumps too far ahead")
)
