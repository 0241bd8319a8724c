package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func sha(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hostPath maps an absolute host path into the directory root.
func hostPath(root, p string) string {
	return filepath.Join(root, filepath.FromSlash(filepath.Clean("/"+p)))
}
