package topology

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// splitHosts is how many hosts one piece of a split decode holds: enough
// that a piece's parser setup is noise, few enough that the pieces keep
// every core busy.
const splitHosts = 64

// decodeSplit decodes a topology whose hosts are a block mapping at the
// top level ("hosts:" on a line of its own, each host's name at one
// indentation) in pieces, on every core: the file without the hosts block,
// and runs of per hosts, each parsed as "hosts:" plus its lines.
// yaml.v3's parser is the loader's one serial cost otherwise.
//
// A piece boundary is a line starting a host's key at the hosts'
// indentation. Whatever the whole file's parse is in at such a line
// (a flow collection or a quoted string left open, a block scalar)
// either ends there (block scalars and plain scalars end at a line
// indented no deeper than their mapping) or leaves the piece before
// it open at its end, which fails that piece. So when every piece
// parses and decodes strictly without an error, has no alias, and each
// starts as the whole file would, the pieces are the whole file's
// parse: ok is false otherwise, and decodeWhole decodes the file (and
// names its errors) as it always has.
func decodeSplit(name string, data []byte, per int) (*File, *positions, bool) {
	sp, ok := splitFile(data, per)
	if !ok {
		return nil, nil, false
	}
	type piece struct {
		text  []byte
		shift func(line int) int
		root  yaml.Node
		file  File // the head's decode
		hosts struct {
			Hosts map[string]*Spec `yaml:"hosts"`
		}
		nodeErr, decErr error
		alias           bool // the piece has an alias (see shiftLines)
	}
	pieces := make([]piece, 1+len(sp.cuts))
	pieces[0].text = sp.head
	pieces[0].shift = func(line int) int {
		if line > sp.hostsLine {
			return line + sp.blockLines
		}
		return line
	}
	for i, c := range sp.cuts {
		end := sp.blockEnd
		if i+1 < len(sp.cuts) {
			end = sp.cuts[i+1]
		}
		// "hosts:\n" is line 1; the piece's first line, line 2, is line
		// c+1 of the file (c counts from 0).
		first := c + 1
		pieces[i+1].text = append([]byte("hosts:\n"), data[sp.starts[c]:sp.offset(end)]...)
		pieces[i+1].shift = func(line int) int { return line + first - 2 }
	}
	// One parse per piece: the node tree (positions) is decoded as is,
	// its keys checked as the strict decoder would (knownKeys).
	parallel(len(pieces), func(i int) {
		p := &pieces[i]
		if p.nodeErr = yaml.Unmarshal(p.text, &p.root); p.nodeErr != nil {
			return
		}
		if p.alias = shiftLines(&p.root, p.shift); p.alias {
			return
		}
		var out any = &p.hosts
		if i == 0 {
			out = &p.file
		}
		if p.decErr = p.root.Decode(out); p.decErr == nil && !knownKeys(&p.root, reflect.TypeOf(out)) {
			p.decErr = errUnknownKey
		}
	})
	for _, p := range pieces {
		if p.nodeErr != nil || p.decErr != nil || p.alias {
			return nil, nil, false
		}
	}
	// The head: a block mapping whose hosts key is the one found, empty.
	headMap := docMapping(&pieces[0].root)
	if headMap == nil || headMap.Style&yaml.FlowStyle != 0 {
		return nil, nil, false
	}
	var hostsVal *yaml.Node
	for i := 0; i+1 < len(headMap.Content); i += 2 {
		if k := headMap.Content[i]; k.Value == "hosts" && k.Line == sp.hostsLine && k.Column == 1 {
			hostsVal = headMap.Content[i+1]
		}
	}
	if hostsVal == nil || hostsVal.Kind != yaml.ScalarNode || hostsVal.Tag != "!!null" {
		return nil, nil, false
	}
	f := &pieces[0].file
	merged := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	f.Hosts = make(map[string]*Spec, len(sp.cuts)*per)
	for i := range pieces[1:] {
		p := &pieces[i+1]
		m := docMapping(&p.root)
		if m == nil || len(m.Content) != 2 {
			return nil, nil, false
		}
		hm := m.Content[1]
		// The piece starts with a host key at the hosts' indentation, in
		// a block mapping: the whole file's parse is there too.
		if hm.Kind != yaml.MappingNode || hm.Style&yaml.FlowStyle != 0 || len(hm.Content) == 0 ||
			hm.Content[0].Line != sp.keys[i]+1 || hm.Content[0].Column != sp.indent+1 {
			return nil, nil, false
		}
		if i == 0 {
			merged.Line, merged.Column = hm.Line, hm.Column
		}
		merged.Content = append(merged.Content, hm.Content...)
		for k, v := range p.hosts.Hosts {
			if _, dup := f.Hosts[k]; dup {
				return nil, nil, false // decodeWhole names the duplicate
			}
			f.Hosts[k] = v
		}
	}
	*hostsVal = *merged
	return f, annotated(name, f, headMap), true
}

// errUnknownKey: knownKeys found a key the strict decoder would reject.
var errUnknownKey = errors.New("unknown key")

// knownKeys reports whether every mapping key in n that is decoded into a
// struct of type t names one of its fields, as yaml.v3's strict decoder
// (Decoder.KnownFields) requires: Node.Decode does not check. It is
// stricter than need be where that is simpler (keys that are not plain
// strings, merge keys, aliases): false only sends the file to
// decodeWhole.
func knownKeys(n *yaml.Node, t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return true // decodes itself (Strings), as in the strict decode
	}
	switch n.Kind {
	case yaml.DocumentNode:
		return len(n.Content) != 1 || knownKeys(n.Content[0], t)
	case yaml.AliasNode:
		return false
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return true // a type error, which Decode reported
		}
		for _, c := range n.Content {
			if !knownKeys(c, t.Elem()) {
				return false
			}
		}
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Map:
			for i := 1; i < len(n.Content); i += 2 {
				if !knownKeys(n.Content[i], t.Elem()) {
					return false
				}
			}
		case reflect.Struct:
			fields, ok := keyFields(t)
			if !ok {
				return false
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Kind != yaml.ScalarNode || k.Tag != "!!str" || k.Value == "<<" {
					return false
				}
				ft, ok := fields[k.Value]
				if !ok || !knownKeys(n.Content[i+1], ft) {
					return false
				}
			}
		}
	}
	return true
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// keyFields maps the keys of a struct type to their field types, inline
// structs' fields included, as yaml.v3 names them (tag name, else the
// lower-cased field name); ok is false for a struct with an inline map.
func keyFields(t reflect.Type) (map[string]reflect.Type, bool) {
	if v, ok := keyFieldsOf.Load(t); ok {
		m := v.(map[string]reflect.Type)
		return m, m != nil
	}
	m := map[string]reflect.Type{}
	ok := true
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			sub, subOK := map[string]reflect.Type(nil), f.Type.Kind() == reflect.Struct
			if subOK {
				sub, subOK = keyFields(f.Type)
			}
			if !subOK {
				ok = false
				break
			}
			maps.Copy(m, sub)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	if !ok {
		m = nil
	}
	keyFieldsOf.Store(t, m)
	return m, ok
}

var keyFieldsOf sync.Map // reflect.Type → map[string]reflect.Type

// docMapping is the mapping at the root of a parsed document, or nil.
func docMapping(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	return doc.Content[0]
}

// shiftLines renumbers n's nodes to the whole file's lines and reports
// whether n holds an alias.
func shiftLines(n *yaml.Node, shift func(int) int) (alias bool) {
	n.Line = shift(n.Line)
	if n.Kind == yaml.AliasNode {
		return true
	}
	for _, c := range n.Content {
		if shiftLines(c, shift) {
			alias = true
		}
	}
	return alias
}

// fileSplit is where a topology file's hosts block and its pieces are.
type fileSplit struct {
	starts     []int  // offset of each line (line i+1 of the file)
	size       int    // len(data)
	head       []byte // the file without the hosts block's lines
	hostsLine  int    // line of "hosts:" (from 1)
	blockEnd   int    // index of the first line after the hosts block
	blockLines int    // lines in the hosts block
	indent     int    // indentation of the host keys
	cuts       []int  // index of each piece's first line
	keys       []int  // index of each piece's first host key line
}

func (s *fileSplit) offset(line int) int {
	if line < len(s.starts) {
		return s.starts[line]
	}
	return s.size
}

// splitFile finds the hosts block of a topology file: the lines after a
// line "hosts:" up to the next line at column 0 that is not blank or a
// comment, and cuts it every per host keys (lines at the first
// key's indentation starting with a host name and a colon). ok is false
// when the file has no such block, too few hosts to be worth it, or
// something the cutting leaves to decodeWhole (carriage returns, a
// second document).
func splitFile(data []byte, per int) (fileSplit, bool) {
	s := fileSplit{size: len(data)}
	if bytes.IndexByte(data, '\r') >= 0 {
		return s, false
	}
	for i := 0; i < len(data); {
		s.starts = append(s.starts, i)
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	line := func(i int) []byte { return bytes.TrimSuffix(data[s.starts[i]:s.offset(i+1)], []byte("\n")) }
	hosts := -1
	for i := range s.starts {
		l := line(i)
		if i > 0 && (bytes.HasPrefix(l, []byte("---")) || bytes.HasPrefix(l, []byte("...")) || bytes.HasPrefix(l, []byte("%"))) {
			return s, false
		}
		if hosts < 0 && bytes.Equal(bytes.TrimRight(l, " "), []byte("hosts:")) {
			hosts = i
		}
	}
	if hosts < 0 {
		return s, false
	}
	s.hostsLine = hosts + 1
	s.indent = -1
	keys := 0
	i := hosts + 1
	for ; i < len(s.starts); i++ {
		l := line(i)
		body := bytes.TrimLeft(l, " ")
		if len(body) == 0 || body[0] == '#' {
			continue
		}
		ind := len(l) - len(body)
		if ind == 0 {
			break
		}
		if s.indent < 0 {
			s.indent = ind
		}
		if ind != s.indent || !hostKeyLine(body) {
			continue
		}
		if keys%per == 0 {
			s.cuts = append(s.cuts, i)
			s.keys = append(s.keys, i)
		}
		keys++
	}
	s.blockEnd = i
	s.blockLines = s.blockEnd - (hosts + 1)
	if keys < 2*per || s.cuts[0] != firstContent(s, line, hosts+1) {
		return s, false
	}
	// The first piece keeps the comments and blank lines before its
	// first host.
	s.cuts[0] = hosts + 1
	s.head = make([]byte, 0, s.starts[hosts+1]+len(data)-s.offset(s.blockEnd))
	s.head = append(s.head, data[:s.starts[hosts+1]]...)
	s.head = append(s.head, data[s.offset(s.blockEnd):]...)
	return s, true
}

// firstContent is the index of the first line from i on that is neither
// blank nor a comment.
func firstContent(s fileSplit, line func(int) []byte, i int) int {
	for ; i < len(s.starts); i++ {
		if body := bytes.TrimLeft(line(i), " "); len(body) > 0 && body[0] != '#' {
			return i
		}
	}
	return i
}

// hostKeyLine: body (a line without its indentation) starts with a host
// name (hostRE) followed by a colon ending the line or followed by a
// space.
func hostKeyLine(body []byte) bool {
	n := 0
	for n < len(body) && (body[n] >= 'a' && body[n] <= 'z' || body[n] >= 'A' && body[n] <= 'Z' || body[n] >= '0' && body[n] <= '9' || n > 0 && (body[n] == '_' || body[n] == '-')) {
		n++
	}
	return n > 0 && n < len(body) && body[n] == ':' && (n+1 == len(body) || body[n+1] == ' ')
}
