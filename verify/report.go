package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
)

// ReportPayloadType is the DSSE payload type of a host's status report. It
// differs from the manifest's, so neither can ever pass for the other: a
// host key signature is never a bundle signature and the reverse.
const ReportPayloadType = "application/vnd.rigger.status+json"

// ReportSchema is the report schema version this package reads and writes.
const ReportSchema = 1

// Report bounds: a report is a few KB; anything larger is refused unread.
const (
	MaxReportSize   = 64 << 10
	MaxReportFailed = 16  // failed serials a report remembers
	MaxReportChecks = 256 // health results in one report
	maxReportText   = 2048
)

// Report is what an agent says about its host after every outcome, signed
// with the host's own key and pushed to the host's status ref. Gates of
// later waves and `bundler status` read it.
type Report struct {
	Schema int       `json:"schema"`
	Host   string    `json:"host"`
	Time   time.Time `json:"time"` // when the report was made (host clock)
	// Outcome is the poll outcome the report is about (applied,
	// rolled-back, rejected, degraded, held, waiting, drift, ...).
	Outcome string `json:"outcome"`
	Serial  uint64 `json:"serial,omitempty"` // the serial the outcome is about
	Commit  string `json:"commit,omitempty"` // that serial's source commit
	Reason  string `json:"reason,omitempty"`
	// Current is the generation that runs now; nil before the first apply.
	Current *ReportCurrent `json:"current,omitempty"`
	// Healthy: a generation runs, its health checks passed, and the host
	// is neither degraded nor drifted.
	Healthy bool          `json:"healthy"`
	Health  []ReportCheck `json:"health,omitempty"`
	// Failed are the serials this host rolled back or rejected, newest
	// last (at most MaxReportFailed): a gate on this host never opens for
	// them.
	Failed  []ReportFailed `json:"failed,omitempty"`
	Hold    string         `json:"hold,omitempty"`
	Pending *ReportPending `json:"pending,omitempty"`
	Drift   []string       `json:"drift,omitempty"`
}

// ReportCurrent is the running generation.
type ReportCurrent struct {
	Serial    uint64    `json:"serial"`
	Commit    string    `json:"commit,omitempty"`
	AppliedAt time.Time `json:"applied_at"`
}

// ReportCheck is one health check result.
type ReportCheck struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// ReportFailed is a serial the host refused or rolled back.
type ReportFailed struct {
	Serial  uint64    `json:"serial"`
	Commit  string    `json:"commit,omitempty"`
	Outcome string    `json:"outcome"` // rolled-back | rejected | degraded
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// ReportPending is a verified bundle the host has not applied yet.
type ReportPending struct {
	Serial uint64 `json:"serial"`
	Commit string `json:"commit,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// FailedSerial returns the failure recorded for serial, or nil.
func (r *Report) FailedSerial(serial uint64) *ReportFailed {
	for i := len(r.Failed) - 1; i >= 0; i-- {
		if r.Failed[i].Serial == serial {
			return &r.Failed[i]
		}
	}
	return nil
}

// ErrReport marks a report that is not acceptable: unsigned or signed by
// another key, for another host, of another payload type, malformed.
var ErrReport = errors.New("status report refused")

// CheckReport validates a report's form.
func CheckReport(r *Report) error {
	bad := func(format string, args ...any) error { return reject(ErrReport, "report: "+format, args...) }
	switch {
	case r.Schema != ReportSchema:
		return bad("schema %d, want %d", r.Schema, ReportSchema)
	case !hostName.match(r.Host):
		return bad("host %q: not a host name", r.Host)
	case r.Time.IsZero():
		return bad("no time")
	case r.Outcome == "" || len(r.Outcome) > 32:
		return bad("outcome %q", r.Outcome)
	case len(r.Reason) > maxReportText || len(r.Hold) > maxReportText:
		return bad("reason or hold longer than %d bytes", maxReportText)
	case len(r.Failed) > MaxReportFailed:
		return bad("%d failed serials, at most %d", len(r.Failed), MaxReportFailed)
	case len(r.Health) > MaxReportChecks || len(r.Drift) > MaxReportChecks:
		return bad("more than %d health results or drifted files", MaxReportChecks)
	case r.Healthy && r.Current == nil:
		return bad("healthy without a current generation")
	}
	return nil
}

// VerifyReport accepts a report envelope only if it is signed by key (the
// key pinned for host), has the report payload type, and is a well-formed
// report for host. Everything else is a *RejectError with ErrReport (or
// ErrTooLarge), so the caller can ignore it and say why.
func VerifyReport(envelope []byte, host string, key PublicKey) (*Report, error) {
	if len(envelope) > MaxReportSize {
		return nil, reject(ErrTooLarge, "report is %d bytes, limit %d", len(envelope), MaxReportSize)
	}
	keys, err := distinctKeys([]PublicKey{key})
	if err != nil {
		return nil, err
	}
	env, payload, err := parseEnvelope(envelope)
	if err != nil {
		return nil, reject(ErrReport, "%v", err)
	}
	if env.PayloadType != ReportPayloadType {
		return nil, reject(ErrReport, "payload type %q, want %q", env.PayloadType, ReportPayloadType)
	}
	if _, err := checkSignatures(env, payload, keys, 1); err != nil {
		return nil, reject(ErrReport, "not signed by %s's key %s: %v", host, shortIDs([]string{keys[0].ID}), err)
	}
	var r Report
	if err := decodeStrict(payload, &r); err != nil {
		return nil, reject(ErrReport, "report: %v", err)
	}
	if err := CheckReport(&r); err != nil {
		return nil, err
	}
	if r.Host != host {
		return nil, reject(ErrReport, "report is for host %q, expected %q", r.Host, host)
	}
	return &r, nil
}

// Signer is a private key that signs DSSE envelopes: a host's status
// report key (made on the host by `agent keygen`, never leaving it) or,
// wrapped by package bundle, a CI bundle signing key.
type Signer struct {
	s   signature.Signer
	pub PublicKey
}

// NewSigner wraps an ECDSA P-256 or Ed25519 private key.
func NewSigner(priv crypto.PrivateKey) (*Signer, error) {
	var pub crypto.PublicKey
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("signing key: ECDSA curve %s not supported (want P-256)", k.Curve.Params().Name)
		}
		pub = k.Public()
	case ed25519.PrivateKey:
		pub = k.Public()
	default:
		return nil, fmt.Errorf("signing key: type %T not supported (want ECDSA P-256 or Ed25519)", priv)
	}
	s, err := signature.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &Signer{s: s, pub: PublicKey{ID: id, Key: pub}}, nil
}

// Public is the key to pin for this signer.
func (k *Signer) Public() PublicKey { return k.pub }

// Sign appends k's signature over PAE(env.PayloadType, payload), made
// through sigstore's DSSE signer, with k's key id, to env.
func (k *Signer) Sign(env *Envelope, payload []byte) error {
	raw, err := dsse.WrapSigner(k.s, env.PayloadType).SignMessage(bytes.NewReader(payload))
	if err != nil {
		return err
	}
	var one Envelope
	if err := json.Unmarshal(raw, &one); err != nil || len(one.Signatures) != 1 {
		return fmt.Errorf("dsse signer returned an unexpected envelope: %v", err)
	}
	env.Signatures = append(env.Signatures, Signature{KeyID: k.pub.ID, Sig: one.Signatures[0].Sig})
	return nil
}

// GenerateHostKey makes an Ed25519 host key: the private key as an
// unencrypted PKCS#8 PEM (the agent signs unattended; the file is
// root-only, like the state dir) and the public key as PKIX PEM.
func GenerateHostKey() (privPEM, pubPEM []byte, err error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if privPEM, err = cryptoutils.MarshalPrivateKeyToPEM(priv); err != nil {
		return nil, nil, err
	}
	if pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public()); err != nil {
		return nil, nil, err
	}
	return privPEM, pubPEM, nil
}

// LoadHostKey reads an unencrypted PEM private key file made by
// GenerateHostKey (bounded read).
func LoadHostKey(path string) (*Signer, error) {
	b, err := ReadFileLimited(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(b, cryptoutils.SkipPassword)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k, err := NewSigner(priv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// SignReport checks r and returns it as a DSSE envelope signed by k.
func SignReport(r *Report, k *Signer) ([]byte, error) {
	if err := CheckReport(r); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	env := Envelope{PayloadType: ReportPayloadType, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: []Signature{}}
	if err := k.Sign(&env, payload); err != nil {
		return nil, fmt.Errorf("sign report: %w", err)
	}
	out, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	if len(out) > MaxReportSize {
		return nil, fmt.Errorf("sign report: %d bytes, limit %d", len(out), MaxReportSize)
	}
	return out, nil
}
