package gitauth

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
)

// sideBandPack is an upload-pack response: NAK, a one-blob pack in
// side-band 1, then progress (band 2) and a flush after the pack.
func sideBandPack(t *testing.T) []byte {
	t.Helper()
	content := bytes.Repeat([]byte("rigger "), 200)
	var pack bytes.Buffer
	pack.WriteString("PACK")
	binary.Write(&pack, binary.BigEndian, uint32(2))
	binary.Write(&pack, binary.BigEndian, uint32(1))
	size := len(content)
	hdr := []byte{3<<4 | byte(size&15)}
	for size >>= 4; size > 0; size >>= 7 {
		hdr[len(hdr)-1] |= 0x80
		hdr = append(hdr, byte(size&0x7f))
	}
	pack.Write(hdr)
	zw := zlib.NewWriter(&pack)
	zw.Write(content)
	zw.Close()
	sum := sha1.Sum(pack.Bytes())
	pack.Write(sum[:])

	pkt := func(b []byte) []byte { return append(fmt.Appendf(nil, "%04x", len(b)+4), b...) }
	var out bytes.Buffer
	out.Write(pkt([]byte("NAK\n")))
	for p := pack.Bytes(); len(p) > 0; {
		n := min(len(p), 500)
		out.Write(pkt(append([]byte{1}, p[:n]...)))
		p = p[n:]
	}
	for i := range 5000 { // long enough that the pack is parsed before it ends
		out.Write(pkt(fmt.Appendf(nil, "\x02Total %d (delta 0), reused 0\n", i)))
	}
	out.WriteString("0000")
	return out.Bytes()
}

// oneChunk hands its whole content to the first Read.
type oneChunk struct{ r *bytes.Reader }

func (o oneChunk) Read(p []byte) (int, error) { return o.r.Read(p) }
func (o oneChunk) Close() error               { return nil }

// TestPackInspectorOwnsItsChunks reads a response through the inspector
// as go-git does, reusing its buffer at once after each Read: the bytes
// pass through unchanged, and under -race the inspector must not touch a
// chunk the caller has been given back.
func TestPackInspectorOwnsItsChunks(t *testing.T) {
	resp := sideBandPack(t)
	for range 20 {
		pi := newPackInspector(oneChunk{bytes.NewReader(resp)}, 1<<20)
		var got bytes.Buffer
		buf := make([]byte, len(resp)+100)
		for {
			n, err := pi.Read(buf)
			got.Write(buf[:n])
			clear(buf) // the caller's next use of its buffer
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		pi.Close()
		if !bytes.Equal(got.Bytes(), resp) {
			t.Fatal("the inspector changed the response")
		}
	}
}
