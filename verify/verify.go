package verify

import (
	"crypto"
	"errors"
	"io"
	"time"

	"github.com/rigger-bsd/rigger/policy"
)

// CONTRACT (shared with the agent and the bundler CLI): the names and
// signatures in this file are used by other packages. Bodies are stubs until
// the verifier lands.

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
		MaxFiles:     10000,
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
func Verify(manifest []byte, archive io.Reader, opts Options) (*Bundle, error) {
	return nil, errors.New("verify: not implemented yet")
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
)
