package freebsd

import (
	"context"
	"strings"
)

// BootID is kern.boottime as sysctl prints it; it changes with every
// boot, so the engine can tell that a reboot it asked for happened.
func (d *Driver) BootID(ctx context.Context) (string, error) {
	r, err := d.exec(ctx, "sysctl", "-n", "kern.boottime")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(r.Stdout)), nil
}
