package verify

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readTarStd is readTar as it was on archive/tar (the oracle of the tar
// reader: it must never accept what this refused, nor read it otherwise).
func readTarStd(m *Manifest, tarBytes []byte) (map[string][]byte, error) {
	want := make(map[string]*File, len(m.Files))
	for i := range m.Files {
		want[EntryName(m.Files[i].Path)] = &m.Files[i]
	}
	files := make(map[string][]byte, len(m.Files))
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) {
			return nil, reject(ErrUnsafeEntry, "tar entry %q: %v", h.Name, err)
		}
		if err != nil {
			return nil, reject(ErrMalformed, "archive: tar: %v", err)
		}
		if err := entrySafeStd(h); err != nil {
			return nil, err
		}
		f, ok := want[h.Name]
		if !ok {
			return nil, reject(ErrMismatch, "tar entry %q is not in the manifest", h.Name)
		}
		if _, dup := files[f.Path]; dup {
			return nil, reject(ErrUnsafeEntry, "tar entry %q appears twice", h.Name)
		}
		if h.Size != f.Size {
			return nil, reject(ErrMismatch, "%s: %d bytes in the archive, manifest says %d", f.Path, h.Size, f.Size)
		}
		if h.Mode != int64(f.Mode) {
			return nil, reject(ErrMismatch, "%s: mode %04o in the archive, manifest says %04o", f.Path, h.Mode, uint32(f.Mode))
		}
		if h.Uname != f.Owner || h.Gname != f.Group {
			return nil, reject(ErrMismatch, "%s: owner %s:%s in the archive, manifest says %s:%s", f.Path, h.Uname, h.Gname, f.Owner, f.Group)
		}
		body := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, body); err != nil {
			return nil, reject(ErrMalformed, "archive: %s: %v", f.Path, err)
		}
		sum := sha256.Sum256(body)
		if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
			return nil, reject(ErrMismatch, "%s: sha256 %s in the archive, manifest says %s", f.Path, got, f.SHA256)
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

// entrySafe refuses anything but a regular file with a local, clean name.
func entrySafeStd(h *tar.Header) error {
	if h.Typeflag != tar.TypeReg {
		kind := map[byte]string{
			tar.TypeSymlink: "symlink", tar.TypeLink: "hard link", tar.TypeChar: "character device",
			tar.TypeBlock: "block device", tar.TypeDir: "directory", tar.TypeFifo: "fifo",
		}[h.Typeflag]
		if kind == "" {
			kind = fmt.Sprintf("type %q", h.Typeflag)
		}
		return reject(ErrUnsafeEntry, "tar entry %q is a %s, only regular files allowed", h.Name, kind)
	}
	if h.Name == "" || strings.HasPrefix(h.Name, "/") || !filepath.IsLocal(h.Name) || path.Clean(h.Name) != h.Name ||
		strings.Contains(h.Name, "\\") {
		return reject(ErrUnsafeEntry, "tar entry %q: not a clean relative path", h.Name)
	}
	for _, seg := range strings.Split(h.Name, "/") {
		if seg == ".." {
			return reject(ErrUnsafeEntry, "tar entry %q: contains ..", h.Name)
		}
	}
	if h.Size < 0 {
		return reject(ErrUnsafeEntry, "tar entry %q: negative size", h.Name)
	}
	// PAX sparse files expand to more bytes than the archive holds.
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return reject(ErrUnsafeEntry, "tar entry %q: sparse file", h.Name)
		}
	}
	return nil
}

// tarFile is one file as the bundler's Archive writes it.
type tarFile struct {
	name, owner, group string
	mode               int64
	body               []byte
}

// writerTar packs files with tar.Writer and the header fields the
// bundler sets (bundle.Archive), and returns the manifest that vouches
// for them.
func writerTar(t testing.TB, files []tarFile) ([]byte, *Manifest) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	m := &Manifest{}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: int64(len(f.body)), Mode: f.mode,
			Uname: f.owner, Gname: f.group, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, File{Path: "/" + f.name, Mode: Mode(f.mode), Owner: f.owner, Group: f.group,
			SHA256: hexSum(f.body), Size: int64(len(f.body))})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func totalSize(m *Manifest) (n int64) {
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// writerFiles cover every form tar.Writer gives a bundle's files: short
// names, a long name split into ustar prefix and name, names only a PAX
// path record holds (too long, not ASCII), empty and block-sized bodies,
// 32-byte owner names.
func writerFiles() []tarFile {
	long := "jails/" + strings.Repeat("j", 60) + "/usr/local/etc/" + strings.Repeat("d", 40) + "/rc.conf"
	return []tarFile{
		{"etc/pf.conf", "root", "wheel", 0o600, []byte("pass all\n")},
		{"etc/empty", "root", "wheel", 0o644, nil},
		{"etc/block", "root", "wheel", 0o644, bytes.Repeat([]byte("x"), 512)},
		{long, "root", "wheel", 0o644, []byte("split\n")},
		{"etc/" + strings.Repeat("p", 120), "root", "wheel", 0o644, []byte("pax\n")},
		{"etc/motd.d/bienvenüe", "root", "wheel", 0o644, []byte("non-ASCII\n")},
		{"usr/local/etc/rc.d/node", strings.Repeat("o", 32), strings.Repeat("g", 32), 0o755, []byte("#!/bin/sh\n")},
	}
}

// What tar.Writer writes, the tar reader reads as archive/tar does.
func TestTarReaderReadsWriterOutput(t *testing.T) {
	tb, m := writerTar(t, writerFiles())
	if !bytes.Contains(tb, []byte(" path=")) || !bytes.Contains(tb, []byte(strings.Repeat("j", 60))) {
		t.Fatal("the test tar has no PAX path record or no split name: it covers less than it says")
	}
	got, err := readTar(m, tb, totalSize(m))
	if err != nil {
		t.Fatal(err)
	}
	want, err := readTarStd(m, tb)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(got, want, bytes.Equal) || len(got) != len(m.Files) {
		t.Fatalf("tar reader read %d files, archive/tar %d, or other contents", len(got), len(want))
	}
}

// Forms archive/tar accepts that tar.Writer never writes for a bundle
// are refused, each with its reason.
func TestTarReaderRefuses(t *testing.T) {
	files := writerFiles()[:1]
	tb, m := writerTar(t, files)
	// resum redoes a header's checksum after an edit.
	resum := func(h []byte) {
		copy(h[148:156], "        ")
		s := 0
		for _, c := range h[:512] {
			s += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", s))
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(tb)) }
	// paxTar puts one PAX header per argument before the tar: a regular
	// entry holding the records, retyped ('x', which tar.Writer will not
	// write by hand).
	paxTar := func(headers ...string) []byte {
		var out []byte
		for _, recs := range headers {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "PaxHeaders/x", Size: int64(len(recs)), Mode: 0o644, Format: tar.FormatUSTAR}); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(recs))
			tw.Flush()
			h := buf.Bytes()
			h[156] = 'x'
			resum(h)
			out = append(out, h...)
		}
		return append(out, tb...)
	}
	rec := func(k, v string) string {
		r := " " + k + "=" + v + "\n"
		n := len(r) + 1
		for len(fmt.Sprint(n))+len(r) != n {
			n = len(fmt.Sprint(n)) + len(r)
		}
		return fmt.Sprint(n) + r
	}
	cases := []struct {
		name   string
		tar    []byte
		reason error
	}{
		{"GNU magic", edit(func(b []byte) []byte { copy(b[257:265], "ustar  \x00"); resum(b); return b }), ErrMalformed},
		{"v7 header (no magic)", edit(func(b []byte) []byte { clear(b[257:265]); resum(b); return b }), ErrMalformed},
		{"bad checksum", edit(func(b []byte) []byte { b[0] ^= 1; return b }), ErrMalformed},
		{"checksum of signed bytes", edit(func(b []byte) []byte {
			// A byte over 0x7f in the link name (unused): archive/tar
			// also takes the sum of the bytes as signed.
			b[200] = 0xff
			sum := 0
			copy(b[148:156], "        ")
			for _, c := range b[:512] {
				sum += int(int8(c))
			}
			copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
			return b
		}), ErrMalformed},
		{"base-256 size", edit(func(b []byte) []byte {
			clear(b[124:136])
			b[124], b[135] = 0x80, 9
			resum(b)
			return b
		}), ErrMalformed},
		{"STAR trailer", edit(func(b []byte) []byte { copy(b[508:512], "tar\x00"); resum(b); return b }), ErrMalformed},
		{"padding not zero", edit(func(b []byte) []byte { b[512+len(files[0].body)] = 'x'; return b }), ErrMalformed},
		{"data after the end", append(bytes.Clone(tb), 'x'), ErrMalformed},
		{"one zero block only", tb[:len(tb)-512], ErrMalformed},
		{"no end marker", tb[:len(tb)-1024], ErrMalformed},
		{"regular file typed NUL (old TypeRegA)", edit(func(b []byte) []byte { b[156] = 0; resum(b); return b }), ErrUnsafeEntry},
		{"symlink", edit(func(b []byte) []byte { b[156] = '2'; resum(b); return b }), ErrUnsafeEntry},
		{"global PAX header", edit(func(b []byte) []byte { b[156] = 'g'; resum(b); return b }), ErrUnsafeEntry},
		{"GNU long name", edit(func(b []byte) []byte { b[156] = 'L'; resum(b); return b }), ErrUnsafeEntry},
		{"PAX record other than path", paxTar(rec("mtime", "1")), ErrMalformed},
		{"PAX path twice", paxTar(rec("path", "etc/pf.conf") + rec("path", "etc/pf.conf")), ErrMalformed},
		{"PAX path with NUL", paxTar(rec("path", "etc/pf.conf\x00")), ErrMalformed},
		{"PAX sparse record", paxTar(rec("GNU.sparse.major", "1")), ErrUnsafeEntry},
		{"PAX length past the header", paxTar("99 path=etc/pf.conf\n"), ErrMalformed},
		{"two PAX headers", paxTar(rec("path", "etc/pf.conf"), rec("path", "etc/pf.conf")), ErrMalformed},
		{"PAX header with no record", paxTar(""), ErrMalformed},
		{"PAX header with a bad mode", func() []byte {
			b := paxTar(rec("path", "etc/pf.conf"))
			b[100] = '9' // archive/tar parses every header's numbers
			resum(b)
			return b
		}(), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files, err := readTar(m, tc.tar, totalSize(m))
			if !errors.Is(err, tc.reason) {
				t.Fatalf("got %v (%d files), want %v", err, len(files), tc.reason)
			}
		})
	}
	// The edits alone make the difference.
	for _, ok := range [][]byte{tb, paxTar(rec("path", "etc/pf.conf"))} {
		if _, err := readTar(m, ok, totalSize(m)); err != nil {
			t.Fatalf("valid tar refused: %v", err)
		}
	}
}

// FuzzTarAgreesWithArchiveTar: every tar the tar reader accepts,
// archive/tar (with the checks verify ran on it) accepted too, with the
// same contents; and the reader never panics.
func FuzzTarAgreesWithArchiveTar(f *testing.F) {
	tb, m := writerTar(f, writerFiles())
	f.Add(tb)
	small, _ := writerTar(f, writerFiles()[:2])
	f.Add(small)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readTar(m, b, totalSize(m))
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("non-reject error %T: %v", err, err)
			}
			return
		}
		want, err := readTarStd(m, b)
		if err != nil {
			t.Fatalf("tar reader accepted what archive/tar refused: %v", err)
		}
		if !maps.EqualFunc(got, want, bytes.Equal) {
			t.Fatal("tar reader and archive/tar read different contents")
		}
	})
}

// byteSum is the plain sum of the bytes, up to a block of 0xff.
func TestByteSum(t *testing.T) {
	b := make([]byte, tarBlock)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	for _, blk := range [][]byte{b, bytes.Repeat([]byte{0xff}, tarBlock), nil, b[:7], b[3:148]} {
		want := int64(0)
		for _, c := range blk {
			want += int64(c)
		}
		if got := byteSum(blk); got != want {
			t.Errorf("byteSum of %d bytes: %d, want %d", len(blk), got, want)
		}
	}
}
