package gitauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// sshTransport is the git-over-ssh client with the Budget on what the
// server sends: go-git's own ssh transport reads the session's output
// unbounded and gives no place to wrap it, so upload-pack (fetch and
// ls-remote) is done here with go-git's protocol types: the ref
// advertisement is read within Budget.Refs, the rest of the output (the
// pack, side-band framed as over HTTP) within Budget.Pack and through the
// same pack inspector (Budget.MaxObject). Pushes (receive-pack: the server
// answers with a short status report) stay with go-git.
//
// Differences from go-git's ssh transport: ~/.ssh/config is not read
// (host and port come from the URL) and an auth method other than
// gitssh.AuthMethod is refused; Auth always builds one.
type sshTransport struct{}

func (sshTransport) NewReceivePackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.ReceivePackSession, error) {
	return gitssh.DefaultClient.NewReceivePackSession(ep, auth)
}

func (sshTransport) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	var am gitssh.AuthMethod
	switch a := auth.(type) {
	case nil:
		var err error
		if am, err = gitssh.DefaultAuthBuilder(ep.User); err != nil {
			return nil, err
		}
	case gitssh.AuthMethod:
		am = a
	default:
		return nil, transport.ErrInvalidAuthMethod
	}
	cfg, err := am.ClientConfig()
	if err != nil {
		return nil, err
	}
	if cfg.HostKeyCallback == nil {
		// As go-git: the user's and the system's known_hosts.
		if cfg.HostKeyCallback, err = gitssh.NewKnownHostsCallback(); err != nil {
			return nil, err
		}
	}
	port := ep.Port
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	client, err := ssh.Dial("tcp", net.JoinHostPort(ep.Host, strconv.Itoa(port)), cfg)
	if err != nil {
		return nil, err
	}
	sess, err := client.NewSession()
	if err != nil {
		client.Close()
		return nil, err
	}
	s := &sshUploadPack{client: client, sess: sess}
	if s.stdin, err = sess.StdinPipe(); err == nil {
		var out, errOut io.Reader
		if out, err = sess.StdoutPipe(); err == nil {
			s.stdout = &limitedBody{rc: io.NopCloser(out)}
			if errOut, err = sess.StderrPipe(); err == nil {
				s.stderr = firstLine(errOut)
				err = sess.Start(transport.UploadPackServiceName + " " + shellQuote(ep.Path))
			}
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// sshUploadPack is one upload-pack over one ssh connection.
type sshUploadPack struct {
	client *ssh.Client
	sess   *ssh.Session
	stdin  io.WriteCloser
	// stdout counts down the phase's budget: Refs while the advertisement
	// is read, then Pack.
	stdout  *limitedBody
	stderr  <-chan string
	advRefs *packp.AdvRefs
	once    sync.Once
}

func (s *sshUploadPack) AdvertisedReferences() (*packp.AdvRefs, error) {
	return s.AdvertisedReferencesContext(context.Background())
}

func (s *sshUploadPack) AdvertisedReferencesContext(ctx context.Context) (*packp.AdvRefs, error) {
	if s.advRefs != nil {
		return s.advRefs, nil
	}
	b := budgetOf(ctx)
	s.stdout.what, s.stdout.left, s.stdout.limit = "ref advertisement", b.Refs, b.Refs
	stop := s.closeOnDone(ctx)
	defer stop()
	ar := packp.NewAdvRefs()
	if err := ar.Decode(s.stdout); err != nil {
		return nil, s.decodeError(ctx, err)
	}
	if ar.IsEmpty() {
		return nil, transport.ErrEmptyRemoteRepository
	}
	transport.FilterUnsupportedCapabilities(ar.Capabilities)
	s.advRefs = ar
	return ar, nil
}

// decodeError makes a failed advertisement say why: the budget, the
// deadline, or the server's first error line.
func (s *sshUploadPack) decodeError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, ErrBudget):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	case errors.Is(err, packp.ErrEmptyAdvRefs):
		return transport.ErrEmptyRemoteRepository
	}
	var el *pktline.ErrorLine
	if errors.As(err, &el) && isNotFound(el.Text) {
		return transport.ErrRepositoryNotFound
	}
	if errors.Is(err, packp.ErrEmptyInput) {
		s.sess.Wait()
		if line, ok := <-s.stderr; ok {
			if isNotFound(line) {
				return transport.ErrRepositoryNotFound
			}
			return fmt.Errorf("%w: %s", io.ErrUnexpectedEOF, line)
		}
		return io.ErrUnexpectedEOF
	}
	return err
}

func (s *sshUploadPack) UploadPack(ctx context.Context, req *packp.UploadPackRequest) (*packp.UploadPackResponse, error) {
	if req.IsEmpty() {
		s.Close()
		return nil, transport.ErrEmptyUploadPackRequest
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if _, err := s.AdvertisedReferencesContext(ctx); err != nil {
		return nil, err
	}
	stop := s.closeOnDone(ctx)
	// As go-git's upload-pack: wants, haves, done, end of input.
	if err := req.UploadRequest.Encode(s.stdin); err != nil {
		stop()
		return nil, fmt.Errorf("sending upload-req message: %w", err)
	}
	if err := req.UploadHaves.Encode(s.stdin, true); err != nil {
		stop()
		return nil, fmt.Errorf("sending haves message: %w", err)
	}
	if err := pktline.NewEncoder(s.stdin).Encodef("done\n"); err != nil {
		stop()
		return nil, fmt.Errorf("sending done message: %w", err)
	}
	s.stdin.Close()
	b := budgetOf(ctx)
	s.stdout.what, s.stdout.left, s.stdout.limit = "upload-pack response", b.Pack, b.Pack
	var body io.ReadCloser = s.stdout
	if b.MaxObject > 0 {
		body = newPackInspector(s.stdout, b.MaxObject)
	}
	res := packp.NewUploadPackResponse(req)
	if err := res.Decode(&closer{Reader: body, close: func() error { stop(); return errors.Join(body.Close(), s.Close()) }}); err != nil {
		stop()
		s.Close()
		return nil, fmt.Errorf("error decoding upload-pack response: %w", err)
	}
	return res, nil
}

// closeOnDone closes the connection when ctx ends before stop is called:
// a read blocked on a silent server returns.
func (s *sshUploadPack) closeOnDone(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-done:
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

func (s *sshUploadPack) Close() error {
	var err error
	s.once.Do(func() {
		s.sess.Close()
		err = s.client.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

type closer struct {
	io.Reader
	close func() error
}

func (c *closer) Close() error { return c.close() }

// firstLine hands on the first line the server writes to stderr (its
// error message) and drains the rest, within a small budget.
func firstLine(r io.Reader) <-chan string {
	ch := make(chan string, 1)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
		if sc.Scan() {
			ch <- sc.Text()
		}
		io.Copy(io.Discard, r)
	}()
	return ch
}

// isNotFound matches the messages git servers give for a missing
// repository (as go-git's transport does).
func isNotFound(s string) bool {
	for _, m := range []string{"does not appear to be a git repository", "repository not found", "not found", "no such repository"} {
		if strings.Contains(strings.ToLower(s), m) {
			return true
		}
	}
	return false
}

// shellQuote quotes a path for the remote shell as git's sq_quote_buf
// (quote.c) does: in single quotes, with ' and ! closed, escaped and
// reopened.
func shellQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\'' || c == '!' {
			b.WriteString(`'\`)
			b.WriteByte(c)
			b.WriteByte('\'')
			continue
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('\'')
	return b.String()
}
