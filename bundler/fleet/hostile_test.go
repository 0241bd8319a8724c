package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
)

// TestHostileServerBudget: bundler status and wait read from a git server
// as the agent does, so an endless ref advertisement and an inflate bomb
// are refused by the same byte budget (SECURITY.md "Endless data"), long
// before the deadline and without reading them whole. The test matches
// the message rather than gitauth.ErrBudget on purpose: importing gitauth
// here would install its budgeted transport even if fleet stopped linking it.
func TestHostileServerBudget(t *testing.T) {
	for _, mode := range []string{gittest.EndlessRefs, gittest.InflateBomb} {
		t.Run(mode, func(t *testing.T) {
			h, err := gittest.ServeHostile(mode, "bundles")
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err = Read(ctx, Options{URL: h.URL("infra.git"), Timeout: time.Minute})
			if err == nil || !strings.Contains(err.Error(), "over budget") {
				t.Fatalf("Read from a %s server: %v, want a git response over budget", mode, err)
			}
			if ctx.Err() != nil {
				t.Fatalf("refused only at the deadline: %v", err)
			}
		})
	}
}
