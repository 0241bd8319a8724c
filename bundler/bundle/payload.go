package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/rigger-bsd/rigger/verify"
)

// appendPayload appends json.Marshal(m) to dst: the manifest bytes the
// signatures cover. The files list, most of a manifest, is written by hand
// (appendFiles); encoding/json writes the rest, with files null, and the
// list takes the place of that null. TestPayloadSameBytesAsJSON holds the
// result byte-equal to json.Marshal.
func appendPayload(dst []byte, m *verify.Manifest) ([]byte, error) {
	sc := jsonPool.Get().(*jsonScratch)
	defer sc.put()
	rest := *m
	rest.Files = nil
	sc.buf.Reset()
	enc := json.NewEncoder(&sc.buf) // escapes HTML as json.Marshal does
	if err := enc.Encode(&rest); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(sc.buf.Bytes(), []byte("\n"))
	// The first `,"files":null` is the manifest's own key: inside a JSON
	// string a quote is always escaped, so `,"` is structure, and the
	// objects before files (source, archive) have no files key.
	const null = `,"files":null`
	i := bytes.Index(out, []byte(null))
	if i < 0 {
		return nil, errors.New("manifest JSON has no files key")
	}
	dst = append(dst, out[:i+len(null)-len("null")]...)
	dst = appendFiles(dst, m.Files)
	return append(dst, out[i+len(null):]...), nil
}

// jsonScratch is the buffer one appendPayload call reuses.
type jsonScratch struct{ buf bytes.Buffer }

var jsonPool = sync.Pool{New: func() any { return new(jsonScratch) }}

func (sc *jsonScratch) put() {
	if sc.buf.Cap() <= 1<<20 {
		jsonPool.Put(sc)
	}
}

// appendFiles appends files as encoding/json writes a []verify.File: the
// fields in declaration order, the mode as its text (Mode.MarshalText:
// octal, at least four digits). TestFileFields fails when verify.File
// changes.
func appendFiles(dst []byte, files []verify.File) []byte {
	if files == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, f := range files {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"path":`...)
		dst = appendJSONString(dst, f.Path)
		dst = append(dst, `,"mode":"`...)
		dst = appendMode(dst, f.Mode)
		dst = append(dst, `","owner":`...)
		dst = appendJSONString(dst, f.Owner)
		dst = append(dst, `,"group":`...)
		dst = appendJSONString(dst, f.Group)
		dst = append(dst, `,"sha256":`...)
		dst = appendJSONString(dst, f.SHA256)
		dst = append(dst, `,"size":`...)
		dst = strconv.AppendInt(dst, f.Size, 10)
		dst = append(dst, `,"unit":`...)
		dst = appendJSONString(dst, f.Unit)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendMode is Mode.MarshalText ("%04o") without fmt.
func appendMode(dst []byte, m verify.Mode) []byte {
	var digits [11]byte
	d := strconv.AppendUint(digits[:0], uint64(uint32(m)), 8)
	for range 4 - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

// appendJSONString appends s quoted as encoding/json quotes it: printable
// ASCII other than the quote, backslash and the HTML characters it
// escapes is copied; any other string (rare in a manifest) is quoted by
// encoding/json itself.
func appendJSONString(dst []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// paeReader reads verify.PAE(payloadType, payload) without copying the
// payload into it: signing only hashes the message (io.Copy into the
// hash, which takes WriteTo; io.MultiReader's WriteTo would allocate a
// 32 KiB buffer per signature).
func paeReader(payloadType string, payload []byte) io.Reader {
	head := make([]byte, 0, 64+len(payloadType))
	head = append(head, "DSSEv1 "...)
	head = strconv.AppendInt(head, int64(len(payloadType)), 10)
	head = append(head, ' ')
	head = append(head, payloadType...)
	head = append(head, ' ')
	head = strconv.AppendInt(head, int64(len(payload)), 10)
	head = append(head, ' ')
	return &pae{parts: [2][]byte{head, payload}}
}

// pae is a reader of two byte slices, one after the other.
type pae struct{ parts [2][]byte }

func (p *pae) Read(b []byte) (int, error) {
	for i := range p.parts {
		if len(p.parts[i]) > 0 {
			n := copy(b, p.parts[i])
			p.parts[i] = p.parts[i][n:]
			return n, nil
		}
	}
	return 0, io.EOF
}

func (p *pae) WriteTo(w io.Writer) (int64, error) {
	var sum int64
	for i := range p.parts {
		n, err := w.Write(p.parts[i])
		sum += int64(n)
		p.parts[i] = p.parts[i][n:]
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}
