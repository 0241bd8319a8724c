package verify

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestDecompressPooledLimits: a decoder from the pool keeps no limit of
// its previous use. A generous call first, then the same archive under a
// tight limit must still be refused, and a generous call after it passes.
func TestDecompressPooledLimits(t *testing.T) {
	plain := bytes.Repeat([]byte("rigger "), 64<<10) // 448 KiB
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	packed := enc.EncodeAll(plain, nil)
	lim := DefaultLimits()
	for i, c := range []struct {
		limit int64
		ok    bool
	}{{1 << 20, true}, {1 << 10, false}, {1 << 20, true}, {int64(len(plain)) - 1, false}} {
		out, err := decompress(nil, packed, c.limit, lim)
		if c.ok {
			if err != nil || !bytes.Equal(out, plain) {
				t.Fatalf("call %d (limit %d): %v", i, c.limit, err)
			}
			continue
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("call %d (limit %d): got %v, want ErrTooLarge", i, c.limit, err)
		}
	}
	// A window over the limit is refused whatever the pooled decoder saw.
	lim.MaxWindow = 1 << 10
	big, _ := zstd.NewWriter(nil, zstd.WithWindowSize(1<<20), zstd.WithSingleSegment(false))
	if _, err := decompress(nil, big.EncodeAll(plain, nil), 1<<20, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("window over the limit: got %v, want ErrTooLarge", err)
	}
}

// TestModeStrictOctal: every byte of a mode must be an octal digit.
func TestModeStrictOctal(t *testing.T) {
	for _, s := range []string{"0644x", "", "0o644", "+644", "064 ", "077777", "0999"} {
		var m Mode
		if err := m.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("mode %q accepted as %04o", s, uint32(m))
		}
	}
	for s, want := range map[string]Mode{"0644": 0o644, "4755": 0o4755, "0": 0, "00600": 0o600} {
		var m Mode
		if err := m.UnmarshalText([]byte(s)); err != nil || m != want {
			t.Errorf("mode %q: got %04o, %v; want %04o", s, uint32(m), err, uint32(want))
		}
	}
}
