package verify

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/policy"
)

func TestRoundTrip(t *testing.T) {
	ec, ed := testKeys(t)
	for _, tc := range []struct {
		name string
		keys []*testKey
	}{
		{"ecdsa", ec[:1]},
		{"ed25519", []*testKey{ed}},
		{"ecdsa+ed25519 2-of-2", []*testKey{ec[0], ed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			opts := f.opts(tc.keys...)
			opts.Threshold = len(tc.keys)
			b, err := Verify(f.sign(t, tc.keys...), bytes.NewReader(f.archive), opts)
			if err != nil {
				t.Fatal(err)
			}
			if b.Manifest.Host != "serverA" || b.Manifest.Serial != 5 || len(b.Signers) != len(tc.keys) {
				t.Fatalf("got host %s serial %d signers %v", b.Manifest.Host, b.Manifest.Serial, b.Signers)
			}
			for _, tf := range testFiles {
				if got := string(b.Files[tf.path]); got != tf.body {
					t.Errorf("%s = %q, want %q", tf.path, got, tf.body)
				}
			}
			if len(b.Files) != len(testFiles) {
				t.Errorf("%d files, want %d", len(b.Files), len(testFiles))
			}
		})
	}
}

func TestThreshold(t *testing.T) {
	ec, _ := testKeys(t)
	f := newFixture(t)
	opts := f.opts(ec...)
	opts.Threshold = 2

	b, err := Verify(f.sign(t, ec[0], ec[2]), bytes.NewReader(f.archive), opts)
	if err != nil {
		t.Fatalf("2-of-3: %v", err)
	}
	if len(b.Signers) != 2 || b.Signers[0] != ec[0].pub.ID || b.Signers[1] != ec[2].pub.ID {
		t.Errorf("signers %v", b.Signers)
	}
	b, err = Verify(f.sign(t, ec[1]), bytes.NewReader(f.archive), opts)
	wantReject(t, b, err, ErrThreshold)

	// The same key listed twice in the trust config is one key.
	dup := f.opts(ec[0], ec[0])
	dup.Threshold = 2
	if _, err := Verify(f.sign(t, ec[0]), bytes.NewReader(f.archive), dup); err == nil || errors.As(err, new(*RejectError)) {
		t.Errorf("threshold above distinct keys: got %v, want a configuration error", err)
	}
	zero := f.opts(ec[0])
	zero.Threshold = 0
	if _, err := Verify(f.sign(t, ec[0]), bytes.NewReader(f.archive), zero); err == nil {
		t.Error("threshold 0 accepted")
	}
}

func wantReject(t *testing.T, b *Bundle, err error, reason error) {
	t.Helper()
	if b != nil {
		t.Errorf("a rejected bundle was returned")
	}
	var re *RejectError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T), want *RejectError", err, err)
	}
	if !errors.Is(err, reason) {
		t.Fatalf("error %q, want reason %q", err, reason)
	}
}

// zstdFrame builds a raw zstd frame header: magic, descriptor, then window
// descriptor and content size as requested.
func zstdFrame(windowLog int, fcs uint64, withFCS bool) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd}
	fhd := byte(0)
	if withFCS {
		fhd = 3 << 6 // 8-byte content size, not single segment
	}
	b = append(b, fhd, byte(windowLog-10)<<3)
	if withFCS {
		b = binary.LittleEndian.AppendUint64(b, fcs)
	}
	return b
}

// zstdBomb is 1 GiB of zeros as RLE blocks: 8192 blocks of 128 KiB, 4 bytes
// each, built directly instead of compressing a gigabyte.
func zstdBomb(withFCS bool) []byte {
	const block = 128 << 10
	b := zstdFrame(17, 1<<30, withFCS)
	for i := range (1 << 30) / block {
		last := 0
		if i == (1<<30)/block-1 {
			last = 1
		}
		h := uint32(last) | 1<<1 | block<<3 // RLE block
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return b
}

func TestAttacks(t *testing.T) {
	ec, ed := testKeys(t)
	k := ec[0]
	type input struct {
		manifest []byte
		archive  []byte
		opts     Options
	}
	valid := func(t *testing.T, f *fixture) input {
		return input{f.sign(t, k), f.archive, f.opts(k)}
	}
	withTar := func(mod func(f *fixture) []entry) func(*testing.T, *fixture) input {
		return func(t *testing.T, f *fixture) input {
			f.setTar(t, makeTar(t, mod(f)))
			return valid(t, f)
		}
	}
	cases := []struct {
		name   string
		make   func(*testing.T, *fixture) input
		reason error
	}{
		{"flipped byte in archive", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			in.archive = bytes.Clone(in.archive)
			in.archive[len(in.archive)/2] ^= 1
			return in
		}, ErrArchiveDigest},
		{"flipped byte in payload", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			var env Envelope
			json.Unmarshal(in.manifest, &env)
			p, _ := base64.StdEncoding.DecodeString(env.Payload)
			p[bytes.Index(p, []byte(`"serial":5`))+9] = '6'
			env.Payload = base64.StdEncoding.EncodeToString(p)
			in.manifest, _ = env.Marshal()
			return in
		}, ErrBadSignature},
		{"flipped byte in signature", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			var env Envelope
			json.Unmarshal(in.manifest, &env)
			s, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
			s[len(s)-3] ^= 0x10
			env.Signatures[0].Sig = base64.StdEncoding.EncodeToString(s)
			in.manifest, _ = env.Marshal()
			return in
		}, ErrBadSignature},
		{"untrusted key", func(t *testing.T, f *fixture) input {
			return input{f.sign(t, ed), f.archive, f.opts(k)}
		}, ErrBadSignature},
		{"untrusted key with a trusted key id", func(t *testing.T, f *fixture) input {
			m := f.sign(t, ec[1])
			m = bytes.ReplaceAll(m, []byte(ec[1].pub.ID), []byte(k.pub.ID))
			return input{m, f.archive, f.opts(k)}
		}, ErrBadSignature},
		{"one key signing twice, threshold 2", func(t *testing.T, f *fixture) input {
			o := f.opts(ec...)
			o.Threshold = 2
			return input{f.sign(t, k, k), f.archive, o}
		}, ErrThreshold},
		{"one signature duplicated, threshold 2", func(t *testing.T, f *fixture) input {
			var env Envelope
			json.Unmarshal(f.sign(t, k), &env)
			env.Signatures = append(env.Signatures, env.Signatures[0])
			m, _ := env.Marshal()
			o := f.opts(ec...)
			o.Threshold = 2
			return input{m, f.archive, o}
		}, ErrThreshold},
		{"unsigned", func(t *testing.T, f *fixture) input {
			return input{f.sign(t), f.archive, f.opts(k)}
		}, ErrBadSignature},
		{"wrong host", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			in.opts.Host = "serverB"
			return in
		}, ErrWrongHost},
		{"serial equal to the last", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			in.opts.LastSerial = 5
			return in
		}, ErrRollback},
		{"serial below the last", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			in.opts.LastSerial = 9
			return in
		}, ErrRollback},
		{"serial jump", func(t *testing.T, f *fixture) input {
			f.m.Serial = 5 + MaxSerialJump + 1
			return valid(t, f)
		}, ErrSerialJump},
		{"expired", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			in.opts.Now = func() time.Time { return f.m.Expires }
			return in
		}, ErrExpired},
		{"archive over the limit", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			in.opts.Limits.ArchiveSize = int64(len(f.archive)) - 1
			return in
		}, ErrTooLarge},
		{"archive longer than the manifest says", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			in.archive = append(bytes.Clone(in.archive), 0)
			return in
		}, ErrArchiveDigest},
		{"truncated archive", func(t *testing.T, f *fixture) input {
			in := valid(t, f)
			in.archive = in.archive[:len(in.archive)-7]
			return in
		}, ErrArchiveDigest},
		{"truncated tar inside a signed archive", func(t *testing.T, f *fixture) input {
			// Cut inside the first entry's padding: archive/tar took the
			// archive as ending there (a file missing, ErrMismatch); the
			// tar reader refuses the cut itself.
			tb := makeTar(t, f.entries)
			f.setTar(t, tb[:700])
			return valid(t, f)
		}, ErrMalformed},
		{"tar cut inside a header", func(t *testing.T, f *fixture) input {
			tb := makeTar(t, f.entries)
			f.setTar(t, tb[:1024+100])
			return valid(t, f)
		}, ErrMalformed},
		{"zstd frame declaring a 512 MiB window", func(t *testing.T, f *fixture) input {
			f.setArchive(append(zstdFrame(29, 0, false), 0x09, 0, 0, 'A'))
			return valid(t, f)
		}, ErrTooLarge},
		{"zstd bomb, 1 GiB of zeros with content size", func(t *testing.T, f *fixture) input {
			f.setArchive(zstdBomb(true))
			return valid(t, f)
		}, ErrTooLarge},
		{"zstd bomb, 1 GiB of zeros without content size", func(t *testing.T, f *fixture) input {
			f.setArchive(zstdBomb(false))
			return valid(t, f)
		}, ErrTooLarge},
		{"not zstd", func(t *testing.T, f *fixture) input {
			f.setArchive([]byte("this is not zstd at all"))
			return valid(t, f)
		}, ErrMalformed},
		{"tar entry ../x", withTar(func(f *fixture) []entry {
			return append(f.entries, entry{name: "../x", mode: 0o644, uname: "root", gname: "wheel", body: []byte("x")})
		}), ErrUnsafeEntry},
		{"tar entry etc/../../x", withTar(func(f *fixture) []entry {
			return append(f.entries, entry{name: "etc/../../x", mode: 0o644, body: []byte("x")})
		}), ErrUnsafeEntry},
		{"absolute tar entry", withTar(func(f *fixture) []entry {
			e := f.entries
			e[0].name = "/etc/pf.conf"
			return e
		}), ErrUnsafeEntry},
		{"symlink entry", withTar(func(f *fixture) []entry {
			e := f.entries
			e[1] = entry{name: e[1].name, typ: tar.TypeSymlink, linkname: "/etc/master.passwd", mode: 0o644}
			return e
		}), ErrUnsafeEntry},
		{"hardlink entry", withTar(func(f *fixture) []entry {
			e := f.entries
			e[1] = entry{name: e[1].name, typ: tar.TypeLink, linkname: "etc/pf.conf", mode: 0o644}
			return e
		}), ErrUnsafeEntry},
		{"device entry", withTar(func(f *fixture) []entry {
			e := f.entries
			e[1] = entry{name: e[1].name, typ: tar.TypeChar, mode: 0o644}
			return e
		}), ErrUnsafeEntry},
		{"directory entry", withTar(func(f *fixture) []entry {
			return append([]entry{{name: "etc", typ: tar.TypeDir, mode: 0o755}}, f.entries...)
		}), ErrUnsafeEntry},
		{"duplicate entry", withTar(func(f *fixture) []entry {
			return append(f.entries, f.entries[0])
		}), ErrUnsafeEntry},
		{"entry not in the manifest", withTar(func(f *fixture) []entry {
			return append(f.entries, entry{name: "etc/crontab", mode: 0o644, uname: "root", gname: "wheel", body: []byte("* * * * * root sh\n")})
		}), ErrMismatch},
		{"manifest file missing from the tar", withTar(func(f *fixture) []entry {
			return f.entries[:2]
		}), ErrMismatch},
		{"wrong hash", withTar(func(f *fixture) []entry {
			e := f.entries
			e[0].body = []byte("block all\n") // same length, other content
			return e
		}), ErrMismatch},
		{"wrong size", withTar(func(f *fixture) []entry {
			e := f.entries
			e[0].body = []byte("pass all quick\n")
			return e
		}), ErrMismatch},
		{"wrong mode", withTar(func(f *fixture) []entry {
			e := f.entries
			e[0].mode = 0o666
			return e
		}), ErrMismatch},
		{"wrong owner", withTar(func(f *fixture) []entry {
			e := f.entries
			e[0].uname = "www"
			return e
		}), ErrMismatch},
		{"sparse tar entry", withTar(func(f *fixture) []entry {
			e := f.entries
			// PAX sparse 1.0: a block with the map (one data region of
			// 9 bytes at 0), then the data. archive/tar would expand it.
			e[0].pax = map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": e[0].name, "GNU.sparse.realsize": "9"}
			sparseMap := make([]byte, 512)
			copy(sparseMap, "1\n0\n9\n")
			e[0].body = append(sparseMap, e[0].body...)
			return e
		}), ErrUnsafeEntry},
		{"files larger than the decoded limit", func(t *testing.T, f *fixture) input {
			f.m.Files[0].Size = 1 << 40
			return valid(t, f)
		}, ErrTooLarge},
		{"2 MiB manifest", func(t *testing.T, f *fixture) input {
			f.m.Secrets = []string{"/" + strings.Repeat("a", 2<<20)}
			return valid(t, f)
		}, ErrTooLarge},
		{"wrong payload type", func(t *testing.T, f *fixture) input {
			return input{envelope(t, "application/vnd.in-toto+json", f.payload(t), k), f.archive, f.opts(k)}
		}, ErrPayloadType},
		{"payload type swapped after signing", func(t *testing.T, f *fixture) input {
			m := bytes.Replace(f.sign(t, k), []byte(PayloadType), []byte("application/json"), 1)
			return input{m, f.archive, f.opts(k)}
		}, ErrBadSignature},
		{"garbage", func(t *testing.T, f *fixture) input {
			return input{[]byte("\x00\x01garbage{"), f.archive, f.opts(k)}
		}, ErrMalformed},
		{"unknown manifest field", func(t *testing.T, f *fixture) input {
			p := bytes.Replace(f.payload(t), []byte(`{"schema"`), []byte(`{"run":"sh","schema"`), 1)
			return input{envelope(t, PayloadType, p, k), f.archive, f.opts(k)}
		}, ErrMalformed},
		{"unknown envelope field", func(t *testing.T, f *fixture) input {
			m := bytes.Replace(f.sign(t, k), []byte(`{"payloadType"`), []byte(`{"x":1,"payloadType"`), 1)
			return input{m, f.archive, f.opts(k)}
		}, ErrMalformed},
		{"target path outside the policy", func(t *testing.T, f *fixture) input {
			f.m.Files[0].Path = "/root/.ssh/authorized_keys"
			return valid(t, f)
		}, ErrPathNotAllowed},
		{"setuid mode", func(t *testing.T, f *fixture) input {
			f.m.Files[0].Mode = 0o4755
			return valid(t, f)
		}, ErrMalformed},
		{"duplicate manifest path", func(t *testing.T, f *fixture) input {
			f.m.Files[1].Path = f.m.Files[0].Path
			return valid(t, f)
		}, ErrMalformed},
		{"bad unit", func(t *testing.T, f *fixture) input {
			f.m.Files[0].Unit = "exec:rm"
			return valid(t, f)
		}, ErrMalformed},
		{"duplicate health check", func(t *testing.T, f *fixture) input {
			f.m.Health = append(f.m.Health, f.m.Health[0])
			return valid(t, f)
		}, ErrMalformed},
		{"too many signatures", func(t *testing.T, f *fixture) input {
			ks := make([]*testKey, MaxSignatures+1)
			for i := range ks {
				ks[i] = k
			}
			return input{f.sign(t, ks...), f.archive, f.opts(k)}
		}, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.make(t, newFixture(t))
			b, err := Verify(in.manifest, bytes.NewReader(in.archive), in.opts)
			wantReject(t, b, err, tc.reason)
		})
	}
}

// The window bomb must be refused before the decoder allocates the window.
func TestWindowBombAllocatesLittle(t *testing.T) {
	ec, _ := testKeys(t)
	f := newFixture(t)
	f.setArchive(append(zstdFrame(29, 0, false), 0x09, 0, 0, 'A'))
	m := f.sign(t, ec[0])
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Verify(m, bytes.NewReader(f.archive), f.opts(ec[0]))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Errorf("allocated %d MiB for a 10-byte frame", d>>20)
	}
}

func TestInspectSkipsTrustButChecksContent(t *testing.T) {
	ec, _ := testKeys(t)
	f := newFixture(t)
	m := f.sign(t) // unsigned
	b, err := Inspect(m, bytes.NewReader(f.archive), Options{Now: func() time.Time { return f.m.Expires.Add(time.Hour) }})
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if len(b.Signers) != 0 || len(b.Files) != 3 {
		t.Errorf("signers %v files %d", b.Signers, len(b.Files))
	}
	bad := bytes.Clone(f.archive)
	bad[10] ^= 1
	_, err = Inspect(m, bytes.NewReader(bad), Options{})
	if !errors.Is(err, ErrArchiveDigest) {
		t.Errorf("inspect of a flipped archive: %v", err)
	}
	if _, err := Verify(m, bytes.NewReader(f.archive), f.opts(ec[0])); !errors.Is(err, ErrBadSignature) {
		t.Errorf("verify of unsigned: %v", err)
	}
}

func TestCustomPathPolicy(t *testing.T) {
	ec, _ := testKeys(t)
	f := newFixture(t)
	o := f.opts(ec[0])
	o.Paths = policy.Paths{Roots: []string{"/etc"}}
	_, err := Verify(f.sign(t, ec[0]), bytes.NewReader(f.archive), o)
	if !errors.Is(err, ErrPathNotAllowed) || !strings.Contains(err.Error(), "/jails/pg_j/etc/rc.conf") {
		t.Fatalf("got %v, want ErrPathNotAllowed naming the jail file", err)
	}
}

func TestLoadPublicKey(t *testing.T) {
	ec, ed := testKeys(t)
	for _, k := range []*testKey{ec[0], ed} {
		pemBytes := pemPublic(t, k)
		got, err := LoadPublicKey(pemBytes)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != k.pub.ID || len(got.ID) != 64 {
			t.Errorf("id %s, want %s", got.ID, k.pub.ID)
		}
	}
	if _, err := LoadPublicKey([]byte("awskms:///alias/x")); err == nil {
		t.Error("a KMS URI was accepted as a public key")
	}
}
