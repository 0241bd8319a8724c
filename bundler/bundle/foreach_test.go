package bundle

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
)

// TestForEach: every index runs once, errors come back by index.
func TestForEach(t *testing.T) {
	var ran [100]atomic.Int32
	boom := errors.New("boom")
	errs := ForEach(len(ran), func(i int) error {
		ran[i].Add(1)
		if i%7 == 0 {
			return boom
		}
		return nil
	})
	for i := range ran {
		if n := ran[i].Load(); n != 1 {
			t.Errorf("index %d ran %d times", i, n)
		}
		if (i%7 == 0) != errors.Is(errs[i], boom) {
			t.Errorf("index %d: error %v", i, errs[i])
		}
	}
	if len(ForEach(0, func(int) error { t.Error("ran with n = 0"); return nil })) != 0 {
		t.Error("errors for n = 0")
	}
}

// TestArchiveSameBytesInParallel: hosts built at the same time (ForEach,
// an encoder per core) get the bytes a lone build gets.
func TestArchiveSameBytesInParallel(t *testing.T) {
	r := render("serverA")
	want, err := Build(r, Meta{Serial: 1, Created: now})
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]byte, 32)
	for i, err := range ForEach(len(got), func(i int) error {
		b, err := Build(render("serverA"), Meta{Serial: 1, Created: now})
		if err == nil {
			got[i] = b.Archive
		}
		return err
	}) {
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[i], want.Archive) {
			t.Fatalf("build %d: archive differs from the lone build", i)
		}
	}
}
