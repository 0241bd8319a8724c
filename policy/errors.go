package policy

import (
	"errors"
	"fmt"
)

// FileError is one problem in a file, at a line when known (0: the whole
// file). The config parsers (pf, jailconf, rcconf) and the host drivers'
// pre-checks all report this type, so callers name the file one way.
type FileError struct {
	File string
	Line int
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// ErrorList is every error of a parse, in file order.
type ErrorList []*FileError

func (l ErrorList) Error() string {
	errs := l.Unwrap()
	return errors.Join(errs...).Error()
}

// Unwrap lets errors.As find the first *FileError of a list.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}
