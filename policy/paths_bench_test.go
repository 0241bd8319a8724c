package policy

import "testing"

// uirigPaths are the target paths of a host of the generated uirig fleet
// (the bundler's fleet benchmark), whose agents have a root of their own
// (uirigRoots): each is checked when rendered and again before the bundle
// is signed.
var uirigPaths = []string{
	"/etc/cron.d/reallow-ratelimited-ips", "/etc/jail.conf", "/etc/jail.conf.d/nginx_j.conf",
	"/etc/jail.conf.d/node_j.conf", "/etc/jail.conf.d/pg_j.conf", "/etc/ntp.conf", "/etc/pf.conf",
	"/etc/pf/blocklist.table", "/etc/pf/email.table", "/etc/pf/inode_j.table", "/etc/pf/ipg_j.table",
	"/etc/pf/martians.table", "/etc/pf/nodepeer.table", "/etc/pf/payments.table", "/etc/pf/pgpeer.table",
	"/etc/pf/xpeers.table", "/etc/rc.conf", "/etc/resolv.conf", "/etc/sysctl.conf",
	"/jails/nginx_j/etc/rc.conf", "/jails/nginx_j/usr/local/etc/nginx/nginx.conf",
	"/jails/node_j/etc/rc.conf", "/jails/node_j/etc/resolv.conf", "/jails/node_j/usr/local/etc/rc.d/node",
	"/jails/pg_j/etc/rc.conf",
	"/jails/pg_j/usr/local/etc/postgresql/pg_hba.conf", "/jails/pg_j/usr/local/etc/postgresql/postgresql.conf",
}

var uirigRoots = []string{"/jails/node_j/usr/local/etc/rc.d"}

// BenchmarkPathsCheck checks the 27 paths of a uirig host once, under its
// agents' roots (ns/op is per host, not per path).
func BenchmarkPathsCheck(b *testing.B) {
	p, err := WithRoots(uirigRoots)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, t := range uirigPaths {
			if err := p.Check(t); err != nil {
				b.Fatal(err)
			}
		}
	}
}
