package gitauth

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	gitclient "github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// Budget bounds what one git server response may make its reader (the
// agent's source, bundler status and wait) read and
// inflate (SECURITY.md "Endless data"): an endless ref advertisement or a
// small blob that inflates to gigabytes must fail fast, far below memory.
// Over HTTP(S) every response body is counted, over ssh the session's
// output (ssh.go), and an upload-pack response's pack is inspected as it
// streams in: an object whose declared (or, for a delta, resulting) size
// is over MaxObject is refused before go-git inflates it.
type Budget struct {
	Refs      int64 // bytes of one ref advertisement (GET …/info/refs)
	Pack      int64 // bytes of one upload-pack response (the pack, on the wire)
	MaxObject int64 // inflated bytes of one object in a pack
}

// DefaultBudget: the archive limit is 32 MiB (verify.DefaultLimits), so
// one object may be a little more; a pack holds one tip's objects.
var DefaultBudget = Budget{Refs: 1 << 20, Pack: 64 << 20, MaxObject: 40 << 20}

// maxPackObjects bounds the object count a pack header may announce:
// go-git keeps an index entry per object.
const maxPackObjects = 1 << 20

// ErrBudget: a git response went over its budget.
var ErrBudget = errors.New("git response over budget")

type budgetKey struct{}

// WithBudget makes git requests made with ctx use b.
func WithBudget(ctx context.Context, b Budget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

func budgetOf(ctx context.Context) Budget {
	if b, ok := ctx.Value(budgetKey{}).(Budget); ok {
		return b
	}
	return DefaultBudget
}

// go-git picks its client per scheme from a global table, so every
// program that imports this package (the agent, the bundler) gets the
// budgeted clients for all its HTTP(S) and ssh git traffic. Requests carry their
// Budget in the context (WithBudget); others get DefaultBudget.
func init() {
	c := githttp.NewClient(&http.Client{Transport: budgetTransport{base: http.DefaultTransport}})
	gitclient.InstallProtocol("http", c)
	gitclient.InstallProtocol("https", c)
	gitclient.InstallProtocol("ssh", sshTransport{})
}

type budgetTransport struct{ base http.RoundTripper }

func (t budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	if err != nil || res.Body == nil {
		return res, err
	}
	b := budgetOf(req.Context())
	what, limit := "ref advertisement", b.Refs
	if strings.HasSuffix(req.URL.Path, "/git-upload-pack") {
		what, limit = "upload-pack response", b.Pack
	}
	if res.ContentLength > limit {
		res.Body.Close()
		return nil, fmt.Errorf("%s of %d bytes: %w (limit %d)", what, res.ContentLength, ErrBudget, limit)
	}
	body := &limitedBody{rc: res.Body, left: limit, what: what, limit: limit}
	res.Body = body
	if what == "upload-pack response" && b.MaxObject > 0 {
		res.Body = newPackInspector(body, b.MaxObject)
	}
	return res, nil
}

// limitedBody fails (rather than ends) past its limit, so a cut-off
// advertisement or pack is never taken for a whole one.
type limitedBody struct {
	rc          io.ReadCloser
	left, limit int64
	what        string
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := l.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%s over %d bytes: %w", l.what, l.limit, ErrBudget)
		}
		return l.rc.Read(p[:0])
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// packInspector passes an upload-pack response through unchanged while a
// goroutine parses it in lockstep: each chunk is handed to the parser and
// only returned to go-git once the parser has dealt with it (it asks for
// the next one) or has finished. So go-git never sees the bytes of an
// object the parser refused.
type packInspector struct {
	rc     io.ReadCloser
	in     chan []byte
	ack    chan struct{}
	done   chan struct{} // closed when the parser has finished; err is set
	err    error
	closed chan struct{}
	once   sync.Once
}

func newPackInspector(rc io.ReadCloser, maxObject int64) *packInspector {
	pi := &packInspector{rc: rc, in: make(chan []byte), ack: make(chan struct{}), done: make(chan struct{}), closed: make(chan struct{})}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(demux(&chunkReader{pi: pi}, pw)) }()
	go func() {
		pi.err = inspectPack(bufio.NewReader(pr), maxObject)
		close(pi.done)
		pr.CloseWithError(io.ErrClosedPipe) // stops demux
	}()
	return pi
}

func (pi *packInspector) failed() error {
	select {
	case <-pi.done:
		return pi.err
	default:
		return nil
	}
}

func (pi *packInspector) Read(p []byte) (int, error) {
	if err := pi.failed(); err != nil {
		return 0, err
	}
	n, err := pi.rc.Read(p)
	if n > 0 {
		// The parser gets its own copy: once it has finished (done), Read
		// returns without waiting for the demuxer to let go of the chunk,
		// and the caller reuses p.
		select {
		case pi.in <- bytes.Clone(p[:n]):
			select {
			case <-pi.ack:
			case <-pi.done:
			}
		case <-pi.done:
		}
		if ferr := pi.failed(); ferr != nil {
			return 0, ferr
		}
	}
	return n, err
}

func (pi *packInspector) Close() error {
	pi.once.Do(func() { close(pi.closed) })
	return pi.rc.Close()
}

// chunkReader is the parser's side of the lockstep.
type chunkReader struct {
	pi      *packInspector
	buf     []byte
	started bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.buf) == 0 {
		if c.started {
			select { // all of the last chunk is dealt with
			case c.pi.ack <- struct{}{}:
			case <-c.pi.done:
				return 0, io.EOF
			case <-c.pi.closed:
				return 0, io.EOF
			}
		}
		c.started = true
		select {
		case c.buf = <-c.pi.in:
		case <-c.pi.done:
			return 0, io.EOF
		case <-c.pi.closed:
			return 0, io.EOF
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// demux copies band-1 data (or a raw pack) from an upload-pack response
// to w.
func demux(r io.Reader, w io.Writer) error {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil
		}
		if string(hdr[:]) == "PACK" { // no side-band: the pack follows raw
			if _, err := w.Write(hdr[:]); err != nil {
				return nil
			}
			io.Copy(w, r)
			return nil
		}
		n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
		if err != nil {
			return nil // not ours to judge: go-git reports it
		}
		if n <= 4 {
			continue // flush, delim
		}
		line := make([]byte, n-4)
		if _, err := io.ReadFull(r, line); err != nil {
			return nil
		}
		if line[0] == 1 {
			if _, err := w.Write(line[1:]); err != nil {
				return nil
			}
		}
	}
}

// inspectPack walks a pack's object headers and inflates each object to
// a counter, refusing any over maxObject before inflating it: a whole
// object by its header, a delta by the result size at its start.
func inspectPack(br *bufio.Reader, maxObject int64) error {
	var hdr [12]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil
	}
	if string(hdr[:4]) != "PACK" {
		return nil
	}
	count := binary.BigEndian.Uint32(hdr[8:])
	if count > maxPackObjects {
		return fmt.Errorf("pack announces %d objects: %w (limit %d)", count, ErrBudget, maxPackObjects)
	}
	var zr io.ReadCloser
	for i := uint32(0); i < count; i++ {
		c, err := br.ReadByte()
		if err != nil {
			return nil
		}
		typ := (c >> 4) & 7
		size := int64(c & 15)
		for shift := 4; c&0x80 != 0; shift += 7 {
			if c, err = br.ReadByte(); err != nil {
				return nil
			}
			if shift > 56 {
				return fmt.Errorf("pack object %d: size header too long: %w", i, ErrBudget)
			}
			size |= int64(c&0x7f) << shift
		}
		if size > maxObject {
			return fmt.Errorf("pack object %d: %d bytes inflated: %w (limit %d)", i, size, ErrBudget, maxObject)
		}
		switch typ {
		case 6: // ofs-delta: a base offset
			for c = 0x80; c&0x80 != 0; {
				if c, err = br.ReadByte(); err != nil {
					return nil
				}
			}
		case 7: // ref-delta: a base object id
			if _, err := br.Discard(20); err != nil {
				return nil
			}
		}
		if zr == nil {
			if zr, err = zlib.NewReader(br); err != nil {
				return nil
			}
		} else if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
			return nil
		}
		lr := io.LimitReader(zr, size+1)
		if typ == 6 || typ == 7 {
			// A delta starts with its base size and result size.
			d := bufio.NewReaderSize(lr, 16)
			if _, err := binary.ReadUvarint(d); err != nil {
				return nil
			}
			target, err := binary.ReadUvarint(d)
			if err != nil {
				return nil
			}
			if target > uint64(maxObject) {
				return fmt.Errorf("pack object %d: delta to %d bytes: %w (limit %d)", i, target, ErrBudget, maxObject)
			}
			lr = d
		}
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return nil
		}
	}
	return nil
}
