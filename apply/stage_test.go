package apply_test

import (
	"errors"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
)

// TestStagingFailureIsPrecheck (issue 14, item 7): a bundle that cannot
// even be staged (a path sent as a file and as a directory) fails like a
// pre-check: *PrecheckError, nothing installed, so the agent quarantines
// it instead of retrying it every poll.
func TestStagingFailureIsPrecheck(t *testing.T) {
	e := newEnv(t)
	apply1(t, e)
	before := snapshot(t, e.root)
	files := append(uirig("v2"), tf{"/etc/rc.conf/evil", "none", "x=1\n", 0})
	_, err := e.eng.Apply(ctx, mkBundle(2, files))
	var pre *apply.PrecheckError
	if !errors.As(err, &pre) || pre.Path != "/etc/rc.conf/evil" && pre.Path != "/etc/rc.conf" {
		t.Fatalf("err %v, want *PrecheckError naming the file", err)
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host changed:\n%s", d)
	}
	if calls := e.drv.Calls(); len(calls) != 0 {
		t.Errorf("driver calls %v", calls)
	}
	assertClean(t, e.state)
}
