package jailconf

import (
	"fmt"
	"strings"
)

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tString // quoted or unquoted value text, in parts
	tLBrace
	tRBrace
	tSemi
	tEq
	tPlusEq
	tComma
)

func (k tokKind) String() string {
	switch k {
	case tEOF:
		return "end of file"
	case tLBrace:
		return "'{'"
	case tRBrace:
		return "'}'"
	case tSemi:
		return "';'"
	case tEq:
		return "'='"
	case tPlusEq:
		return "'+='"
	case tComma:
		return "','"
	}
	return "word"
}

type token struct {
	kind   tokKind
	line   int
	text   string  // raw text of a word (unquoted)
	parts  []piece // value pieces (words and strings)
	quoted bool
	adj    bool // no blank between this token and the previous one
}

type lexer struct {
	src  []byte
	pos  int
	line int
	file string
	errs *ErrorList
}

func (l *lexer) errorf(line int, format string, a ...any) {
	*l.errs = append(*l.errs, &Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, a...)})
}

func isWordByte(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '{', '}', ';', '=', ',', '"', '\'', '#':
		return false
	}
	return c > ' ' && c != 0x7f
}

// next returns the next token, skipping blanks and comments.
func (l *lexer) next() token {
	adj := true
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\n':
			l.line++
			l.pos++
			adj = false
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
			adj = false
		case c == '\\' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '\n':
			l.pos += 2
			l.line++
			adj = false
		case c == '#' || (c == '/' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '/'):
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
			adj = false
		case c == '/' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '*':
			start := l.line
			end := strings.Index(string(l.src[l.pos+2:]), "*/")
			if end < 0 {
				l.errorf(start, "unterminated comment")
				l.line += strings.Count(string(l.src[l.pos:]), "\n")
				l.pos = len(l.src)
				return token{kind: tEOF, line: l.line}
			}
			body := l.src[l.pos : l.pos+2+end+2]
			l.line += strings.Count(string(body), "\n")
			l.pos += len(body)
			adj = false
		default:
			return l.scan(adj)
		}
	}
	return token{kind: tEOF, line: l.line}
}

func (l *lexer) scan(adj bool) token {
	c := l.src[l.pos]
	t := token{line: l.line, adj: adj}
	switch c {
	case '{':
		l.pos++
		t.kind = tLBrace
		return t
	case '}':
		l.pos++
		t.kind = tRBrace
		return t
	case ';':
		l.pos++
		t.kind = tSemi
		return t
	case ',':
		l.pos++
		t.kind = tComma
		return t
	case '=':
		l.pos++
		t.kind = tEq
		return t
	case '+':
		if l.pos+1 < len(l.src) && l.src[l.pos+1] == '=' {
			l.pos += 2
			t.kind = tPlusEq
			return t
		}
	case '"', '\'':
		t.kind = tString
		t.quoted = true
		t.parts = l.quoted(c)
		return t
	}
	start := l.pos
	for l.pos < len(l.src) && isWordByte(l.src[l.pos]) {
		if l.src[l.pos] == '$' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '{' {
			if end := strings.IndexAny(string(l.src[l.pos:]), "}\n"); end > 0 && l.src[l.pos+end] == '}' {
				l.pos += end + 1
				continue
			}
		}
		if l.src[l.pos] == '+' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '=' {
			break
		}
		if l.src[l.pos] == '/' && l.pos+1 < len(l.src) && (l.src[l.pos+1] == '/' || l.src[l.pos+1] == '*') {
			break
		}
		l.pos++
	}
	if l.pos == start { // a lone byte no token can hold
		l.errorf(l.line, "unexpected character %q", c)
		l.pos++
		return l.next()
	}
	t.kind = tWord
	t.text = string(l.src[start:l.pos])
	t.parts = l.expandable(t.text, t.line)
	return t
}

// quoted reads a "..." (with variables) or '...' (literal) string.
func (l *lexer) quoted(q byte) []piece {
	start := l.line
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		if c == q {
			l.pos++
			if q == '\'' {
				return []piece{{text: b.String()}}
			}
			return l.expandable(b.String(), start)
		}
		if c == '\n' {
			l.line++
		}
		if c == '\\' && l.pos+1 < len(l.src) {
			n := l.src[l.pos+1]
			l.pos += 2
			switch n {
			case '\n':
				l.line++
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case '$':
				if q == '"' {
					b.WriteString("\\$") // kept escaped for expandable
				} else {
					b.WriteByte('$')
				}
			default:
				b.WriteByte(n)
			}
			continue
		}
		b.WriteByte(c)
		l.pos++
	}
	l.errorf(start, "unterminated string")
	return []piece{{text: b.String()}}
}

// expandable splits s into literal and $var / ${var} pieces.
func (l *lexer) expandable(s string, line int) []piece {
	var ps []piece
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == '$' {
			lit.WriteByte('$')
			i++
			continue
		}
		if c != '$' || i+1 >= len(s) {
			lit.WriteByte(c)
			continue
		}
		var name string
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				l.errorf(line, "unterminated variable")
				lit.WriteString(s[i:])
				break
			}
			name = s[i+2 : i+2+end]
			i += 2 + end
		} else {
			j := i + 1
			for j < len(s) && (isVarByte(s[j]) && s[j] != '.') {
				j++
			}
			if j == i+1 {
				lit.WriteByte(c)
				continue
			}
			name = s[i+1 : j]
			i = j - 1
		}
		if lit.Len() > 0 {
			ps = append(ps, piece{text: lit.String()})
			lit.Reset()
		}
		ps = append(ps, piece{text: name, isVar: true})
	}
	if lit.Len() > 0 || len(ps) == 0 {
		ps = append(ps, piece{text: lit.String()})
	}
	return ps
}

func isVarByte(c byte) bool {
	return c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isParamName(s string) bool {
	s = strings.TrimPrefix(s, "$")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isVarByte(c) && c != '-' {
			return false
		}
	}
	return true
}

func isJailName(s string) bool {
	if s == "*" {
		return true
	}
	if s == "" || strings.HasPrefix(s, "$") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isVarByte(c) && c != '-' && c != '*' {
			return false
		}
	}
	return !strings.Contains(strings.TrimSuffix(s, ".*"), "*")
}

type parser struct {
	opts  Options
	cfg   *Config
	errs  ErrorList
	seq   int
	names map[string]string // jail name -> FILE:LINE of its block
}

// file parses one file (the main one or an include) into p.cfg.
func (p *parser) file(name string, src []byte, depth int) {
	fp := &fileParser{p: p, lx: &lexer{src: src, line: 1, file: name, errs: &p.errs}, file: name, depth: depth}
	fp.advance()
	fp.stmts(nil)
}

type fileParser struct {
	p     *parser
	lx    *lexer
	file  string
	tok   token
	depth int
	last  int // line of the last value token read
}

func (f *fileParser) advance() { f.tok = f.lx.next() }

func (f *fileParser) errorf(line int, format string, a ...any) {
	f.p.errs = append(f.p.errs, &Error{File: f.file, Line: line, Msg: fmt.Sprintf(format, a...)})
}

// recover skips to just after the next ';' or to a '}' / EOF.
func (f *fileParser) recover() {
	for f.tok.kind != tEOF && f.tok.kind != tRBrace {
		k := f.tok.kind
		f.advance()
		if k == tSemi {
			return
		}
	}
}

// stmts parses statements until EOF (top level) or '}' (inside jail).
func (f *fileParser) stmts(jail *Jail) {
	for {
		if len(f.p.errs) > 50 {
			return
		}
		switch f.tok.kind {
		case tEOF:
			if jail != nil {
				f.errorf(jail.Line, "missing '}' for jail %q", jail.Name)
			}
			return
		case tRBrace:
			if jail != nil {
				return
			}
			f.errorf(f.tok.line, "syntax error: unexpected '}'")
			f.advance()
			continue
		case tSemi:
			f.advance() // empty statement
			continue
		case tWord, tString:
		default:
			f.errorf(f.tok.line, "syntax error: unexpected %s", f.tok.kind)
			f.advance()
			f.recover()
			continue
		}
		name := f.tok
		f.advance()
		nameText := name.text
		if name.kind == tString {
			nameText = name.parts[0].text
		}
		if name.kind == tWord && nameText == ".include" {
			if jail != nil {
				// jail(8) (config.c, since the .include commit of
				// 2023) reads an included file as a configuration of
				// its own: its parameters are global, not the block's
				// [inferred from the source; check on a host].
				f.p.cfg.Warnings = append(f.p.cfg.Warnings, &Error{File: f.file, Line: name.line,
					Msg: fmt.Sprintf(".include inside jail %q: the included file is read as a whole configuration, its parameters do not belong to %q", jail.Name, jail.Name)})
			}
			f.include(name)
			continue
		}
		if f.tok.kind == tLBrace {
			f.block(name, nameText, jail)
			continue
		}
		f.param(name, nameText, jail)
	}
}

func (f *fileParser) block(name token, nameText string, outer *Jail) {
	f.advance()
	if outer != nil {
		f.errorf(name.line, "syntax error: jail %q inside jail %q", nameText, outer.Name)
	}
	if !isJailName(nameText) {
		f.errorf(name.line, "invalid jail name %q", nameText)
	}
	if !isWildcard(nameText) {
		if prev, dup := f.p.names[nameText]; dup {
			f.errorf(name.line, "jail %q defined twice (first at %s)", nameText, prev)
		} else {
			f.p.names[nameText] = fmt.Sprintf("%s:%d", f.file, name.line)
		}
	}
	j := Jail{Name: nameText, Line: name.line, File: f.file}
	f.stmts(&j)
	if f.tok.kind == tRBrace {
		f.advance()
	}
	if outer == nil {
		f.p.cfg.Jails = append(f.p.cfg.Jails, j)
	}
}

// value reads one value: adjacent words and strings concatenate.
func (f *fileParser) value() ([]piece, string) {
	var ps []piece
	var raw strings.Builder
	first := true
	for (f.tok.kind == tWord || f.tok.kind == tString) && (first || f.tok.adj) {
		f.last = f.tok.line + strings.Count(rawText(f.tok), "\n")
		ps = append(ps, f.tok.parts...)
		raw.WriteString(rawText(f.tok))
		first = false
		f.advance()
	}
	return ps, raw.String()
}

func rawText(t token) string {
	if !t.quoted {
		return t.text
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.isVar {
			b.WriteString("${" + p.text + "}")
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

func (f *fileParser) param(name token, nameText string, jail *Jail) {
	if name.kind != tWord || !isParamName(nameText) {
		f.errorf(name.line, "syntax error: invalid parameter name %q", nameText)
		f.recover()
		return
	}
	f.p.seq++
	pm := Param{Name: nameText, Line: name.line, File: f.file, seq: f.p.seq}
	switch f.tok.kind {
	case tSemi:
		f.advance()
		f.add(pm, jail)
		return
	case tEq:
		f.advance()
	case tPlusEq:
		pm.Append = true
		f.advance()
	case tWord, tString:
		// "name value;" form
	default:
		f.errorf(f.tok.line, "syntax error: expected '=', '+=' or ';' after %q, found %s", nameText, f.tok.kind)
		f.recover()
		return
	}
	for {
		if f.tok.kind != tWord && f.tok.kind != tString {
			f.errorf(f.tok.line, "syntax error: missing value for %q", nameText)
			f.recover()
			return
		}
		ps, raw := f.value()
		pm.parts = append(pm.parts, ps)
		pm.Values = append(pm.Values, raw)
		if f.tok.kind == tComma {
			f.advance()
			continue
		}
		break
	}
	if f.tok.kind != tSemi {
		f.errorf(f.last, "syntax error: missing ';' after parameter %q", nameText)
		f.recover()
		return
	}
	f.advance()
	f.add(pm, jail)
}

func (f *fileParser) add(pm Param, jail *Jail) {
	if jail != nil {
		jail.Params = append(jail.Params, pm)
	} else {
		f.p.cfg.Global = append(f.p.cfg.Global, pm)
	}
}

func (f *fileParser) include(kw token) {
	if f.tok.kind != tString && f.tok.kind != tWord {
		f.errorf(kw.line, "syntax error: .include needs a file name")
		f.recover()
		return
	}
	pattern := rawText(f.tok)
	f.advance()
	if f.tok.kind != tSemi {
		f.errorf(kw.line, "syntax error: missing ';' after .include")
		f.recover()
	} else {
		f.advance()
	}
	if f.depth >= maxIncludeDepth {
		f.errorf(kw.line, "too many nested includes at %q", pattern)
		return
	}
	names, err := f.p.opts.Glob(pattern)
	if err != nil {
		f.errorf(kw.line, "include %q: %v", pattern, err)
		return
	}
	if len(names) == 0 && !strings.ContainsAny(pattern, "*?[") {
		names = []string{pattern} // let the read report the missing file
	}
	for _, n := range names {
		src, err := f.p.opts.ReadFile(n)
		if err != nil {
			f.errorf(kw.line, "include %q: %v", n, err)
			continue
		}
		f.p.file(n, src, f.depth+1)
	}
}
