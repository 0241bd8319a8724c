package gittest

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// Hostile modes: what a misbehaving git server does (SECURITY.md
// "Endless data").
const (
	// EndlessRefs answers the ref advertisement with valid ref lines
	// that never end.
	EndlessRefs = "endless-refs"
	// InflateBomb advertises one branch whose pack holds a blob of
	// BombSize bytes of zeros: about a thousandth of that on the wire.
	InflateBomb = "inflate-bomb"
)

// BombSize is the inflated size of InflateBomb's blob.
const BombSize = 1 << 30

// Hostile is a smart-HTTP git server on loopback that misbehaves as its
// mode says. Every repository path answers the same.
type Hostile struct {
	srv  *http.Server
	addr string
}

// ServeHostile starts a hostile server in mode for branch.
func ServeHostile(mode, branch string) (*Hostile, error) {
	if mode == InflateBomb {
		bomb() // built now, not while a client waits
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &Hostile{addr: l.Addr().String()}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/info/refs"):
			w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
			if mode == EndlessRefs {
				io.WriteString(w, pkt("# service=git-upload-pack\n")+"0000")
				endlessRefs(w, branch)
				return
			}
			p := bomb()
			io.WriteString(w, pkt("# service=git-upload-pack\n")+"0000")
			io.WriteString(w, pkt(p.commit+" refs/heads/"+branch+"\x00shallow no-progress\n")+"0000")
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
			p := bomb()
			io.WriteString(w, pkt("shallow "+p.commit+"\n")+"0000"+pkt("NAK\n"))
			w.Write(p.pack)
		default:
			http.NotFound(w, r)
		}
	})}
	go h.srv.Serve(l)
	return h, nil
}

// URL returns the clone URL of repo on the server.
func (h *Hostile) URL(repo string) string { return "http://" + h.addr + "/" + repo }

// Close stops the server.
func (h *Hostile) Close() error { return h.srv.Close() }

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// endlessRefs writes valid ref lines until a write fails.
func endlessRefs(w io.Writer, branch string) {
	zero := strings.Repeat("0", 39) + "1"
	io.WriteString(w, pkt(zero+" refs/heads/"+branch+"\x00shallow no-progress\n"))
	var buf bytes.Buffer
	for i := 0; ; i++ {
		buf.Reset()
		for j := range 1000 {
			buf.WriteString(pkt(fmt.Sprintf("%s refs/heads/junk-%d-%d\n", zero, i, j)))
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
	}
}

type bombPack struct {
	commit string
	pack   []byte
}

var (
	bombOnce sync.Once
	bombVal  bombPack
)

// bomb builds (once per process) a pack of a commit whose tree holds
// serverA/files.tar.zst: BombSize zeros, about 1 MiB deflated.
func bomb() bombPack {
	bombOnce.Do(func() {
		blobID := hashZeros(BombSize)
		small := []byte("{}\n")
		smallID := objID("blob", small)
		sub := treeEntry("100644", "files.tar.zst", blobID) + treeEntry("100644", "manifest.json", smallID)
		subID := objID("tree", []byte(sub))
		top := treeEntry("40000", "serverA", subID)
		topID := objID("tree", []byte(top))
		commit := fmt.Sprintf("tree %s\nauthor x <x@x> 0 +0000\ncommitter x <x@x> 0 +0000\n\nbomb\n", topID)
		commitID := objID("commit", []byte(commit))

		var pack bytes.Buffer
		pack.WriteString("PACK")
		binary.Write(&pack, binary.BigEndian, uint32(2))
		binary.Write(&pack, binary.BigEndian, uint32(5))
		add := func(typ byte, size int64, deflated []byte) {
			pack.Write(objHeader(typ, size))
			pack.Write(deflated)
		}
		add(1, int64(len(commit)), deflate(strings.NewReader(commit)))
		add(2, int64(len(top)), deflate(strings.NewReader(top)))
		add(2, int64(len(sub)), deflate(strings.NewReader(sub)))
		add(3, int64(len(small)), deflate(bytes.NewReader(small)))
		add(3, BombSize, deflate(io.LimitReader(zeros{}, BombSize)))
		sum := sha1.Sum(pack.Bytes())
		pack.Write(sum[:])
		bombVal = bombPack{commit: commitID, pack: pack.Bytes()}
	})
	return bombVal
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func deflate(r io.Reader) []byte {
	var b bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&b, zlib.DefaultCompression)
	io.Copy(zw, r)
	zw.Close()
	return b.Bytes()
}

func objID(typ string, content []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", typ, len(content))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

func hashZeros(n int64) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", n)
	io.Copy(h, io.LimitReader(zeros{}, n))
	return hex.EncodeToString(h.Sum(nil))
}

func treeEntry(mode, name, id string) string {
	raw, _ := hex.DecodeString(id)
	return mode + " " + name + "\x00" + string(raw)
}

func objHeader(typ byte, size int64) []byte {
	b := []byte{typ<<4 | byte(size&15)}
	size >>= 4
	for size > 0 {
		b[len(b)-1] |= 0x80
		b = append(b, byte(size&0x7f))
		size >>= 7
	}
	return b
}
