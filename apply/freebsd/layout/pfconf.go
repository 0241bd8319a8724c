package layout

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strings"
)

// Statement is one logical pf.conf statement: continuation lines joined,
// comments dropped, newlines inside { } kept in one statement.
type Statement struct {
	Line int // line where it starts
	Text string
}

// Statements splits pf.conf source into statements. It is a small lexer
// for the facts the drivers need (tables, includes), not a pf parser:
// policy/pf owns the grammar.
func Statements(src []byte) []Statement {
	var out []Statement
	var b strings.Builder
	line, start, depth := 1, 1, 0
	inQuote := false
	flush := func() {
		if t := strings.TrimSpace(b.String()); t != "" {
			out = append(out, Statement{Line: start, Text: t})
		}
		b.Reset()
	}
	s := string(src)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote:
			if c == '"' {
				inQuote = false
			}
			if c == '\n' { // pfctl rejects this; end the string here
				inQuote = false
				line++
				if depth == 0 {
					flush()
					start = line
					continue
				}
			}
			b.WriteByte(c)
		case c == '"':
			inQuote = true
			b.WriteByte(c)
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i-- // let the newline be handled
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
			line++
			b.WriteByte(' ')
		case c == '{':
			depth++
			b.WriteByte(c)
		case c == '}':
			if depth > 0 {
				depth--
			}
			b.WriteByte(c)
		case c == '\n':
			line++
			if depth > 0 {
				b.WriteByte(' ')
				continue
			}
			flush()
			start = line
		default:
			if b.Len() == 0 && (c == ' ' || c == '\t') {
				start = line
			}
			b.WriteByte(c)
		}
	}
	flush()
	return out
}

// token is a word of a statement; quoted strings lose their quotes.
type token struct {
	text   string
	quoted bool
}

func tokens(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == ',':
			i++
		case c == '{' || c == '}':
			out = append(out, token{text: string(c)})
			i++
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				out = append(out, token{text: s[i+1:], quoted: true})
				return out
			}
			out = append(out, token{text: s[i+1 : i+1+j], quoted: true})
			i += j + 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r,{}\"", rune(s[j])) {
				j++
			}
			out = append(out, token{text: s[i:j]})
			i = j
		}
	}
	return out
}

// TableFiles returns the files named by `table <name> ... file "PATH"` in
// pf.conf source, in order (a table may list several). ok is false when
// the source declares no table called name.
func TableFiles(src []byte, name string) (files []string, ok bool) {
	for _, st := range Statements(src) {
		tk := tokens(st.Text)
		if len(tk) < 2 || tk[0].text != "table" || tk[1].text != "<"+name+">" {
			continue
		}
		ok = true
		for i := 2; i+1 < len(tk); i++ {
			if tk[i].text == "file" && !tk[i].quoted && tk[i+1].quoted {
				files = append(files, tk[i+1].text)
				i++
			}
		}
	}
	return files, ok
}

// Includes returns the paths of `include "PATH"` statements, in order.
func Includes(src []byte) []string {
	var out []string
	for _, st := range Statements(src) {
		tk := tokens(st.Text)
		if len(tk) == 2 && tk[0].text == "include" && tk[1].quoted {
			out = append(out, tk[1].text)
		}
	}
	return out
}

// pathRef matches the two places pf.conf names another file: a table's
// `file "PATH"` and `include "PATH"`.
var pathRef = regexp.MustCompile(`\b(file|include)(\s+)"([^"\n]*)"`)

// RewritePaths returns src with the path of every `file "PATH"` and
// `include "PATH"` replaced by repl(kind, PATH) when it returns ok. No
// newline is added or removed, so pfctl's line numbers stay those of src.
func RewritePaths(src []byte, repl func(kind, path string) (string, bool)) []byte {
	return pathRef.ReplaceAllFunc(src, func(m []byte) []byte {
		sub := pathRef.FindSubmatch(m)
		kind, sp, p := string(sub[1]), string(sub[2]), string(sub[3])
		np, ok := repl(kind, p)
		if !ok || strings.ContainsAny(np, "\"\n") {
			return m
		}
		return []byte(kind + sp + `"` + np + `"`)
	})
}

// ParseTableFile checks a pf table file (pfctl -T ... -f FILE, or
// `table <t> file`): addresses separated by white space, `#` and `;`
// comments, `!` negation, prefixes, host and interface names. It returns
// the entries or the first bad one as a *FileError naming name and line.
func ParseTableFile(name string, src []byte) ([]string, error) {
	var out []string
	for i, ln := range strings.Split(string(src), "\n") {
		if j := strings.IndexAny(ln, "#;"); j >= 0 {
			ln = ln[:j]
		}
		for _, f := range strings.Fields(ln) {
			a := strings.TrimPrefix(f, "!")
			if err := checkTableEntry(a); err != nil {
				return nil, &FileError{File: name, Line: i + 1, Msg: fmt.Sprintf("%q: %v", f, err)}
			}
			out = append(out, f)
		}
	}
	return out, nil
}

var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?(:[0-9]+|:network|:broadcast|:peer)?$`)

func checkTableEntry(a string) error {
	if a == "" {
		return fmt.Errorf("empty address")
	}
	if strings.ContainsRune(a, '/') {
		if _, err := netip.ParsePrefix(a); err == nil {
			return nil
		}
		// host/len with a name is legal too (pfctl resolves it).
		h, l, _ := strings.Cut(a, "/")
		if _, err := netip.ParseAddr(h); err == nil || !hostname.MatchString(h) || !isDigits(l) {
			return fmt.Errorf("bad prefix")
		}
		a = h
	}
	if _, err := netip.ParseAddr(a); err == nil {
		return nil
	}
	if strings.Trim(a, "0123456789.") == "" || strings.Count(a, ":") > 1 {
		return fmt.Errorf("bad address")
	}
	if !hostname.MatchString(a) {
		return fmt.Errorf("bad host name")
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	return strings.Trim(s, "0123456789") == ""
}

// TableFilesIn returns the files declared for table in /etc/pf.conf and
// its includes (absolute paths, depth-limited), read through readFile.
func TableFilesIn(readFile func(string) ([]byte, error), table string) ([]string, error) {
	t, err := TableIn(readFile, PFConf, table)
	if err != nil {
		return nil, err
	}
	return t.Files, nil
}

// TableIn returns the declaration of table in the pf.conf at conf and the
// files it includes (absolute paths, depth-limited), read through
// readFile. It is an error when no declaration exists or none names a file.
func TableIn(readFile func(string) ([]byte, error), conf, table string) (Table, error) {
	var decl Table
	found := false
	var walk func(p string, depth int) error
	walk = func(p string, depth int) error {
		src, err := readFile(p)
		if err != nil {
			return err
		}
		for _, t := range Tables(src) {
			if t.Name != table {
				continue
			}
			if !found {
				decl = t
				decl.File = p
				decl.Files = nil
			}
			found = true
			decl.Files = append(decl.Files, t.Files...)
			decl.Const = decl.Const || t.Const
			decl.Persist = decl.Persist || t.Persist
			decl.Inline = decl.Inline || t.Inline
		}
		for _, inc := range Includes(src) {
			if path.IsAbs(inc) && depth < 8 {
				if err := walk(path.Clean(inc), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(conf, 0); err != nil {
		return Table{}, fmt.Errorf("table <%s>: %w", table, err)
	}
	if !found {
		return Table{}, fmt.Errorf("table <%s>: not declared in %s", table, conf)
	}
	if len(decl.Files) == 0 {
		return Table{}, fmt.Errorf("table <%s>: declared without a file in %s", table, conf)
	}
	return decl, nil
}

// Table is one `table <name>` declaration.
type Table struct {
	Name  string
	File  string // set by TableIn: the file that declares it
	Line  int
	Files []string // file "PATH" clauses, in order
	// Const, Persist: the flags of the same names. Inline: the declaration
	// lists addresses between { } (sbin/pfctl/parse.y tabledef).
	Const, Persist, Inline bool
}

// Tables lists the table declarations of pf.conf source, in order.
func Tables(src []byte) []Table {
	var out []Table
	for _, st := range Statements(src) {
		tk := tokens(st.Text)
		if len(tk) < 2 || tk[0].text != "table" || !strings.HasPrefix(tk[1].text, "<") || !strings.HasSuffix(tk[1].text, ">") {
			continue
		}
		t := Table{Name: strings.Trim(tk[1].text, "<>"), Line: st.Line}
		for i := 2; i < len(tk); i++ {
			switch {
			case tk[i].quoted:
			case tk[i].text == "file" && i+1 < len(tk) && tk[i+1].quoted:
				t.Files = append(t.Files, tk[i+1].text)
				i++
			case tk[i].text == "const":
				t.Const = true
			case tk[i].text == "persist":
				t.Persist = true
			case tk[i].text == "{" && i+1 < len(tk) && tk[i+1].text != "}":
				t.Inline = true
			}
		}
		out = append(out, t)
	}
	return out
}
