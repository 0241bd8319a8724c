package verify

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// The tests build bundles by hand (not with the bundler, which this package
// must not import) so they can also build every kind of broken one.

type testKey struct {
	signer signature.Signer
	pub    PublicKey
}

var (
	keysOnce sync.Once
	ecKeys   []*testKey // three ECDSA P-256 keys
	edKey    *testKey
)

func newTestKey(t testing.TB, priv crypto.Signer) *testKey {
	t.Helper()
	s, err := signature.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := KeyID(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{signer: s, pub: PublicKey{ID: id, Key: priv.Public()}}
}

func testKeys(t testing.TB) ([]*testKey, *testKey) {
	keysOnce.Do(func() {
		for range 3 {
			p, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			ecKeys = append(ecKeys, newTestKey(t, p))
		}
		_, p, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		edKey = newTestKey(t, p)
	})
	return ecKeys, edKey
}

type entry struct {
	name     string
	typ      byte
	mode     int64
	uname    string
	gname    string
	body     []byte
	linkname string
	pax      map[string]string
}

func makeTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: e.mode, Uname: e.uname, Gname: e.gname,
			Linkname: e.linkname, ModTime: time.Unix(0, 0), Format: tar.FormatPAX, PAXRecords: e.pax}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.pax != nil {
			writeRawPAX(t, tw, &buf, e.pax)
			h.PAXRecords = nil
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))

func compress(b []byte) []byte { return encoder.EncodeAll(b, nil) }

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fixture is a valid bundle for serverA, serial 5, that each test bends.
type fixture struct {
	m       Manifest
	entries []entry
	archive []byte
	now     time.Time
}

var testFiles = []struct {
	path, unit, body string
	mode             Mode
}{
	{"/etc/pf.conf", "pf", "pass all\n", 0o600},
	{"/etc/rc.conf", "none", "hostname=\"serverA\"\npf_enable=\"YES\"\n", 0o644},
	{"/jails/pg_j/etc/rc.conf", "jail:pg_j", "postgresql_enable=\"YES\"\n", 0o644},
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f := &fixture{now: now, m: Manifest{
		Schema: Schema, Host: "serverA", Serial: 5,
		Source:  Source{Repo: "https://git.example.org/infra.git", Commit: "0123456789abcdef0123456789abcdef01234567"},
		Created: now.Add(-time.Hour), Expires: now.Add(30 * 24 * time.Hour), NotBefore: now.Add(-time.Hour),
		Health: []Check{{Kind: CheckJail, Name: "jail pg_j", Jail: "pg_j"}},
	}}
	for _, tf := range testFiles {
		f.m.Files = append(f.m.Files, File{Path: tf.path, Mode: tf.mode, Owner: "root", Group: "wheel",
			SHA256: hexSum([]byte(tf.body)), Size: int64(len(tf.body)), Unit: tf.unit})
		f.entries = append(f.entries, entry{name: EntryName(tf.path), mode: int64(tf.mode), uname: "root", gname: "wheel", body: []byte(tf.body)})
	}
	f.setTar(t, makeTar(t, f.entries))
	return f
}

// setTar compresses tarBytes and pins the result in the manifest.
func (f *fixture) setTar(t testing.TB, tarBytes []byte) { f.setArchive(compress(tarBytes)) }

// setArchive pins raw archive bytes in the manifest (the signer vouches for them).
func (f *fixture) setArchive(a []byte) {
	f.archive = a
	f.m.Archive = Archive{SHA256: hexSum(a), Size: int64(len(a))}
}

func (f *fixture) payload(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(f.m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envelope signs payload under payloadType with each key in turn.
func envelope(t testing.TB, payloadType string, payload []byte, keys ...*testKey) []byte {
	t.Helper()
	env := Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: []Signature{}}
	for _, k := range keys {
		sig, err := k.signer.SignMessage(bytes.NewReader(PAE(payloadType, payload)))
		if err != nil {
			t.Fatal(err)
		}
		env.Signatures = append(env.Signatures, Signature{KeyID: k.pub.ID, Sig: base64.StdEncoding.EncodeToString(sig)})
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) sign(t testing.TB, keys ...*testKey) []byte {
	return envelope(t, PayloadType, f.payload(t), keys...)
}

func (f *fixture) opts(keys ...*testKey) Options {
	o := Options{Threshold: 1, Host: "serverA", LastSerial: 4, Now: func() time.Time { return f.now }}
	for _, k := range keys {
		o.Keys = append(o.Keys, k.pub)
	}
	return o
}

func pemPublic(t testing.TB, k *testKey) []byte {
	t.Helper()
	b, err := cryptoutils.MarshalPublicKeyToPEM(k.pub.Key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeRawPAX writes a PAX extended header with records that archive/tar
// would refuse or drop (GNU sparse keys): a regular entry holding the
// records, retyped to 'x' with its checksum redone.
func writeRawPAX(t testing.TB, tw *tar.Writer, buf *bytes.Buffer, recs map[string]string) {
	t.Helper()
	var body []byte
	for _, k := range []string{"GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.name", "GNU.sparse.realsize"} {
		v, ok := recs[k]
		if !ok {
			continue
		}
		rec := " " + k + "=" + v + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n = len(fmt.Sprint(n)) + len(rec)
		}
		body = append(body, fmt.Sprint(n)+rec...)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	start := buf.Len()
	if err := tw.WriteHeader(&tar.Header{Name: "PaxHeader", Typeflag: tar.TypeReg, Size: int64(len(body)), Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	hdr := buf.Bytes()[start : start+512]
	hdr[156] = tar.TypeXHeader
	copy(hdr[148:156], "        ")
	sum := 0
	for _, c := range hdr {
		sum += int(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
}
