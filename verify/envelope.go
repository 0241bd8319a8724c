package verify

import (
	"bytes"
	"encoding/base64"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// MaxSignatures bounds the signatures one envelope may carry, so a crafted
// envelope cannot make us run thousands of signature checks.
const MaxSignatures = 16

// Envelope is a DSSE envelope as stored in manifest.json.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"` // standard base64
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature. KeyID is the signer's KeyID; it is a hint
// only: every signature is checked against the pinned keys themselves.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // standard base64
}

// PAE is the DSSE pre-authentication encoding that signatures cover. It binds
// the payload type, so a signature over the same bytes with another type
// never verifies.
func PAE(payloadType string, payload []byte) []byte {
	return ssldsse.PAE(payloadType, payload)
}

// ParseEnvelope strictly decodes a DSSE envelope and its base64 payload. It
// checks form only: nothing in the result is trusted.
func ParseEnvelope(b []byte) (*Envelope, []byte, error) {
	env, payload, err := parseEnvelope(b)
	if err != nil {
		return nil, nil, err
	}
	// The text it was decoded from: only canonical base64 is accepted.
	env.Payload = base64.StdEncoding.EncodeToString(payload)
	return env, payload, nil
}

// parseEnvelope is ParseEnvelope leaving Envelope.Payload empty: the
// payload goes from the JSON text to its bytes without a copy as a string
// (verification needs only the bytes).
func parseEnvelope(b []byte) (*Envelope, []byte, error) {
	var raw struct {
		PayloadType string        `json:"payloadType"`
		Payload     payloadBase64 `json:"payload"`
		Signatures  []Signature   `json:"signatures"`
	}
	if err := decodeStrict(b, &raw); err != nil {
		return nil, nil, reject(ErrMalformed, "envelope: %v", err)
	}
	if raw.PayloadType == "" {
		return nil, nil, reject(ErrMalformed, "envelope: no payloadType")
	}
	if len(raw.Signatures) > MaxSignatures {
		return nil, nil, reject(ErrMalformed, "envelope: %d signatures, at most %d allowed", len(raw.Signatures), MaxSignatures)
	}
	if len(raw.Payload) == 0 {
		return nil, nil, reject(ErrMalformed, "envelope: empty payload")
	}
	return &Envelope{PayloadType: raw.PayloadType, Signatures: raw.Signatures}, raw.Payload, nil
}

// payloadBase64 is an envelope payload, decoded from canonical standard
// base64 as it is read: padded, no line breaks, no stray bits in the last
// character (base64.StdEncoding alone ignores line breaks and those bits,
// so many texts would carry one payload).
type payloadBase64 []byte

func (p *payloadBase64) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	switch v.Kind() {
	case 'n':
		*p = nil
		return nil
	case '"':
	default:
		return fmt.Errorf("want a base64 string, got %s", v.Kind())
	}
	text := v[1 : len(v)-1]
	if bytes.IndexByte(text, '\\') >= 0 { // escaped: base64 needs no escapes
		if text, err = jsontext.AppendUnquote(nil, v); err != nil {
			return err
		}
	}
	if bytes.ContainsAny(text, "\r\n") {
		return errors.New("base64 with a line break")
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Strict().Decode(out, text)
	if err != nil {
		return err
	}
	*p = out[:n]
	return nil
}

// Marshal encodes the envelope as stored in manifest.json.
func (e *Envelope) Marshal() ([]byte, error) {
	b, err := stdjson.Marshal(e)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// checkSignatures counts the distinct pinned keys that made a valid
// signature over PAE(payloadType, payload). Each key counts once however
// many signatures it made, and a signature counts for at most one key.
func checkSignatures(env *Envelope, payload []byte, keys []PublicKey, threshold int) ([]string, error) {
	pae := PAE(env.PayloadType, payload)
	var signers []string
	used := make([]bool, len(env.Signatures))
	sigs := make([][]byte, len(env.Signatures))
	for i, s := range env.Signatures {
		b, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || len(b) == 0 || len(b) > 1024 {
			used[i] = true // undecodable: never counts
			continue
		}
		sigs[i] = b
	}
	for _, k := range keys {
		v, err := k.verifier()
		if err != nil {
			return nil, fmt.Errorf("verify: pinned key %s: %w", k.ID, err)
		}
		for i := range env.Signatures {
			if used[i] {
				continue
			}
			if v.VerifySignature(bytes.NewReader(sigs[i]), bytes.NewReader(pae)) == nil {
				used[i] = true
				signers = append(signers, k.ID)
				break
			}
		}
	}
	switch {
	case len(signers) >= threshold:
		return signers, nil
	case len(signers) == 0:
		return nil, reject(ErrBadSignature, "none of %d signature(s) verifies with a trusted key", len(env.Signatures))
	default:
		return nil, reject(ErrThreshold, "%d of %d required trusted keys signed (%s)", len(signers), threshold, shortIDs(signers))
	}
}

// distinctKeys drops repeated pinned keys (same KeyID) so one key listed
// twice in a config cannot satisfy a threshold of two.
func distinctKeys(keys []PublicKey) ([]PublicKey, error) {
	var out []PublicKey
	seen := map[string]bool{}
	for _, k := range keys {
		if k.Key == nil {
			return nil, errors.New("verify: pinned key without key material")
		}
		id, err := KeyID(k.Key)
		if err != nil {
			return nil, err
		}
		if k.ID != "" && k.ID != id {
			return nil, fmt.Errorf("verify: pinned key id %s does not match its key (%s)", k.ID, id)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, PublicKey{ID: id, Key: k.Key})
	}
	return out, nil
}

func shortIDs(ids []string) string {
	s := slices.Clone(ids)
	for i, id := range s {
		if len(id) > 12 {
			s[i] = id[:12]
		}
	}
	return fmt.Sprint(s)
}

// strictJSON are the options of every decode of untrusted JSON here.
// On top of encoding/json/v2's defaults (member names matched exactly,
// a member named twice refused, invalid UTF-8 refused, nothing after the
// value), a member no field takes is refused: an unknown or misspelt
// member never passes silently, and no two parsers can read one manifest
// differently (encoding/json took the last of two "serial" members and
// matched "SERIAL" to it).
var strictJSON = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// decodeStrict decodes exactly one JSON value into v under strictJSON.
// It scans the bytes once, without the copy and second scan of a
// json.Decoder (most of a verification's time went there).
func decodeStrict(b []byte, v any) error {
	return json.Unmarshal(b, v, strictJSON)
}
