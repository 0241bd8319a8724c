package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/verify/statusref"
)

// TestStatusAndWaitCommands: exit codes and the JSON shape of bundler
// status, and bundler wait timing out with the hosts it waited for.
func TestStatusAndWaitCommands(t *testing.T) {
	srv, err := gittest.Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir, err := srv.Init("infra.git")
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL("infra.git")
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := run("status", "--url", url); code != 0 || !strings.Contains(out, "HOST") {
		t.Fatalf("empty fleet: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := run("status"); code != 2 || !strings.Contains(errs, "--url is required") {
		t.Fatalf("no --url: exit %d %s", code, errs)
	}
	// A status ref of a host with no published bundle: not ok.
	if err := (statusref.Remote{URL: url}).Push(context.Background(), "ghost", []byte(`{}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := gittest.Commit(dir, "bundles", map[string][]byte{"README": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run("status", "--url", url, "--json")
	if code != 1 {
		t.Fatalf("status with a ghost host: exit %d\n%s%s", code, out, errs)
	}
	var f struct {
		OK    bool `json:"ok"`
		Hosts []struct {
			Host     string   `json:"host"`
			Problems []string `json:"problems"`
			OK       bool     `json:"ok"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if f.OK || len(f.Hosts) != 1 || f.Hosts[0].Host != "ghost" || f.Hosts[0].Problems[0] != "no bundle published" {
		t.Fatalf("json: %+v", f)
	}
	// wait: no host published anything, so nothing is ever reached.
	code, _, errs = run("wait", "--url", url, "--commit", "c1", "--timeout", "3s", "--every", "100ms")
	if code != 1 || !strings.Contains(errs, "wait: c1 not reached after 3s") {
		t.Fatalf("wait: exit %d %s", code, errs)
	}
}
