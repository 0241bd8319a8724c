package statusref

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
)

func server(t *testing.T) (*gittest.Server, string) {
	t.Helper()
	srv, err := gittest.Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if _, err := srv.Init("infra.git"); err != nil {
		t.Fatal(err)
	}
	return srv, srv.URL("infra.git")
}

func TestPushRead(t *testing.T) {
	srv, url := server(t)
	r := Remote{URL: url, Timeout: 30 * time.Second}
	ctx := context.Background()
	got, err := r.Read(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty server: %v %v", got, err)
	}
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for i, body := range []string{`{"first":1}`, `{"second":2}`} {
		if err := r.Push(ctx, "serverA", []byte(body), at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Push(ctx, "serverB", []byte(`{"b":1}`), at); err != nil {
		t.Fatal(err)
	}
	got, err = r.Read(ctx, []string{"serverA", "serverC"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["serverA"].Envelope) != `{"second":2}` || got["serverA"].Err != nil {
		t.Fatalf("read serverA, serverC: %+v", got)
	}
	// The bundles branch is never touched, and a ref keeps no history.
	out, err := exec.Command("git", "-C", srv.Root()+"/infra.git", "log", "--format=%s", string(Ref("serverA"))).Output()
	if err != nil || strings.TrimSpace(string(out)) != "status of serverA" {
		t.Fatalf("history of serverA's ref: %q %v", out, err)
	}
	if err := r.Push(ctx, "../x", []byte("{}"), at); err == nil {
		t.Fatal("pushed a ref for a bad host name")
	}
}

// TestConcurrentPushesLoseNothing: many agents pushing at once, each to
// its own ref, never lose a report: afterwards every host's ref has its
// last report.
func TestConcurrentPushesLoseNothing(t *testing.T) {
	_, url := server(t)
	r := Remote{URL: url, Timeout: 60 * time.Second}
	const hosts, rounds = 6, 3
	var wg sync.WaitGroup
	errs := make(chan error, hosts*rounds)
	start := make(chan struct{})
	for h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range rounds {
				body := fmt.Sprintf(`{"host":%d,"round":%d}`, h, i)
				errs <- r.Push(context.Background(), fmt.Sprintf("host%d", h), []byte(body), time.Now())
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.Read(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != hosts {
		t.Fatalf("%d refs, want %d", len(got), hosts)
	}
	for h := range hosts {
		want := fmt.Sprintf(`{"host":%d,"round":%d}`, h, rounds-1)
		if f := got[fmt.Sprintf("host%d", h)]; string(f.Envelope) != want {
			t.Errorf("host%d: %q, want %q", h, f.Envelope, want)
		}
	}
}

func TestReadRefusesOddRefs(t *testing.T) {
	srv, url := server(t)
	dir := srv.Root() + "/infra.git"
	// A status ref whose report.json is a symlink, and one without it.
	c, err := gittest.CommitEntries(dir, "odd", []gittest.Entry{{Path: FileName, Data: []byte("/etc/passwd"), Mode: "120000"}})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := gittest.Commit(dir, "odd2", map[string][]byte{"other": []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	for ref, commit := range map[string]string{"serverA": c, "serverB": c2} {
		if out, err := exec.Command("git", "-C", dir, "update-ref", string(Ref(ref)), commit).CombinedOutput(); err != nil {
			t.Fatalf("%s %v", out, err)
		}
	}
	got, err := Remote{URL: url}.Read(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := got["serverA"]; f.Err == nil || !strings.Contains(f.Err.Error(), "not a regular file") {
		t.Errorf("symlink report: %+v", f)
	}
	if f := got["serverB"]; f.Err == nil || !strings.Contains(f.Err.Error(), FileName) {
		t.Errorf("no report file: %+v", f)
	}
}

func TestServerDown(t *testing.T) {
	srv, url := server(t)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	r := Remote{URL: url, Timeout: 10 * time.Second}
	if _, err := r.Read(context.Background(), nil); err == nil {
		t.Fatal("read from a stopped server succeeded")
	}
	if err := r.Push(context.Background(), "serverA", []byte("{}"), time.Now()); err == nil {
		t.Fatal("push to a stopped server succeeded")
	}
}

// TestReadWhileAgentPushes: an agent pushes its report between the ref
// advertisement and the pack request of the reader's fetch. The server
// refuses the replaced tip ("not our ref": a status ref keeps no history,
// so the old tip is unreachable); the reader lists again and returns the
// newest report instead of failing (seen in the demo's bundler status).
func TestReadWhileAgentPushes(t *testing.T) {
	srv, url := server(t)
	r := Remote{URL: url, Timeout: 30 * time.Second}
	ctx := context.Background()
	at := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	if err := r.Push(ctx, "serverA", []byte(`{"n":1}`), at); err != nil {
		t.Fatal(err)
	}
	pushed := make(chan error, 1)
	srv.BeforeNextUploadPack(func() { pushed <- r.Push(ctx, "serverA", []byte(`{"n":2}`), at.Add(time.Second)) })
	got, err := r.Read(ctx, nil)
	if err != nil {
		t.Fatalf("read while the ref moved: %v", err)
	}
	select {
	case err := <-pushed:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("the race was not staged: no upload-pack request came")
	}
	if f := got["serverA"]; f.Err != nil || string(f.Envelope) != `{"n":2}` {
		t.Fatalf("serverA: %+v (%s)", f, f.Envelope)
	}
}
