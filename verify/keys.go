package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// maxKeyFile bounds a public key file: a PEM public key is a few hundred bytes.
const maxKeyFile = 64 << 10

// KeyID is the id of a public key: the lowercase hex SHA-256 of its PKIX DER
// encoding (TUF style). Signatures in a manifest envelope carry it.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// LoadPublicKey parses one PEM public key (PKIX "PUBLIC KEY"). Only the two
// key types the bundler makes are accepted: ECDSA P-256 and Ed25519. Keys are
// only ever read from PEM bytes, never resolved through sigstore's KMS
// loader, which may execute a plugin named after the URI scheme.
func LoadPublicKey(pemBytes []byte) (PublicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key: %w", err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return PublicKey{}, fmt.Errorf("public key: ECDSA curve %s not supported (want P-256)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return PublicKey{}, fmt.Errorf("public key: type %T not supported (want ECDSA P-256 or Ed25519)", pub)
	}
	id, err := KeyID(pub)
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{ID: id, Key: pub}, nil
}

// LoadPublicKeyFile reads and parses a PEM public key file.
func LoadPublicKeyFile(path string) (PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return PublicKey{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return PublicKey{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return PublicKey{}, fmt.Errorf("%s: larger than %d bytes, not a public key", path, maxKeyFile)
	}
	k, err := LoadPublicKey(b)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// verifier returns the sigstore verifier for a pinned key. ECDSA uses
// SHA-256; Ed25519 ignores the hash and signs the whole (bounded) PAE.
func (k PublicKey) verifier() (signature.Verifier, error) {
	return signature.LoadVerifier(k.Key, crypto.SHA256)
}
