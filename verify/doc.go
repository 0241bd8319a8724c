// Package verify is the trust boundary: it reads a bundle (a DSSE envelope
// around a manifest, and a zstd-compressed tar) and hands out its files only
// when every check passed, in the order of SECURITY.md: bounded manifest,
// k-of-n signatures by distinct pinned keys, payload type, strict manifest
// decode and path policy, host, serial (above the last accepted, bounded
// jump), expiry, archive size and digest, bounded zstd, and a tar whose
// every entry is a regular file listed in the manifest with the right size,
// mode, owner and digest.
//
// Verify never writes, never executes and never resolves key URIs: pinned
// keys are PEM public keys (LoadPublicKey). Every refusal caused by the
// bundle is a *RejectError whose Reason is one of the Err* sentinels.
//
// Key ids are the hex SHA-256 of the PKIX DER public key (KeyID); the keyid
// field of a signature is only a hint, every signature is checked against
// the pinned keys and each key counts once towards the threshold.
package verify
