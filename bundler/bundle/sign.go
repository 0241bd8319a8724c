package bundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/verify"
)

// KeyType names a signing key algorithm.
type KeyType string

const (
	ECDSA   KeyType = "ecdsa"   // ECDSA P-256 with SHA-256 (default; cosign-compatible)
	Ed25519 KeyType = "ed25519" // pure Ed25519
)

// Signer signs manifests with one private key.
type Signer struct {
	*verify.Signer
	// dsse signs PAE bytes with the same key through sigstore's signer:
	// what sigstore's DSSE wrapper does, without its envelope JSON
	// round trip per bundle (see appendSignature).
	dsse signature.Signer
}

// NewSigner wraps an ECDSA P-256 or Ed25519 private key.
func NewSigner(priv crypto.PrivateKey) (*Signer, error) {
	s, err := verify.NewSigner(priv)
	if err != nil {
		return nil, err
	}
	ds, err := signature.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &Signer{Signer: s, dsse: ds}, nil
}

// KeyID is verify.KeyID of the public key.
func (s *Signer) KeyID() string { return s.Public().ID }

// PublicPEM is the public key as PKIX PEM.
func (s *Signer) PublicPEM() ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(s.Public().Key)
}

// GenerateSigner makes a fresh in-memory signer (tests, demos).
func GenerateSigner(t KeyType) (*Signer, error) {
	priv, err := generate(t)
	if err != nil {
		return nil, err
	}
	return NewSigner(priv)
}

func generate(t KeyType) (crypto.PrivateKey, error) {
	switch t {
	case ECDSA, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("key type %q: want ecdsa or ed25519", t)
}

// GenerateKey makes a key pair: the private key as an ENCRYPTED SIGSTORE
// PRIVATE KEY PEM (scrypt + secretbox, via sigstore's cryptoutils) under
// password, and the public key as PKIX PEM.
func GenerateKey(t KeyType, password []byte) (privPEM, pubPEM []byte, err error) {
	if len(password) == 0 {
		return nil, nil, errors.New("keygen: empty password")
	}
	pf := cryptoutils.StaticPasswordFunc(password)
	if t == ECDSA || t == "" {
		return cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), pf)
	}
	priv, err := generate(t)
	if err != nil {
		return nil, nil, err
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, pf)
	if err != nil {
		return nil, nil, fmt.Errorf("keygen: %w", err)
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.(ed25519.PrivateKey).Public())
	if err != nil {
		return nil, nil, fmt.Errorf("keygen: %w", err)
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der), pubPEM, nil
}

// ParseSigner decrypts a private key PEM made by GenerateKey.
func ParseSigner(privPEM, password []byte) (*Signer, error) {
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(privPEM, cryptoutils.StaticPasswordFunc(password))
	if err != nil {
		return nil, fmt.Errorf("private key: %w (wrong password?)", err)
	}
	return NewSigner(priv)
}

// LoadSigner reads and decrypts a private key file. The path is a file
// path, never a KMS URI (sigstore's KMS loader may execute plugins).
func LoadSigner(path string, password []byte) (*Signer, error) {
	b, err := verify.ReadFileLimited(path, 64<<10)
	if err != nil {
		return nil, err
	}
	s, err := ParseSigner(b, password)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Sign adds one signature per signer to the bundle's envelope, creating
// the envelope from the manifest on first use.
func (b *Built) Sign(signers ...*Signer) error {
	var env *verify.Envelope
	var payload []byte
	var err error
	fresh := b.Envelope == nil
	if fresh {
		// The payload lives until the envelope is written: a reused
		// buffer, not one the size of the manifest per bundle.
		sc := payloadPool.Get().(*[]byte)
		defer func() {
			if cap(*sc) <= 1<<20 {
				payloadPool.Put(sc)
			}
		}()
		if payload, err = appendPayload((*sc)[:0], &b.Manifest); err != nil {
			return err
		}
		*sc = payload
		// The payload is base64-encoded once, into the envelope's bytes.
		env = &verify.Envelope{PayloadType: verify.PayloadType, Signatures: []verify.Signature{}}
	} else if env, payload, err = verify.ParseEnvelope(b.Envelope); err != nil {
		return fmt.Errorf("sign %s: %w", b.Manifest.Host, err)
	}
	for _, s := range signers {
		if err := appendSignature(env, payload, s); err != nil {
			return fmt.Errorf("sign %s: %w", b.Manifest.Host, err)
		}
	}
	if fresh {
		b.Envelope = marshalEnvelope(env.PayloadType, payload, env.Signatures)
		return nil
	}
	out, err := env.Marshal()
	if err != nil {
		return err
	}
	b.Envelope = out
	return nil
}

// marshalEnvelope is verify.Envelope.Marshal of an envelope with this
// payload, written in one buffer: the payload is base64-encoded straight
// into it instead of into a string encoding/json would copy again (the
// payload is most of a bundle's manifest.json). The short strings are
// quoted as encoding/json quotes them (appendJSONString);
// TestMarshalEnvelope holds the bytes equal to Envelope.Marshal.
func marshalEnvelope(payloadType string, payload []byte, sigs []verify.Signature) []byte {
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(payload))+len(payloadType)+64+len(sigs)*192)
	out = append(out, `{"payloadType":`...)
	out = appendJSONString(out, payloadType)
	out = append(out, `,"payload":"`...)
	out = base64.StdEncoding.AppendEncode(out, payload)
	out = append(out, `","signatures":[`...)
	for i, sig := range sigs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"keyid":`...)
		out = appendJSONString(out, sig.KeyID)
		out = append(out, `,"sig":`...)
		out = appendJSONString(out, sig.Sig)
		out = append(out, '}')
	}
	return append(out, "]}\n"...)
}

var payloadPool = sync.Pool{New: func() any { return new([]byte) }}

// ErrAlreadySigned is returned when a key signs an envelope twice: a second
// signature by the same key adds no trust.
var ErrAlreadySigned = errors.New("already signed by this key")

// AddSignature signs the payload of an existing envelope with s (through
// sigstore's DSSE signer) and appends the signature with s's key id. The
// payload must be a valid manifest whose paths the host's agent allows
// (paths: its policy; zero means the default roots); its content is not
// changed.
func AddSignature(envelope []byte, s *Signer, paths policy.Paths) ([]byte, error) {
	env, payload, err := verify.ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != verify.PayloadType {
		return nil, fmt.Errorf("payload type %q, want %q", env.PayloadType, verify.PayloadType)
	}
	if _, err := verify.DecodeManifest(payload, paths); err != nil {
		return nil, err
	}
	if err := appendSignature(env, payload, s); err != nil {
		return nil, err
	}
	return env.Marshal()
}

// appendSignature signs PAE(env.PayloadType, payload) with s and appends
// the signature, with s's key id, to env. This is sigstore's DSSE signer
// (dsse.WrapSigner: PAE, then the key's SignMessage) minus the envelope it
// marshals and the caller would parse again; TestEnvelopeIsStandardDSSE
// holds the result to sigstore's DSSE verifier.
func appendSignature(env *verify.Envelope, payload []byte, s *Signer) error {
	for _, sig := range env.Signatures {
		if sig.KeyID == s.KeyID() {
			return fmt.Errorf("key %s: %w", s.KeyID()[:12], ErrAlreadySigned)
		}
	}
	if len(env.Signatures) >= verify.MaxSignatures {
		return fmt.Errorf("already %d signatures, the most an envelope may carry", len(env.Signatures))
	}
	sig, err := s.dsse.SignMessage(paeReader(env.PayloadType, payload))
	if err != nil {
		return err
	}
	env.Signatures = append(env.Signatures, verify.Signature{KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)})
	return nil
}

// SignDir adds s's signature to the bundle in hostDir (its manifest.json),
// replacing the file atomically; paths is the host agent's path policy.
func SignDir(hostDir string, s *Signer, paths policy.Paths) error {
	name := filepath.Join(hostDir, verify.ManifestFile)
	b, err := verify.ReadFileLimited(name, verify.DefaultLimits().ManifestSize)
	if err != nil {
		return err
	}
	out, err := AddSignature(b, s, paths)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	return writeFile(name, out, fi.Mode().Perm())
}
