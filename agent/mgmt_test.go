package agent

import (
	"context"
	"testing"
)

func TestSourceHost(t *testing.T) {
	for _, c := range []struct{ url, host string }{
		{"https://127.0.0.1:3000/infra.git", "127.0.0.1"},
		{"https://user:tok@[::1]:443/infra.git", "::1"},
		{"ssh://git@127.0.0.2/infra.git", "127.0.0.2"},
		{"git@127.0.0.3:org/infra.git", "127.0.0.3"},
		{"/var/db/infra.git", ""},
		{"file:///var/db/infra.git", ""},
	} {
		h, err := sourceHost(c.url)
		if (err != nil) != (c.host == "") || h != c.host {
			t.Errorf("%s: %q %v, want %q", c.url, h, err, c.host)
		}
	}
	s := &Source{cfg: SourceConfig{URL: "http://localhost:1/x.git"}}
	a, err := s.Addr(context.Background())
	if err != nil || !a.IsLoopback() {
		t.Fatalf("localhost: %v %v", a, err)
	}
}
