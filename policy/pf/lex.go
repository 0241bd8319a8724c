package pf

import (
	"fmt"
	"strings"
)

// Token kinds. Like pfctl's yylex, keywords are plain words here; the
// parser compares unquoted words, so a quoted "pass" is never a keyword.
type tokKind int

const (
	tkEOF tokKind = iota
	tkNL
	tkWord   // unquoted string or number
	tkString // quoted string
	tkPunct  // { } ( ) , / ! < > = - and the two-byte -> != <= >= <> ><
	tkError  // a lexer error already reported; the parser skips the line
)

type token struct {
	kind tokKind
	s    string
	line int
}

func (t token) is(s string) bool { return (t.kind == tkWord || t.kind == tkPunct) && t.s == s }

func (t token) String() string {
	switch t.kind {
	case tkEOF:
		return "end of file"
	case tkNL:
		return "end of line"
	}
	return t.s
}

// lexer reads one file. Macro values are pushed back in front of the
// input, as pfctl does, so "$m" may expand to several tokens, to the start
// of a comment, or glue onto the following characters.
type lexer struct {
	src      []byte
	pos      int
	push     []byte // expanded macro text, read from pushPos on before src
	pushPos  int
	back     []int // characters given back (pfctl's pushback_buffer)
	line     int
	file     string
	macros   map[string]string
	used     map[string]int // macro name -> expansions, for lints (shared)
	errf     func(line int, msg string)
	peeked   []token
	fromPush bool // the last byte read came from a macro expansion
}

// maxString is the size of yylex's buffer in sbin/pfctl/parse.y: longer
// words and quoted strings are "string too long".
const maxString = 8096

// getc is parse.y's lgetc(0): macro text first (read as is), then
// characters given back, then the file, where a backslash joins the next
// line (both dropped, the line counted) and is dropped before any other
// character; a backslash at the end of the file is dropped too.
func (l *lexer) getc() int {
	return l.getcQ(false)
}

// getcQ is lgetc(quotec): inside quotes the file is read as is.
func (l *lexer) getcQ(quoted bool) int {
	if l.pushPos < len(l.push) {
		c := l.push[l.pushPos]
		l.pushPos++
		l.fromPush = true
		return int(c)
	}
	l.fromPush = false
	if n := len(l.back); n > 0 {
		c := l.back[n-1]
		l.back = l.back[:n-1]
		return c
	}
	for {
		if l.pos >= len(l.src) {
			return -1
		}
		c := l.src[l.pos]
		l.pos++
		if c != '\\' || quoted {
			return int(c)
		}
		if l.pos >= len(l.src) {
			return -1
		}
		next := l.src[l.pos]
		l.pos++
		if next != '\n' {
			return int(next)
		}
		l.line++
	}
}

// ungetc is lungetc: a byte of a macro expansion goes back into it, any
// other character onto the pushback stack.
func (l *lexer) ungetc(c int) {
	if c < 0 {
		return
	}
	if l.fromPush {
		l.pushPos-- // the byte just read from the expansion
		return
	}
	l.back = append(l.back, c)
}

func (l *lexer) peekc() int {
	c := l.getc()
	l.ungetc(c)
	return c
}

// allowedInString is pfctl's allowed_in_string.
func allowedInString(c int) bool {
	if c < 0 || c >= 0x7f || c <= ' ' {
		return false
	}
	switch c {
	case '(', ')', '{', '}', '<', '>', '!', '=', '/', '#', ',', '\'', '"':
		return false
	}
	return true
}

func isAlnum(c int) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// peek returns the next token without consuming it.
func (l *lexer) peek() token {
	if len(l.peeked) == 0 {
		l.peeked = append(l.peeked, l.lex())
	}
	return l.peeked[0]
}

func (l *lexer) next() token {
	if len(l.peeked) > 0 {
		t := l.peeked[0]
		l.peeked = l.peeked[1:]
		return t
	}
	return l.lex()
}

func (l *lexer) lex() token {
top:
	c := l.getc()
	for c == ' ' || c == '\t' || c == '\r' {
		c = l.getc()
	}
	line := l.line
	if c == '#' {
		for c != '\n' && c != -1 {
			c = l.getc()
		}
	}
	if c == '$' && !l.fromPush {
		var name strings.Builder
		for {
			c = l.getc()
			if !isAlnum(c) && c != '_' {
				l.ungetc(c)
				break
			}
			name.WriteByte(byte(c))
		}
		if name.Len() == 0 {
			l.errf(line, "macro '' not defined")
			l.skipLine()
			return token{kind: tkError, line: line}
		}
		v, ok := l.macros[name.String()]
		if !ok {
			l.errf(line, "macro '"+name.String()+"' not defined")
			l.skipLine()
			return token{kind: tkError, line: line}
		}
		l.used[name.String()]++
		l.push = append([]byte(v), l.push[l.pushPos:]...)
		l.pushPos = 0
		goto top
	}
	switch c {
	case -1:
		return token{kind: tkEOF, line: line}
	case '\n':
		l.line++
		return token{kind: tkNL, line: line}
	case '"', '\'':
		return l.quoted(c, line)
	case '!':
		if l.peekc() == '=' {
			l.getc()
			return token{kind: tkPunct, s: "!=", line: line}
		}
	case '<':
		switch l.peekc() {
		case '>':
			l.getc()
			return token{kind: tkPunct, s: "<>", line: line}
		case '=':
			l.getc()
			return token{kind: tkPunct, s: "<=", line: line}
		}
	case '>':
		switch l.peekc() {
		case '<':
			l.getc()
			return token{kind: tkPunct, s: "><", line: line}
		case '=':
			l.getc()
			return token{kind: tkPunct, s: ">=", line: line}
		}
	case '-':
		if l.peekc() == '>' {
			l.getc()
			return token{kind: tkPunct, s: "->", line: line}
		}
	}
	if isAlnum(c) || c == ':' || c == '_' || c == '*' || c == '.' && isAlnum(l.peekc()) {
		var b strings.Builder
		for allowedInString(c) {
			b.WriteByte(byte(c))
			if b.Len() >= maxString {
				return l.tooLong(line)
			}
			c = l.getc()
		}
		l.ungetc(c)
		return token{kind: tkWord, s: b.String(), line: line}
	}
	if c < 0x20 && c != '\t' || c >= 0x7f {
		l.errf(line, fmt.Sprintf("syntax error near %q", string(rune(c))))
		l.skipLine()
		return token{kind: tkError, line: line}
	}
	return token{kind: tkPunct, s: string(rune(c)), line: line}
}

// quoted reads a quoted string as parse.y's yylex does: newlines inside
// are dropped (and counted), a backslash escapes the quote character or
// joins the next line, and is kept before anything else (yylex's test of
// c == ' ' can never hold, c being the backslash).
func (l *lexer) quoted(q int, line int) token {
	var b strings.Builder
	for {
		c := l.getcQ(true)
		switch {
		case c == -1:
			l.errf(line, "reached end of file while parsing quoted string")
			return token{kind: tkError, line: line}
		case c == q:
			return token{kind: tkString, s: b.String(), line: line}
		case c == '\n':
			l.line++
			continue
		case c == '\\':
			n := l.getcQ(true)
			switch n {
			case -1:
				l.errf(line, "reached end of file while parsing quoted string")
				return token{kind: tkError, line: line}
			case q:
				c = n
			case '\n':
				l.line++
				continue
			default:
				l.ungetc(n)
			}
		}
		if b.Len()+1 >= maxString-1 {
			return l.tooLong(line)
		}
		b.WriteByte(byte(c))
	}
}

// tooLong reports yylex's "string too long" and skips the line.
func (l *lexer) tooLong(line int) token {
	l.errf(line, "string too long")
	l.skipLine()
	return token{kind: tkError, line: line}
}

// skipLine drops input up to (not including) the next newline.
func (l *lexer) skipLine() {
	l.push, l.pushPos = nil, 0
	for {
		c := l.getc()
		if c == '\n' || c == -1 {
			l.ungetc(c)
			return
		}
	}
}
