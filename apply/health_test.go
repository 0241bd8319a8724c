package apply_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

// serve accepts on loopback and runs h per connection.
func serve(t *testing.T, h func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); h(c) }()
		}
	}()
	return l.Addr().String()
}

// pgServer answers an SSLRequest like PostgreSQL without TLS: 'N'.
func pgServer(t *testing.T) string {
	return serve(t, func(c net.Conn) {
		var b [8]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		if b == [8]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f} {
			c.Write([]byte("N"))
		}
	})
}

// wrongKey behaves like spiped with a wrong key: it accepts, then resets.
func wrongKey(t *testing.T) string {
	return serve(t, func(c net.Conn) {
		var b [8]byte
		io.ReadFull(c, b[:])
		c.(*net.TCPConn).SetLinger(0)
	})
}

func TestHealthChecks(t *testing.T) {
	echo := serve(t, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("PONG " + line))
	})
	banner := serve(t, func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.7 FreeBSD\r\n")) })
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(web.Close)
	e := newEnv(t)
	e.drv.SetRunning("pg_j", true)
	gitErr := errors.New("ls-remote: connection refused")
	// Failing checks run until this deadline, so it bounds the test's time;
	// it is generous because each failing check must fit two attempts
	// (100 ms apart) even under -race on a busy 2-core machine.
	eng, err := apply.New(apply.Config{Root: e.root, StateDir: e.state, Driver: e.drv, HealthTimeout: 3 * time.Second,
		Logger: discard, GitCheck: func(ctx context.Context) error { return gitErr }})
	if err != nil {
		t.Fatal(err)
	}
	short := verify.Duration(150 * time.Millisecond)
	for _, tc := range []struct {
		c    verify.Check
		ok   bool
		want string // in the error
	}{
		{verify.Check{Kind: verify.CheckTunnel, Name: "pgs", Addr: pgServer(t), Probe: "pg-ssl"}, true, ""},
		{verify.Check{Kind: verify.CheckTunnel, Name: "pgs-wrong-key", Addr: wrongKey(t), Probe: "pg-ssl"}, false, "pg-ssl: no answer"},
		{verify.Check{Kind: verify.CheckTunnel, Name: "n2p", Addr: echo, Probe: "send-expect", Send: "PING\n", Expect: "PONG PING"}, true, ""},
		{verify.Check{Kind: verify.CheckTunnel, Name: "n2p-bad", Addr: echo, Probe: "send-expect", Send: "PING\n", Expect: "HELLO"}, false, `want "HELLO"`},
		{verify.Check{Kind: verify.CheckTunnel, Name: "ssh", Addr: banner, Probe: "banner", Expect: "SSH-2.0"}, true, ""},
		{verify.Check{Kind: verify.CheckTunnel, Name: "silent", Addr: serve(t, func(c net.Conn) { time.Sleep(time.Second) }), Probe: "banner", Expect: "SSH", Timeout: short}, false, "timeout"},
		{verify.Check{Kind: verify.CheckTCP, Name: "tcp", Addr: echo}, true, ""},
		{verify.Check{Kind: verify.CheckTCP, Name: "tcp-closed", Addr: closedAddr(t)}, false, "refused"},
		{verify.Check{Kind: verify.CheckHTTP, Name: "http", URL: web.URL + "/"}, true, ""},
		{verify.Check{Kind: verify.CheckHTTP, Name: "http-404", URL: web.URL + "/missing"}, false, "status 404, want 2xx"},
		{verify.Check{Kind: verify.CheckHTTP, Name: "http-want-404", URL: web.URL + "/missing", Status: 404}, true, ""},
		{verify.Check{Kind: verify.CheckExec, Name: "true", Command: []string{"true"}}, true, ""},
		{verify.Check{Kind: verify.CheckExec, Name: "false", Command: []string{"sh", "-c", "echo nope; exit 3"}}, false, "exit status 3: nope"},
		{verify.Check{Kind: verify.CheckJail, Name: "pg_j", Jail: "pg_j"}, true, ""},
		{verify.Check{Kind: verify.CheckJail, Name: "web_j", Jail: "web_j"}, false, "jail web_j not running"},
		{verify.Check{Kind: verify.CheckPF, Name: "pf"}, true, ""},
		{verify.Check{Kind: verify.CheckGit, Name: "git"}, false, "connection refused"},
	} {
		t.Run(tc.c.Name, func(t *testing.T) {
			t.Parallel()
			r := apply.CheckOne(eng, tc.c)
			if r.OK != tc.ok || !strings.Contains(r.Error, tc.want) {
				t.Errorf("%+v, want ok=%v error containing %q", r, tc.ok, tc.want)
			}
			if r.Attempts < 1 || r.Latency <= 0 || r.Name != tc.c.Name || r.Kind != tc.c.Kind {
				t.Errorf("result %+v", r)
			}
			if !tc.ok && r.Attempts < 2 {
				t.Errorf("a failing check is retried: %d attempts", r.Attempts)
			}
		})
	}
}

// A service that comes up after a few attempts passes on a retry. The
// probe counts its calls, so no timing decides the outcome.
func TestHealthRetriesUntilUp(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	eng, err := apply.New(apply.Config{Root: e.root, StateDir: e.state, Driver: e.drv, HealthTimeout: time.Minute, Logger: discard,
		GitCheck: func(context.Context) error {
			if calls.Add(1) < 3 {
				return errors.New("connection refused")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	r := apply.CheckOne(eng, verify.Check{Kind: verify.CheckGit, Name: "late"})
	if !r.OK || r.Attempts != 3 || r.Error != "" {
		t.Errorf("%+v, want OK on the third attempt", r)
	}
}

// The attempt the overall deadline kills says only how it died ("signal:
// killed" for an exec check); the result keeps the error of the attempt
// before it, which says why the check fails.
func TestHealthKeepsInformativeError(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	eng, err := apply.New(apply.Config{Root: e.root, StateDir: e.state, Driver: e.drv, HealthTimeout: time.Second, Logger: discard,
		GitCheck: func(ctx context.Context) error {
			if calls.Add(1) == 1 {
				return errors.New("ls-remote: authentication failed")
			}
			<-ctx.Done() // hangs until the overall deadline kills it
			return errors.New("signal: killed")
		}})
	if err != nil {
		t.Fatal(err)
	}
	r := apply.CheckOne(eng, verify.Check{Kind: verify.CheckGit, Name: "git"})
	if r.OK || r.Attempts != 2 || r.Error != "ls-remote: authentication failed" {
		t.Errorf("%+v, want the first attempt's error after 2 attempts", r)
	}

	// A check whose only attempt was killed says that it had no answer.
	calls.Store(1)
	r = apply.CheckOne(eng, verify.Check{Kind: verify.CheckGit, Name: "git"})
	if r.OK || r.Attempts != 1 || !strings.Contains(r.Error, "no answer within the health timeout: signal: killed") {
		t.Errorf("%+v, want the deadline named", r)
	}
}
