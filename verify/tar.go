package verify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A bundle's tar is read by this small reader instead of archive/tar: it
// takes only what the bundler's tar.Writer writes for regular files (a
// POSIX ustar header, the long or non-ASCII name in a PAX "path" record),
// works on the bytes in memory without copying a header or a body, and
// costs a fraction of archive/tar's Next (which, among other things,
// decodes every header block as UTF-8 to name its format). Everything it
// accepts, archive/tar reads the same way (FuzzTarAgreesWithArchiveTar);
// much of what archive/tar accepts (GNU and v7 headers, base-256 numbers,
// sparse files, global or other PAX records) it refuses.

const (
	tarBlock = 512
	// maxPAXSize bounds a PAX header as archive/tar does (maxSpecialFileSize).
	maxPAXSize = 1 << 20
)

// tarEntry is one regular file of the archive. name and body point into
// the tar bytes.
type tarEntry struct {
	name         []byte
	mode         int64
	uname, gname []byte
	body         []byte
}

// tarReader walks the entries of an in-memory tar.
type tarReader struct {
	b        []byte
	off      int
	nameBuf  []byte // prefix "/" name, when a ustar name is split
	finished bool
}

var errTarEnd = errors.New("end of archive")

// next returns the next regular file, or errTarEnd after the end marker
// (two zero blocks, then nothing but zeros). Any other error is a
// *RejectError.
func (r *tarReader) next() (tarEntry, error) {
	var paxPath []byte
	for {
		h, err := r.block()
		if err != nil {
			return tarEntry{}, err
		}
		if allZero(h) {
			if paxPath != nil {
				return tarEntry{}, tarMalformed("PAX header without an entry")
			}
			return tarEntry{}, r.end()
		}
		size, mode, err := checkHeader(h, r.off-tarBlock)
		if err != nil {
			return tarEntry{}, err
		}
		switch typ := h[156]; typ {
		case 'x':
			if paxPath != nil {
				return tarEntry{}, tarMalformed("two PAX headers for one entry")
			}
			if size > maxPAXSize {
				return tarEntry{}, tarMalformed("PAX header of %d bytes", size)
			}
			body, err := r.body(size)
			if err != nil {
				return tarEntry{}, err
			}
			if paxPath, err = parsePAX(body); err != nil {
				return tarEntry{}, err
			}
		case '0':
			e := tarEntry{name: paxPath, mode: mode, uname: cstring(h[265:297]), gname: cstring(h[297:329])}
			if e.name == nil {
				e.name = r.ustarName(h)
			}
			if e.body, err = r.body(size); err != nil {
				return tarEntry{}, err
			}
			return e, nil
		default:
			kind := map[byte]string{
				'1': "hard link", '2': "symlink", '3': "character device", '4': "block device",
				'5': "directory", '6': "fifo",
			}[typ]
			if kind == "" {
				kind = fmt.Sprintf("type %q", typ)
			}
			name := string(paxPath)
			if paxPath == nil {
				name = string(r.ustarName(h))
			}
			return tarEntry{}, reject(ErrUnsafeEntry, "tar entry %q is a %s, only regular files allowed", name, kind)
		}
	}
}

// block returns the next header block.
func (r *tarReader) block() ([]byte, error) {
	if r.finished {
		return nil, errTarEnd
	}
	if len(r.b)-r.off < tarBlock {
		return nil, tarMalformed("unexpected end of archive at byte %d", r.off)
	}
	h := r.b[r.off : r.off+tarBlock]
	r.off += tarBlock
	return h, nil
}

// body returns the next size bytes and skips their padding, which must be
// zeros.
func (r *tarReader) body(size int64) ([]byte, error) {
	padded := (size + tarBlock - 1) / tarBlock * tarBlock
	if padded < size || padded > int64(len(r.b)-r.off) {
		return nil, tarMalformed("entry of %d bytes runs past the end of the archive", size)
	}
	b := r.b[r.off : r.off+int(size)]
	if !allZero(r.b[r.off+int(size) : r.off+int(padded)]) {
		return nil, tarMalformed("padding after an entry is not zero")
	}
	r.off += int(padded)
	return b, nil
}

// end checks the end marker: a second zero block, then only zeros.
func (r *tarReader) end() error {
	r.finished = true
	if len(r.b)-r.off < tarBlock || !allZero(r.b[r.off:]) {
		return tarMalformed("end marker not two zero blocks, or data after it")
	}
	r.off = len(r.b)
	return errTarEnd
}

// ustarName is a ustar header's name, with its prefix when it has one.
func (r *tarReader) ustarName(h []byte) []byte {
	name, prefix := cstring(h[0:100]), cstring(h[345:500])
	if len(prefix) == 0 {
		return name
	}
	r.nameBuf = append(append(append(r.nameBuf[:0], prefix...), '/'), name...)
	return r.nameBuf
}

var ustarMagic = []byte("ustar\x0000")

// checkHeader checks a header block's form (POSIX ustar magic and version,
// not GNU's; the checksum; every numeric field archive/tar parses; nothing
// in the unused tail) and returns its size and mode.
func checkHeader(h []byte, off int) (size, mode int64, err error) {
	if !bytes.Equal(h[257:265], ustarMagic) {
		return 0, 0, tarMalformed("header at byte %d: not a POSIX ustar header", off)
	}
	if !allZero(h[500:]) {
		return 0, 0, tarMalformed("header at byte %d: unused bytes not zero", off)
	}
	sum, err := octal(h[148:156], "checksum")
	if err != nil {
		return 0, 0, err
	}
	// The checksum is the sum of the header's bytes with its own field
	// taken as spaces (unsigned, as tar.Writer writes it).
	got := byteSum(h) - byteSum(h[148:156]) + 8*' '
	if got != sum {
		return 0, 0, tarMalformed("header at byte %d: checksum %o, computed %o", off, sum, got)
	}
	for _, f := range [...]struct {
		lo, hi int
		name   string
	}{{108, 116, "uid"}, {116, 124, "gid"}, {136, 148, "mtime"}, {329, 337, "devmajor"}, {337, 345, "devminor"}} {
		if _, err := octal(h[f.lo:f.hi], f.name); err != nil {
			return 0, 0, err
		}
	}
	if mode, err = octal(h[100:108], "mode"); err != nil {
		return 0, 0, err
	}
	size, err = octal(h[124:136], "size")
	return size, mode, err
}

// octal parses a numeric header field as archive/tar's parseOctal does
// (spaces and NULs around octal digits; empty is 0), without the base-256
// form tar.Writer never uses for a configuration file.
func octal(b []byte, field string) (int64, error) {
	b = bytes.Trim(b, " \x00")
	var v int64
	for _, c := range b {
		if c < '0' || c > '7' || v > math.MaxInt64>>3 {
			return 0, tarMalformed("header field %s %q: not an octal number", field, b)
		}
		v = v<<3 | int64(c-'0')
	}
	return v, nil
}

// parsePAX returns the path of a PAX header whose only record is "path"
// (what tar.Writer writes for a long or non-ASCII name). Records are
// "LEN KEY=VALUE\n", LEN counting the whole record in decimal.
func parsePAX(b []byte) ([]byte, error) {
	var path []byte
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 || sp > 7 || b[0] == '0' {
			return nil, tarMalformed("PAX record: no length")
		}
		n := 0
		for _, c := range b[:sp] {
			if c < '0' || c > '9' {
				return nil, tarMalformed("PAX record: length %q", b[:sp])
			}
			n = n*10 + int(c-'0')
		}
		if n <= sp+1 || n > len(b) || b[n-1] != '\n' {
			return nil, tarMalformed("PAX record: length %d does not end at a newline", n)
		}
		k, v, ok := bytes.Cut(b[sp+1:n-1], []byte("="))
		b = b[n:]
		switch {
		case !ok:
			return nil, tarMalformed("PAX record %q: no =", k)
		case bytes.HasPrefix(k, []byte("GNU.sparse.")):
			// A sparse file expands to more bytes than the archive holds.
			return nil, reject(ErrUnsafeEntry, "tar entry: sparse file (PAX record %s)", k)
		case string(k) != "path":
			return nil, tarMalformed("PAX record %q: only path allowed", k)
		case path != nil:
			return nil, tarMalformed("PAX path given twice")
		case len(v) == 0 || bytes.IndexByte(v, 0) >= 0:
			return nil, tarMalformed("PAX path %q", v)
		}
		path = v
	}
	if path == nil {
		return nil, tarMalformed("PAX header without a path")
	}
	return path, nil
}

// cstring is a header string field up to its first NUL.
func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// byteSum adds up the bytes of b (at most a block), eight at a time: each
// 16-bit lane of the accumulator sums two bytes of every word, at most
// 2*64*255 for a block, so no lane overflows into the next.
func byteSum(b []byte) int64 {
	const lo = 0x00ff00ff00ff00ff
	var acc uint64
	for ; len(b) >= 8; b = b[8:] {
		w := binary.LittleEndian.Uint64(b)
		acc += w&lo + w>>8&lo
	}
	n := int64(acc&0xffff + acc>>16&0xffff + acc>>32&0xffff + acc>>48)
	for _, c := range b {
		n += int64(c)
	}
	return n
}

var zeroBlock [tarBlock]byte

// allZero compares a block at a time (bytes.Equal is vectorised).
func allZero(b []byte) bool {
	for len(b) > tarBlock {
		if !bytes.Equal(b[:tarBlock], zeroBlock[:]) {
			return false
		}
		b = b[tarBlock:]
	}
	return bytes.Equal(b, zeroBlock[:len(b)])
}

func tarMalformed(format string, args ...any) error {
	return reject(ErrMalformed, "archive: tar: "+format, args...)
}
