package topology

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// TopologyFile is the name of the topology inside an infra repo.
const TopologyFile = "topology.yaml"

// Decode strictly decodes a topology file. Unknown keys, wrong types and
// duplicate keys are Problems naming file:line. It does not validate.
func Decode(name string, data []byte) (*File, error) {
	f, _, err := decodeFile(name, data)
	return f, err
}

// decodeFile is Decode plus the positions of every decoded item. A
// large fleet's hosts are decoded in parallel (decodeSplit); the result is
// the same as decodeWhole's, which runs whenever the split does not apply
// or finds anything wrong, so every error comes from decodeWhole.
func decodeFile(name string, data []byte) (*File, *positions, error) {
	if f, pos, ok := decodeSplit(name, data, splitHosts); ok {
		return f, pos, nil
	}
	return decodeWhole(name, data)
}

// decodeWhole decodes the whole file at once.
func decodeWhole(name string, data []byte) (*File, *positions, error) {
	// Two parses of the same bytes: the node tree (positions) and the
	// strict decode (yaml.v3 checks unknown keys only when decoding from
	// bytes). They are independent, so they run on two cores.
	var root yaml.Node
	nodeErr := make(chan error, 1)
	go func() { nodeErr <- yaml.Unmarshal(data, &root) }()
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	decErr := dec.Decode(&f)
	if err := <-nodeErr; err != nil {
		return nil, nil, yamlErrors(name, err)
	}
	if err := decErr; err != nil && !errors.Is(err, io.EOF) {
		err := yamlErrors(name, err)
		var ps Problems
		if errors.As(err, &ps) {
			for i, p := range ps {
				if strings.HasPrefix(p.Msg, "cannot unmarshal") {
					if k := keyAtLine(&root, p.Line); k != "" {
						ps[i].Msg = k + ": " + p.Msg
					}
				}
			}
		}
		return nil, nil, err
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	return &f, annotated(name, &f, doc), nil
}

// annotated is the positions of f's items, decoded from doc.
func annotated(name string, f *File, doc *yaml.Node) *positions {
	pos := &positions{file: name, nodes: map[any]*yaml.Node{}, keys: map[mapKey]int{}}
	pos.annotate(reflect.ValueOf(f), doc)
	return pos
}

// keyAtLine finds the mapping key whose value starts on line (to name the
// field of a type error).
func keyAtLine(n *yaml.Node, line int) string {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i+1].Line == line {
				return n.Content[i].Value
			}
		}
	}
	for _, c := range n.Content {
		if k := keyAtLine(c, line); k != "" {
			return k
		}
	}
	return ""
}

func yamlErrors(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		ps := make(Problems, 0, len(te.Errors))
		for _, e := range te.Errors {
			ps = append(ps, yamlProblem(name, e))
		}
		return ps.sorted()
	}
	return Problems{yamlProblem(name, err.Error())}
}

// positions remembers where each decoded struct (by pointer) and each map
// key came from, so semantic problems can name file:line.
type positions struct {
	file  string
	nodes map[any]*yaml.Node
	keys  map[mapKey]int
}

type mapKey struct {
	m uintptr
	k string
}

// annotate walks a decoded value and its node in step.
func (p *positions) annotate(v reflect.Value, n *yaml.Node) {
	if n == nil || !v.IsValid() {
		return
	}
	if n.Kind == yaml.AliasNode {
		// Aliased content is positioned at its anchor; following aliases
		// could walk an alias bomb exponentially.
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		p.nodes[v.Interface()] = n
		p.annotate(v.Elem(), n)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		for _, f := range yamlFields(v.Type()) {
			if f.inline {
				p.annotate(v.Field(f.index), n)
				continue
			}
			if vn := mapValue(n, f.name); vn != nil {
				p.annotate(v.Field(f.index), vn)
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i := 0; i < v.Len() && i < len(n.Content); i++ {
			p.annotate(v.Index(i), n.Content[i])
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode || v.IsNil() {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p.keys[mapKey{v.Pointer(), k.Value}] = k.Line
			if v.Type().Key().Kind() == reflect.String {
				p.annotate(v.MapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key())), n.Content[i+1])
			}
		}
	}
}

// yamlField is a struct field as topology.yaml names it.
type yamlField struct {
	index  int
	name   string
	inline bool
}

// fieldsOf caches yamlFields by struct type: annotate walks every
// decoded struct.
var fieldsOf sync.Map // reflect.Type → []yamlField

// yamlFields are t's fields with their yaml names, "-" fields left out.
func yamlFields(t reflect.Type) []yamlField {
	if fs, ok := fieldsOf.Load(t); ok {
		return fs.([]yamlField)
	}
	var fs []yamlField
	for i := 0; i < t.NumField(); i++ {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "-" {
			fs = append(fs, yamlField{index: i, name: name, inline: opts == "inline"})
		}
	}
	fieldsOf.Store(t, fs)
	return fs
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// at returns the position of a decoded item, or of one of its keys when
// field is set (falling back to the item itself).
func (p *positions) at(item any, field string) Pos {
	if p == nil {
		return Pos{}
	}
	n := p.nodes[item]
	if n == nil {
		return Pos{File: p.file}
	}
	if field != "" && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == field {
				return Pos{File: p.file, Line: n.Content[i].Line}
			}
		}
	}
	return Pos{File: p.file, Line: n.Line}
}

// key returns the position of key k in map m (a decoded map value).
func (p *positions) key(m any, k string) Pos {
	if p == nil {
		return Pos{}
	}
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Map || v.IsNil() {
		return Pos{File: p.file}
	}
	return Pos{File: p.file, Line: p.keys[mapKey{v.Pointer(), k}]}
}

// elem returns the position of element i of a decoded slice field of
// item (e.g. the third vnet interface of a jail).
func (p *positions) elem(item any, field string, i int) Pos {
	if p == nil {
		return Pos{}
	}
	n := p.nodes[item]
	if n == nil {
		return Pos{File: p.file}
	}
	if vn := mapValue(n, field); vn != nil && vn.Kind == yaml.SequenceNode && i < len(vn.Content) {
		return Pos{File: p.file, Line: vn.Content[i].Line}
	}
	return p.at(item, field)
}
