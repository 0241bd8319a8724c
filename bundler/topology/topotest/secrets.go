package topotest

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteSecrets creates the secret files a render relies on (spiped keys,
// WireGuard keys: HostRender.Secrets) under root, the way an operator
// provisions a host. The content depends only on the file's base name, so
// both ends of a tunnel (/jails/pg_j/etc/spiped.key on serverA and on
// serverB) get the same key, as spiped needs. Test use only: the keys are
// predictable.
func WriteSecrets(root string, secrets []string) error {
	for _, s := range secrets {
		if !strings.HasPrefix(s, "/") {
			return fmt.Errorf("secret %q: not absolute", s)
		}
		dst := filepath.Join(root, filepath.FromSlash(s))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("secret %s: %w", s, err)
		}
		sum := sha256.Sum256([]byte("rigger-test-secret:" + filepath.Base(s)))
		if err := os.WriteFile(dst, sum[:], 0o600); err != nil {
			return fmt.Errorf("secret %s: %w", s, err)
		}
	}
	return nil
}
