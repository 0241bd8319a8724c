package gittest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHServer is a git server over ssh on loopback: it runs git's
// upload-pack and receive-pack on the repositories below its root, or, in
// a hostile mode (EndlessRefs, InflateBomb), misbehaves on every path.
// It accepts only the client key it made (KeyFile) and is known by the
// host key in KnownHostsFile.
type SSHServer struct {
	l              net.Listener
	cfg            *ssh.ServerConfig
	root           string
	mode, branch   string
	KeyFile        string // the client's private key (OpenSSH PEM)
	KnownHostsFile string // a known_hosts line for the server
	wg             sync.WaitGroup
}

// ServeSSH starts a server for the repositories below root (mode "") or a
// hostile one (root unused). Its key files go to dir.
func ServeSSH(dir, root, mode, branch string) (*SSHServer, error) {
	if mode == InflateBomb {
		bomb()
	}
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return nil, err
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		return nil, err
	}
	s := &SSHServer{root: root, mode: mode, branch: branch,
		KeyFile: filepath.Join(dir, "id_ed25519"), KnownHostsFile: filepath.Join(dir, "known_hosts")}
	if err := os.WriteFile(s.KeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	authorized, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		return nil, err
	}
	s.cfg = &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) != string(authorized.Marshal()) {
			return nil, fmt.Errorf("unknown key")
		}
		return nil, nil
	}}
	s.cfg.AddHostKey(hostKey)
	if s.l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(s.l.Addr().String())}, hostKey.PublicKey())
	if err := os.WriteFile(s.KnownHostsFile, []byte(line+"\n"), 0o600); err != nil {
		s.l.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// URL returns the ssh URL of repo (a path below root).
func (s *SSHServer) URL(repo string) string {
	return "ssh://git@" + s.l.Addr().String() + "/" + repo
}

// Close stops accepting connections and waits for the open ones.
func (s *SSHServer) Close() error {
	err := s.l.Close()
	s.wg.Wait()
	return err
}

func (s *SSHServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
			if err != nil {
				return
			}
			defer sc.Close()
			go ssh.DiscardRequests(reqs)
			for nc := range chans {
				if nc.ChannelType() != "session" {
					nc.Reject(ssh.UnknownChannelType, "session only")
					continue
				}
				ch, creqs, err := nc.Accept()
				if err != nil {
					return
				}
				s.session(ch, creqs)
			}
		}()
	}
}

// session serves one exec request and closes the channel.
func (s *SSHServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" || len(req.Payload) < 4 {
			req.Reply(false, nil)
			continue
		}
		n := binary.BigEndian.Uint32(req.Payload)
		cmd := string(req.Payload[4:][:min(int(n), len(req.Payload)-4)])
		req.Reply(true, nil)
		go ssh.DiscardRequests(reqs)
		status := s.run(ch, cmd)
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
		return
	}
}

// run carries out "git-upload-pack '/path'" (or receive-pack).
func (s *SSHServer) run(ch ssh.Channel, cmd string) int {
	prog, arg, _ := strings.Cut(cmd, " ")
	path := strings.Trim(arg, "'")
	switch s.mode {
	case EndlessRefs:
		endlessRefs(ch, s.branch)
		return 0
	case InflateBomb:
		p := bomb()
		io.WriteString(ch, pkt(p.commit+" refs/heads/"+s.branch+"\x00shallow no-progress\n")+"0000")
		// The request ends with "done".
		br := bufio.NewReader(ch)
		for {
			var hdr [4]byte
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return 1
			}
			var n int
			fmt.Sscanf(string(hdr[:]), "%04x", &n)
			if n <= 4 {
				continue
			}
			line := make([]byte, n-4)
			if _, err := io.ReadFull(br, line); err != nil {
				return 1
			}
			if string(line) == "done\n" {
				break
			}
		}
		io.WriteString(ch, pkt("shallow "+p.commit+"\n")+"0000"+pkt("NAK\n"))
		ch.Write(p.pack)
		return 0
	}
	if prog != "git-upload-pack" && prog != "git-receive-pack" {
		fmt.Fprintf(ch.Stderr(), "%s: not allowed\n", prog)
		return 1
	}
	c := exec.Command("git", strings.TrimPrefix(prog, "git-"), filepath.Join(s.root, filepath.Clean("/"+path)))
	c.Stdin, c.Stdout, c.Stderr = ch, ch, ch.Stderr()
	c.WaitDelay = 5 * time.Second
	if err := c.Run(); err != nil {
		return 1
	}
	return 0
}
