// Package gittest runs a real git server on loopback for tests and the demo:
// smart HTTP through `git http-backend` behind net/http/cgi, bound to
// 127.0.0.1 on a free port. It counts requests by kind so tests can assert
// what a client did (an unchanged poll is one ref advertisement and no
// fetch), and it can be stopped and started on the same address to play a
// server that is down.
//
// It also has small helpers that write commits straight into a bare
// repository (no worktree), so tests can publish arbitrary trees, move a
// branch back (a force-push) or plant odd blobs such as symlinks.
package gittest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a smart-HTTP git server over the bare repositories below a root
// directory. Its methods are safe for concurrent use.
type Server struct {
	root    string
	handler http.Handler

	mu   sync.Mutex
	addr string // host:port, fixed at the first start
	srv  *http.Server

	infoRefs    atomic.Int64
	lsRefs      atomic.Int64
	uploadPack  atomic.Int64
	receivePack atomic.Int64
	delay       atomic.Int64 // nanoseconds added before each request
	auth        atomic.Pointer[[2]string]
	beforePack  atomic.Pointer[func()] // run once, before the next upload-pack (fetch) POST is served
}

// Counts are the requests a Server has seen since the last ResetCounts.
type Counts struct {
	InfoRefs int64 // GET …/info/refs: ref advertisements (ls-remote, the first step of fetch and push)
	// LsRefs counts protocol v2 "command=ls-refs" POSTs: how git 2.x's own
	// ls-remote lists refs after the advertisement (go-git speaks v0/v1
	// and never sends one).
	LsRefs      int64
	UploadPack  int64 // POST …/git-upload-pack carrying a fetch: negotiation and pack transfer
	ReceivePack int64 // POST …/git-receive-pack: pushes
}

// Serve starts a server for the repositories below root (repositories are
// addressed by their path relative to root, e.g. "infra.git"). It needs the
// git binary. Close it when done.
func Serve(root string) (*Server, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("gittest: root %q: %w", root, err)
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("gittest: git binary: %w", err)
	}
	s := &Server{root: abs}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Root: "/",
		Env: []string{
			"GIT_PROJECT_ROOT=" + abs,
			"GIT_HTTP_EXPORT_ALL=1",
			// Enable pushes without authentication (bundler publish)
			// and accept repositories owned by another user.
			"GIT_CONFIG_COUNT=2",
			"GIT_CONFIG_KEY_0=http.receivepack",
			"GIT_CONFIG_VALUE_0=true",
			"GIT_CONFIG_KEY_1=safe.directory",
			"GIT_CONFIG_VALUE_1=*",
		},
	}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count(r)
		if want := s.auth.Load(); want != nil {
			if u, p, ok := r.BasicAuth(); !ok || u != want[0] || p != want[1] {
				w.Header().Set("WWW-Authenticate", `Basic realm="gittest"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		if f := s.beforePack.Load(); f != nil && isUploadPack(r) && s.beforePack.CompareAndSwap(f, nil) {
			(*f)()
		}
		if d := time.Duration(s.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		backend.ServeHTTP(w, r)
	})
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) count(r *http.Request) {
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/info/refs"):
		s.infoRefs.Add(1)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
		if isLsRefs(r) {
			s.lsRefs.Add(1)
		} else {
			s.uploadPack.Add(1)
		}
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack"):
		s.receivePack.Add(1)
	}
}

// BeforeNextUploadPack runs f once, when the next fetch's upload-pack
// request arrives and before it is served: a test moves a ref there to
// race the client between the ref advertisement and the pack request, as
// a concurrent push does on a real server.
func (s *Server) BeforeNextUploadPack(f func()) { s.beforePack.Store(&f) }

func isUploadPack(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") && !isLsRefs(r)
}

// isLsRefs reports whether an upload-pack POST is a protocol v2 ls-refs
// command. It buffers the (small) request body and puts it back.
func isLsRefs(r *http.Request) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	head := body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return false
		}
		head, _ = io.ReadAll(io.LimitReader(zr, 64))
	}
	// The first pkt-line: 4 hex digits of length, then "command=ls-refs".
	return len(head) > 4 && bytes.HasPrefix(head[4:], []byte("command=ls-refs"))
}

// Root is the directory holding the served repositories.
func (s *Server) Root() string { return s.root }

// Addr is the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the clone URL of the repository at path repo below the root.
func (s *Server) URL(repo string) string {
	return "http://" + s.Addr() + "/" + strings.TrimPrefix(repo, "/")
}

// Counts returns the request counters.
func (s *Server) Counts() Counts {
	return Counts{
		InfoRefs:    s.infoRefs.Load(),
		LsRefs:      s.lsRefs.Load(),
		UploadPack:  s.uploadPack.Load(),
		ReceivePack: s.receivePack.Load(),
	}
}

// ResetCounts sets every counter back to zero.
func (s *Server) ResetCounts() {
	s.infoRefs.Store(0)
	s.lsRefs.Store(0)
	s.uploadPack.Store(0)
	s.receivePack.Store(0)
}

// RequireAuth makes every request need HTTP basic auth with user and
// password, as a hosted git server asks a CI job for its token.
func (s *Server) RequireAuth(user, password string) { s.auth.Store(&[2]string{user, password}) }

// SetDelay makes the server wait d before answering each request (0 turns
// it off): a slow server for deadline tests.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Start listens again on the server's address after Stop (the first call,
// from Serve, picks a free port on 127.0.0.1). Starting a running server is
// a no-op.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gittest: listen %s: %w", addr, err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Stop closes the listener and every open connection: clients get
// "connection refused" until Start. Stopping a stopped server is a no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	s.srv = nil
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gittest: stop: %w", err)
	}
	return nil
}

// Close stops the server for good.
func (s *Server) Close() error { return s.Stop() }

// Init creates an empty bare repository at path repo below the root (e.g.
// "infra.git") and returns its directory.
func (s *Server) Init(repo string) (string, error) {
	dir := filepath.Join(s.root, filepath.FromSlash(repo))
	if err := InitBare(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// InitBare creates an empty bare repository at dir.
func InitBare(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("gittest: %w", err)
	}
	_, err := git(dir, nil, "", "init", "--bare", "--quiet", dir)
	return err
}

// Entry is one file of a commit written by CommitEntries.
type Entry struct {
	Path string // slash-separated, relative to the tree root
	Data []byte // contents; for a symlink, the link target
	// Mode is a git tree mode: "100644" (the default), "100755" or
	// "120000" (symlink).
	Mode string
}

// Commit writes a commit whose tree holds exactly files (path → contents,
// mode 100644) on branch of the bare repository dir, with the branch's
// current head as parent, and returns the commit id.
func Commit(dir, branch string, files map[string][]byte) (string, error) {
	entries := make([]Entry, 0, len(files))
	for p, data := range files {
		entries = append(entries, Entry{Path: p, Data: data})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	return CommitEntries(dir, branch, entries)
}

// CommitEntries is Commit with explicit modes.
func CommitEntries(dir, branch string, entries []Entry) (string, error) {
	tmp, err := os.MkdirTemp("", "gittest-index-")
	if err != nil {
		return "", fmt.Errorf("gittest: %w", err)
	}
	defer os.RemoveAll(tmp)
	env := []string{"GIT_INDEX_FILE=" + filepath.Join(tmp, "index")}
	for _, e := range entries {
		mode := e.Mode
		if mode == "" {
			mode = "100644"
		}
		blob, err := git(dir, env, string(e.Data), "hash-object", "-w", "--stdin")
		if err != nil {
			return "", err
		}
		if _, err := git(dir, env, "", "update-index", "--add", "--cacheinfo", mode+","+blob+","+e.Path); err != nil {
			return "", err
		}
	}
	tree, err := git(dir, env, "", "write-tree")
	if err != nil {
		return "", err
	}
	args := []string{"commit-tree", tree, "-m", "gittest commit"}
	if parent, err := Head(dir, branch); err == nil {
		args = append(args, "-p", parent)
	}
	commit, err := git(dir, env, "", args...)
	if err != nil {
		return "", err
	}
	if err := SetBranch(dir, branch, commit); err != nil {
		return "", err
	}
	return commit, nil
}

// Head returns the commit branch points at.
func Head(dir, branch string) (string, error) {
	return git(dir, nil, "", "rev-parse", "--verify", "--quiet", "refs/heads/"+branch+"^{commit}")
}

// SetBranch points branch at commit, whatever it pointed at before: what a
// force-push does on the server.
func SetBranch(dir, branch, commit string) error {
	_, err := git(dir, nil, "", "update-ref", "refs/heads/"+branch, commit)
	return err
}

// git runs a git command in the bare repository dir with a fixed identity
// and returns its trimmed stdout.
func git(dir string, env []string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir", dir}, args...)...)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=gittest", "GIT_AUTHOR_EMAIL=gittest@localhost",
		"GIT_COMMITTER_NAME=gittest", "GIT_COMMITTER_EMAIL=gittest@localhost",
		"GIT_CONFIG_NOSYSTEM=1",
	)
	cmd.Env = append(cmd.Env, env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gittest: git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
