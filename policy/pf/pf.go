// Package pf parses FreeBSD's pf.conf as pfctl does and reports errors in
// pfctl's own form, FILE:LINE: message.
package pf

import (
	"fmt"
	"os"
)

// CONTRACT (shared with the sim driver and the bundler): names and
// signatures here are used elsewhere. Bodies are stubs until the parser lands.

// Options control where included files and table files are read from.
type Options struct {
	// ReadFile reads include files and `table <t> file "..."` files.
	// nil means os.ReadFile. The sim driver maps paths into its sandbox.
	ReadFile func(name string) ([]byte, error)
}

// Error is one problem at a file and line.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// ErrorList is every error of a parse, in order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := ""
	for i, e := range l {
		if i > 0 {
			s += "\n"
		}
		s += e.Error()
	}
	return s
}

// Ruleset is a parsed pf.conf.
type Ruleset struct{}

// Parse parses src as the pf.conf named filename. A non-nil error is an ErrorList.
func Parse(filename string, src []byte, opts Options) (*Ruleset, error) {
	return &Ruleset{}, nil
}

// CheckFile parses the file at path, like pfctl -nf path.
func CheckFile(path string, opts Options) error {
	rf := opts.ReadFile
	if rf == nil {
		rf = os.ReadFile
	}
	src, err := rf(path)
	if err != nil {
		return err
	}
	_, err = Parse(path, src, opts)
	return err
}
