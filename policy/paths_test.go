package policy

import "testing"

func TestPathsCheck(t *testing.T) {
	p := DefaultPaths()
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/etc/rc.conf", true},
		{"/etc/cron.d/ratelimit", true},
		{"/usr/local/etc/nginx/nginx.conf", true},
		{"/jails/pg_j/etc/rc.conf", true},
		{"/jails/nginx_j/usr/local/etc/nginx/nginx.conf", true},
		{"/etc", false},
		{"/jails/pg_j/etc", false},
		{"/jails/pg_j/root/.ssh/authorized_keys", false},
		{"/root/.ssh/authorized_keys", false},
		{"/etc/../root/x", false},
		{"etc/rc.conf", false},
		{"/jails/../etc/x", false},
		{"/jails//etc/x", false},
		{"/usr/local/bin/evil", false},
	} {
		err := p.Check(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}
