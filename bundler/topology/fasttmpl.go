package topology

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
)

// A compiled template runs a repo template on a View without
// text/template's reflection per action (a method looked up by name and
// its signature built, arguments boxed, the call made by reflect), which
// was half of prepareFiles' CPU on the 1,000-host fleet of the bundle
// benchmark (uirig's templates). It is compiled from the parse
// tree text/template made, with the types known: View's fields are read
// by index and its methods called directly.
//
// It only takes what it does as text/template does. Anything else (a
// construct it does not compile, a value it does not print, any error
// at all) sends the whole template, or that one execution, back to
// text/template, which then writes the output or the error. So the
// output and the error messages are text/template's by construction;
// fasttmpl_test holds the compiled outputs equal to text/template's.

// errSlow: this execution goes to text/template.
var errSlow = errors.New("topology: template needs text/template")

// compiledTemplate is a repo template compiled for *View data.
type compiledTemplate struct {
	root fnode
}

// fkind is what an fval holds.
type fkind uint8

const (
	fString fkind = iota + 1
	fInt
	fBool
	fRV // any other value, in rv
)

// fval is a value during execution: strings, ints and bools as they
// are (no boxing), anything else as a reflect.Value.
type fval struct {
	k  fkind
	s  string
	n  int
	rv reflect.Value
}

// fstate is one execution.
type fstate struct {
	w    *bytes.Buffer
	vars []fval // as text/template's variable stack; slots fixed at compile time
	// args holds the arguments of the calls being made, each call's
	// above those of the calls its arguments are part of.
	args []fval
}

type (
	fnode func(s *fstate, dot fval) error
	// fexpr evaluates a command; final is the previous command's value
	// in the pipeline (used only by commands compiled to take one).
	fexpr func(s *fstate, dot, final fval) (fval, error)
)

var (
	stringType = reflect.TypeFor[string]()
	intType    = reflect.TypeFor[int]()
	boolType   = reflect.TypeFor[bool]()
	viewPtr    = reflect.TypeFor[*View]()
)

// compileTemplate compiles t for *View data, or returns nil when t uses
// something the compiler leaves to text/template.
func compileTemplate(t *template.Template) *compiledTemplate {
	if t == nil || t.Tree == nil || t.Root == nil {
		return nil
	}
	c := &compiler{vars: []cvar{{"$", viewPtr}}}
	root, ok := c.list(t.Root, viewPtr)
	if !ok {
		return nil
	}
	return &compiledTemplate{root: root}
}

// execute writes t's output on v to b, or returns errSlow having written
// nothing (b as it was) when text/template must run it.
func (t *compiledTemplate) execute(b *bytes.Buffer, v *View) error {
	start := b.Len()
	s := fstates.Get().(*fstate)
	defer s.release()
	s.w = b
	s.vars = append(s.vars, fval{k: fRV, rv: reflect.ValueOf(v)})
	if err := t.root(s, s.vars[0]); err != nil {
		b.Truncate(start)
		return errSlow
	}
	return nil
}

// fstates are executions' states, reused: their stacks were most of
// what an execution allocated.
var fstates = sync.Pool{New: func() any { return new(fstate) }}

// release empties s (keeping nothing of the view it ran on) and gives it
// back to fstates.
func (s *fstate) release() {
	clear(s.vars[:cap(s.vars)])
	clear(s.args[:cap(s.args)])
	*s = fstate{vars: s.vars[:0], args: s.args[:0]}
	fstates.Put(s)
}

// cvar is a variable at compile time: its name and static type.
type cvar struct {
	name string
	typ  reflect.Type
}

// compiler compiles one template. vars mirrors the runtime variable
// stack: text/template's pushes and pops follow the tree's structure, so
// each variable's slot is known here.
type compiler struct {
	vars []cvar
}

func (c *compiler) lookup(name string) (int, reflect.Type, bool) {
	for i := len(c.vars) - 1; i >= 0; i-- {
		if c.vars[i].name == name {
			return i, c.vars[i].typ, true
		}
	}
	return 0, nil, false
}

func (c *compiler) list(l *parse.ListNode, dot reflect.Type) (fnode, bool) {
	if l == nil {
		return func(*fstate, fval) error { return nil }, true
	}
	nodes := make([]fnode, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		f, ok := c.node(n, dot)
		if !ok {
			return nil, false
		}
		if f != nil {
			nodes = append(nodes, f)
		}
	}
	if len(nodes) == 1 {
		return nodes[0], true
	}
	return func(s *fstate, d fval) error {
		for _, f := range nodes {
			if err := f(s, d); err != nil {
				return err
			}
		}
		return nil
	}, true
}

func (c *compiler) node(n parse.Node, dot reflect.Type) (fnode, bool) {
	switch n := n.(type) {
	case *parse.TextNode:
		text := n.Text
		return func(s *fstate, _ fval) error {
			s.w.Write(text)
			return nil
		}, true
	case *parse.CommentNode:
		return nil, true
	case *parse.ActionNode:
		pipe, _, ok := c.pipeline(n.Pipe, dot)
		if !ok {
			return nil, false
		}
		if len(n.Pipe.Decl) > 0 {
			return func(s *fstate, d fval) error {
				_, err := pipe(s, d)
				return err
			}, true
		}
		return func(s *fstate, d fval) error {
			v, err := pipe(s, d)
			if err != nil {
				return err
			}
			return s.print(v)
		}, true
	case *parse.IfNode:
		return c.ifOrWith(false, n.Pipe, n.List, n.ElseList, dot)
	case *parse.WithNode:
		return c.ifOrWith(true, n.Pipe, n.List, n.ElseList, dot)
	case *parse.RangeNode:
		return c.rangeNode(n, dot)
	case *parse.ListNode:
		return c.list(n, dot)
	}
	// template, block, break, continue: text/template's.
	return nil, false
}

// ifOrWith is text/template's walkIfOrWith: the pipeline's variables
// live until the end of the whole statement.
func (c *compiler) ifOrWith(with bool, p *parse.PipeNode, list, elseList *parse.ListNode, dot reflect.Type) (fnode, bool) {
	mark := len(c.vars)
	defer func() { c.vars = c.vars[:mark] }()
	pipe, typ, ok := c.pipeline(p, dot)
	if !ok {
		return nil, false
	}
	bodyDot := dot
	if with {
		bodyDot = typ
	}
	inner := len(c.vars)
	body, ok := c.list(list, bodyDot)
	c.vars = c.vars[:inner]
	if !ok {
		return nil, false
	}
	var els fnode
	if elseList != nil {
		if els, ok = c.list(elseList, dot); !ok {
			return nil, false
		}
	}
	return func(s *fstate, d fval) error {
		defer s.pop(mark)
		v, err := pipe(s, d)
		if err != nil {
			return err
		}
		t, ok := v.truth()
		if !ok {
			return errSlow
		}
		switch {
		case t && with:
			return body(s, v)
		case t:
			return body(s, d)
		case els != nil:
			return els(s, d)
		}
		return nil
	}, true
}

func (s *fstate) pop(mark int) { s.vars = s.vars[:mark] }

// rangeNode is text/template's walkRange over a slice, an array or a map
// with string keys (in key order).
func (c *compiler) rangeNode(r *parse.RangeNode, dot reflect.Type) (fnode, bool) {
	if r.Pipe.IsAssign || len(r.Pipe.Decl) > 2 {
		return nil, false
	}
	mark := len(c.vars)
	defer func() { c.vars = c.vars[:mark] }()
	pipe, typ, ok := c.pipeline(r.Pipe, dot)
	if !ok || typ == nil {
		return nil, false
	}
	var keyType reflect.Type
	switch typ.Kind() {
	case reflect.Slice, reflect.Array:
		keyType = intType
	case reflect.Map:
		if typ.Key() != stringType {
			return nil, false
		}
		keyType = stringType
	default:
		return nil, false
	}
	elemType := typ.Elem()
	elemOf := wrapper(elemType)
	if elemOf == nil {
		return nil, false
	}
	// The pipeline pushed the variables; in the body the last holds the
	// element and the one before it the key.
	decls := len(r.Pipe.Decl)
	top := len(c.vars) - 1
	if decls > 0 {
		c.vars[top].typ = elemType
	}
	if decls > 1 {
		c.vars[top-1].typ = keyType
	}
	iterMark := len(c.vars)
	body, ok := c.list(r.List, elemType)
	c.vars = c.vars[:iterMark]
	if !ok {
		return nil, false
	}
	// In the else branch they hold the pipeline's value.
	if decls > 0 {
		c.vars[top].typ = typ
	}
	if decls > 1 {
		c.vars[top-1].typ = typ
	}
	var els fnode
	if r.ElseList != nil {
		if els, ok = c.list(r.ElseList, dot); !ok {
			return nil, false
		}
	}
	isMap := typ.Kind() == reflect.Map
	return func(s *fstate, d fval) error {
		defer s.pop(mark)
		v, err := pipe(s, d)
		if err != nil {
			return err
		}
		if v.k != fRV || !v.rv.IsValid() {
			return errSlow
		}
		rv := v.rv
		one := func(key, elem fval) error {
			if decls > 0 {
				s.vars[top] = elem
			}
			if decls > 1 {
				s.vars[top-1] = key
			}
			err := body(s, elem)
			s.pop(iterMark)
			return err
		}
		n := rv.Len()
		if n > 0 && !isMap {
			for i := range n {
				if err := one(fval{k: fInt, n: i}, elemOf(rv.Index(i))); err != nil {
					return err
				}
			}
			return nil
		}
		if n > 0 {
			keys := make([]string, 0, n)
			for it := rv.MapRange(); it.Next(); {
				keys = append(keys, it.Key().String())
			}
			slices.Sort(keys) // fmtsort's order for string keys
			for _, k := range keys {
				if err := one(fval{k: fString, s: k}, elemOf(rv.MapIndex(reflect.ValueOf(k)))); err != nil {
					return err
				}
			}
			return nil
		}
		if els != nil {
			return els(s, d)
		}
		return nil
	}, true
}

// pipeline compiles a pipeline: its commands, each given the previous
// one's value as its final argument, then its declarations (pushed) or
// assignments.
func (c *compiler) pipeline(p *parse.PipeNode, dot reflect.Type) (func(*fstate, fval) (fval, error), reflect.Type, bool) {
	if p == nil || len(p.Cmds) == 0 {
		return nil, nil, false
	}
	cmds := make([]fexpr, len(p.Cmds))
	var typ reflect.Type
	for i, cmd := range p.Cmds {
		f, t, ok := c.command(cmd, dot, i > 0, typ)
		if !ok {
			return nil, nil, false
		}
		cmds[i], typ = f, t
	}
	var slots []int
	for _, d := range p.Decl {
		if len(d.Ident) != 1 {
			return nil, nil, false
		}
		if p.IsAssign {
			i, t, ok := c.lookup(d.Ident[0])
			if !ok || t != typ {
				return nil, nil, false
			}
			slots = append(slots, i)
			continue
		}
		slots = append(slots, -1)
		c.vars = append(c.vars, cvar{d.Ident[0], typ})
	}
	return func(s *fstate, d fval) (fval, error) {
		var v fval
		var err error
		for _, cmd := range cmds {
			if v, err = cmd(s, d, v); err != nil {
				return fval{}, err
			}
		}
		for _, i := range slots {
			if i < 0 {
				s.vars = append(s.vars, v)
			} else {
				s.vars[i] = v
			}
		}
		return v, nil
	}, typ, true
}

// command compiles one command of a pipeline. hasFinal: the previous
// command's value (of type finalType) is its last argument.
func (c *compiler) command(cmd *parse.CommandNode, dot reflect.Type, hasFinal bool, finalType reflect.Type) (fexpr, reflect.Type, bool) {
	args := cmd.Args[1:]
	switch n := cmd.Args[0].(type) {
	case *parse.FieldNode:
		return c.chain(dot, func(_ *fstate, d fval) (fval, error) { return d, nil }, dot, n.Ident, args, hasFinal, finalType)
	case *parse.ChainNode:
		var recv func(*fstate, fval) (fval, error)
		var rt reflect.Type
		switch inner := n.Node.(type) {
		case *parse.PipeNode, *parse.IdentifierNode:
			var ok bool
			if recv, rt, ok = c.operand(inner, dot); !ok {
				return nil, nil, false
			}
		default:
			return nil, nil, false
		}
		return c.chain(dot, recv, rt, n.Field, args, hasFinal, finalType)
	case *parse.VariableNode:
		i, t, ok := c.lookup(n.Ident[0])
		if !ok {
			return nil, nil, false
		}
		recv := func(s *fstate, _ fval) (fval, error) { return s.vars[i], nil }
		if len(n.Ident) == 1 {
			if len(args) > 0 || hasFinal {
				return nil, nil, false
			}
			return noFinal(recv), t, true
		}
		return c.chain(dot, recv, t, n.Ident[1:], args, hasFinal, finalType)
	case *parse.IdentifierNode:
		return c.call(n.Ident, dot, args, hasFinal, finalType)
	}
	if len(args) > 0 || hasFinal {
		return nil, nil, false
	}
	f, t, ok := c.operand(cmd.Args[0], dot)
	if !ok {
		return nil, nil, false
	}
	return noFinal(f), t, true
}

func noFinal(f func(*fstate, fval) (fval, error)) fexpr {
	return func(s *fstate, d, _ fval) (fval, error) { return f(s, d) }
}

// operand compiles a node evaluated on its own: an argument, a
// parenthesized pipeline, a constant (text/template's evalArg with an
// empty interface, or evalCommand of a lone word).
func (c *compiler) operand(n parse.Node, dot reflect.Type) (func(*fstate, fval) (fval, error), reflect.Type, bool) {
	switch n := n.(type) {
	case *parse.DotNode:
		return func(_ *fstate, d fval) (fval, error) { return d, nil }, dot, true
	case *parse.StringNode:
		v := fval{k: fString, s: n.Text}
		return func(*fstate, fval) (fval, error) { return v, nil }, stringType, true
	case *parse.BoolNode:
		v := fval{k: fBool, n: boolInt(n.True)}
		return func(*fstate, fval) (fval, error) { return v, nil }, boolType, true
	case *parse.NumberNode:
		// text/template's idealConstant: only the int case is compiled.
		if n.IsComplex || (n.IsFloat && strings.ContainsAny(n.Text, ".eEpP") && !isHexIntText(n.Text) && !strings.HasPrefix(n.Text, "'")) || !n.IsInt || int64(int(n.Int64)) != n.Int64 {
			return nil, nil, false
		}
		v := fval{k: fInt, n: int(n.Int64)}
		return func(*fstate, fval) (fval, error) { return v, nil }, intType, true
	case *parse.PipeNode:
		if len(n.Decl) > 0 {
			return nil, nil, false
		}
		mark := len(c.vars)
		p, t, ok := c.pipeline(n, dot)
		c.vars = c.vars[:mark]
		return p, t, ok
	case *parse.FieldNode, *parse.ChainNode, *parse.VariableNode, *parse.IdentifierNode:
		cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Args: []parse.Node{n}}
		f, t, ok := c.command(cmd, dot, false, nil)
		if !ok {
			return nil, nil, false
		}
		return func(s *fstate, d fval) (fval, error) { return f(s, d, fval{}) }, t, true
	}
	return nil, nil, false
}

func isHexIntText(s string) bool {
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// chain compiles .A.B.C from a receiver (dot, a variable, a
// parenthesized pipeline): every name but the last is a field, a map key
// or a View method without arguments; the last takes the arguments.
func (c *compiler) chain(dot reflect.Type, recv func(*fstate, fval) (fval, error), rt reflect.Type, idents []string, args []parse.Node, hasFinal bool, finalType reflect.Type) (fexpr, reflect.Type, bool) {
	steps := make([]fstep, len(idents))
	for i, name := range idents {
		last := i == len(idents)-1
		var a []parse.Node
		if last {
			a = args
		}
		f, t, ok := c.field(dot, rt, name, a, last && hasFinal, finalType)
		if !ok {
			return nil, nil, false
		}
		steps[i], rt = f, t
	}
	return func(s *fstate, d, final fval) (fval, error) {
		v, err := recv(s, d)
		if err != nil {
			return fval{}, err
		}
		for _, step := range steps {
			if v, err = step(s, d, v, final); err != nil {
				return fval{}, err
			}
		}
		return v, nil
	}, rt, true
}

// fstep is one name of a chain: a field, a map key or a method of the
// receiver r; a method's arguments are evaluated on the template's dot.
type fstep func(s *fstate, dot, r, final fval) (fval, error)

// field compiles one name of a chain on a receiver of type rt (text/
// template's evalField): a View method, else a struct field, else a map
// key.
func (c *compiler) field(dot, rt reflect.Type, name string, args []parse.Node, hasFinal bool, finalType reflect.Type) (fstep, reflect.Type, bool) {
	if rt == nil {
		return nil, nil, false
	}
	if rt == viewPtr {
		if m, ok := viewMethods[name]; ok {
			return c.viewMethod(dot, m, args, hasFinal, finalType)
		}
		if _, ok := viewPtr.MethodByName(name); ok {
			return nil, nil, false
		}
		rt = rt.Elem()
	} else if rt.NumMethod() > 0 || (rt.Kind() != reflect.Pointer && reflect.PointerTo(rt).NumMethod() > 0) {
		return nil, nil, false // methods other than View's: text/template's
	}
	if len(args) > 0 || hasFinal {
		return nil, nil, false
	}
	switch rt.Kind() {
	case reflect.Struct:
		sf, ok := rt.FieldByName(name)
		if !ok || !sf.IsExported() || len(sf.Index) != 1 {
			return nil, nil, false
		}
		idx := sf.Index[0]
		wrap := wrapper(sf.Type)
		if wrap == nil {
			return nil, nil, false
		}
		return func(_ *fstate, _, r, _ fval) (fval, error) {
			if r.k != fRV {
				return fval{}, errSlow
			}
			v := r.rv
			if v.Kind() == reflect.Pointer {
				if v.IsNil() {
					return fval{}, errSlow
				}
				v = v.Elem()
			}
			return wrap(v.Field(idx)), nil
		}, sf.Type, true
	case reflect.Map:
		if rt.Key() != stringType {
			return nil, nil, false
		}
		wrap := wrapper(rt.Elem())
		if wrap == nil {
			return nil, nil, false
		}
		key := reflect.ValueOf(name)
		return func(_ *fstate, _, r, _ fval) (fval, error) {
			if r.k != fRV {
				return fval{}, errSlow
			}
			v := r.rv.MapIndex(key)
			if !v.IsValid() { // missingkey=error
				return fval{}, errSlow
			}
			return wrap(v), nil
		}, rt.Elem(), true
	}
	return nil, nil, false
}

// wrapper makes fvals of a static type, nil for types left to
// text/template (interfaces, whose values it unwraps).
func wrapper(t reflect.Type) func(reflect.Value) fval {
	switch t {
	case stringType:
		return func(v reflect.Value) fval { return fval{k: fString, s: v.String()} }
	case intType:
		return func(v reflect.Value) fval { return fval{k: fInt, n: int(v.Int())} }
	case boolType:
		return func(v reflect.Value) fval { return fval{k: fBool, n: boolInt(v.Bool())} }
	}
	if t.Kind() == reflect.Interface {
		return nil
	}
	return func(v reflect.Value) fval { return fval{k: fRV, rv: v} }
}

// viewMethod is a View method for compiled templates: its string
// arguments (at most two) and its result.
type viewMethod struct {
	nargs int
	out   reflect.Type
	call  func(v *View, a, b string) (fval, error)
}

// viewMethods are View's methods, called directly. A method missing here
// leaves the templates using it to text/template.
var viewMethods = map[string]viewMethod{
	"Addr":  strMethod((*View).Addr),
	"CIDR":  strMethod((*View).CIDR),
	"Net":   strMethod((*View).Net),
	"Table": strMethod((*View).Table),
	"Var":   strMethod((*View).Var),
	"Jail": {1, reflect.TypeFor[JailView](), func(v *View, name, _ string) (fval, error) {
		j, err := v.jail(name)
		if err != nil {
			return fval{}, err
		}
		return fval{k: fRV, rv: reflect.ValueOf(j).Elem()}, nil
	}},
	"WG": {1, reflect.TypeFor[WGView](), func(v *View, name, _ string) (fval, error) {
		w, err := v.wg(name)
		if err != nil {
			return fval{}, err
		}
		return fval{k: fRV, rv: reflect.ValueOf(w).Elem()}, nil
	}},
	"RoleAddrs": {2, reflect.TypeFor[[]string](), func(v *View, role, ifn string) (fval, error) {
		out, err := v.RoleAddrs(role, ifn)
		if err != nil {
			return fval{}, err
		}
		return fval{k: fRV, rv: reflect.ValueOf(out)}, nil
	}},
}

func strMethod(m func(*View, string) (string, error)) viewMethod {
	return viewMethod{1, stringType, func(v *View, a, _ string) (fval, error) {
		s, err := m(v, a)
		return fval{k: fString, s: s}, err
	}}
}

// viewMethod compiles a call of m on the receiver, with its arguments
// (strings, like every View method's) evaluated on dot.
func (c *compiler) viewMethod(dot reflect.Type, m viewMethod, args []parse.Node, hasFinal bool, finalType reflect.Type) (fstep, reflect.Type, bool) {
	n := len(args)
	if hasFinal {
		n++
	}
	if n != m.nargs {
		return nil, nil, false
	}
	var ev [2]func(*fstate, fval) (fval, error)
	for i, a := range args {
		f, t, ok := c.operand(a, dot)
		if !ok || t != stringType {
			return nil, nil, false
		}
		ev[i] = f
	}
	if hasFinal && finalType != stringType {
		return nil, nil, false
	}
	nExplicit := len(args)
	call := m.call
	return func(s *fstate, d, r, final fval) (fval, error) {
		if r.k != fRV || r.rv.Type() != viewPtr || r.rv.IsNil() {
			return fval{}, errSlow
		}
		var a [2]string
		for i := range nExplicit {
			x, err := ev[i](s, d)
			if err != nil {
				return fval{}, err
			}
			a[i] = x.s
		}
		if hasFinal {
			a[nExplicit] = final.s
		}
		v, _ := r.rv.Interface().(*View) // a pointer: not boxed
		out, err := call(v, a[0], a[1])
		if err != nil {
			return fval{}, errSlow
		}
		return out, nil
	}, m.out, true
}

// call compiles a function call: the template functions (templateFuncs)
// and the builtins and, or, not, eq, ne and len. Others are left to
// text/template.
func (c *compiler) call(name string, dot reflect.Type, args []parse.Node, hasFinal bool, finalType reflect.Type) (fexpr, reflect.Type, bool) {
	n := len(args)
	if hasFinal {
		n++
	}
	ev := make([]func(*fstate, fval) (fval, error), len(args))
	types := make([]reflect.Type, 0, n)
	for i, a := range args {
		f, t, ok := c.operand(a, dot)
		if !ok {
			return nil, nil, false
		}
		ev[i] = f
		types = append(types, t)
	}
	if hasFinal {
		types = append(types, finalType)
	}
	// all evaluates the arguments, the final one last, onto s.args from
	// base on; the caller truncates s.args to base when done.
	all := func(s *fstate, d, final fval) (base int, err error) {
		base = len(s.args)
		for _, f := range ev {
			v, err := f(s, d)
			if err != nil {
				return 0, err
			}
			s.args = append(s.args, v)
		}
		if hasFinal {
			s.args = append(s.args, final)
		}
		return base, nil
	}
	if fn, ok := templateFuncs[name]; ok {
		return userFunc(fn, types, all)
	}
	switch name {
	case "and", "or":
		if n < 1 {
			return nil, nil, false
		}
		or := name == "or"
		typ := types[0]
		for _, t := range types {
			if t != typ {
				typ = nil // known at run time only
			}
		}
		return func(s *fstate, d, final fval) (fval, error) {
			var v fval
			for _, f := range ev {
				var err error
				if v, err = f(s, d); err != nil {
					return fval{}, err
				}
				if t, _ := v.truth(); t == or {
					return v, nil
				}
			}
			if hasFinal {
				v = final
			}
			return v, nil
		}, typ, true
	case "not", "len":
		if n != 1 {
			return nil, nil, false
		}
		isNot := name == "not"
		typ := intType
		if isNot {
			typ = boolType
		}
		return func(s *fstate, d, final fval) (fval, error) {
			base, err := all(s, d, final)
			if err != nil {
				return fval{}, err
			}
			v := s.args[base]
			s.args = s.args[:base]
			if isNot {
				t, _ := v.truth()
				return fval{k: fBool, n: boolInt(!t)}, nil
			}
			l, ok := v.length()
			if !ok {
				return fval{}, errSlow
			}
			return fval{k: fInt, n: l}, nil
		}, typ, true
	case "index":
		// One index into a map with string keys (a missing key is the
		// zero value) or a slice.
		if n != 2 || types[0] == nil {
			return nil, nil, false
		}
		item := types[0]
		var wrap func(reflect.Value) fval
		switch item.Kind() {
		case reflect.Map:
			if item.Key() != stringType || types[1] != stringType {
				return nil, nil, false
			}
		case reflect.Slice, reflect.Array:
			if types[1] != intType {
				return nil, nil, false
			}
		default:
			return nil, nil, false
		}
		if wrap = wrapper(item.Elem()); wrap == nil {
			return nil, nil, false
		}
		zero := reflect.Zero(item.Elem())
		isMap := item.Kind() == reflect.Map
		return func(s *fstate, d, final fval) (fval, error) {
			base, err := all(s, d, final)
			if err != nil {
				return fval{}, err
			}
			a := [2]fval{s.args[base], s.args[base+1]}
			s.args = s.args[:base]
			if a[0].k != fRV || !a[0].rv.IsValid() {
				return fval{}, errSlow
			}
			rv := a[0].rv
			if isMap {
				if x := rv.MapIndex(reflect.ValueOf(a[1].s)); x.IsValid() {
					return wrap(x), nil
				}
				return wrap(zero), nil
			}
			if a[1].n < 0 || a[1].n >= rv.Len() {
				return fval{}, errSlow
			}
			return wrap(rv.Index(a[1].n)), nil
		}, item.Elem(), true
	case "eq", "ne":
		if n < 2 || (name == "ne" && n != 2) {
			return nil, nil, false
		}
		isNe := name == "ne"
		return func(s *fstate, d, final fval) (fval, error) {
			base, err := all(s, d, final)
			if err != nil {
				return fval{}, err
			}
			eq, ok := equal(s.args[base], s.args[base+1:])
			s.args = s.args[:base]
			if !ok {
				return fval{}, errSlow
			}
			return fval{k: fBool, n: boolInt(eq != isNe)}, nil
		}, boolType, true
	}
	return nil, nil, false
}

// userFunc compiles a call of one of templateFuncs, for the signatures
// they have; the arguments' static types must be the parameters' (as
// text/template would accept them).
func userFunc(fn any, types []reflect.Type, all func(*fstate, fval, fval) (int, error)) (fexpr, reflect.Type, bool) {
	ft := reflect.TypeOf(fn)
	if ft.IsVariadic() || ft.NumIn() != len(types) || ft.NumIn() > 2 || ft.NumOut() != 1 {
		return nil, nil, false
	}
	for i, t := range types {
		if t != ft.In(i) {
			return nil, nil, false
		}
	}
	var f func(a []fval) fval
	switch fn := fn.(type) {
	case func(string) string:
		f = func(a []fval) fval { return fval{k: fString, s: fn(a[0].s)} }
	case func(string) []string:
		f = func(a []fval) fval { return fval{k: fRV, rv: reflect.ValueOf(fn(a[0].s))} }
	case func(string, []string) string:
		f = func(a []fval) fval { return fval{k: fString, s: fn(a[0].s, a[1].rv.Interface().([]string))} }
	case func([]string) []string:
		f = func(a []fval) fval { return fval{k: fRV, rv: reflect.ValueOf(fn(a[0].rv.Interface().([]string)))} }
	case func([]int) string:
		f = func(a []fval) fval { return fval{k: fString, s: fn(a[0].rv.Interface().([]int))} }
	default:
		return nil, nil, false
	}
	return func(s *fstate, d, final fval) (fval, error) {
		base, err := all(s, d, final)
		if err != nil {
			return fval{}, err
		}
		a := s.args[base:]
		for i := range types {
			// Not a slice value (untyped): text/template's.
			if k := ft.In(i).Kind(); k == reflect.Slice && (a[i].k != fRV || !a[i].rv.IsValid()) {
				return fval{}, errSlow
			}
		}
		out := f(a)
		s.args = s.args[:base]
		return out, nil
	}, ft.Out(0), true
}

// truth is text/template's isTrue.
func (v fval) truth() (bool, bool) {
	switch v.k {
	case fString:
		return v.s != "", true
	case fInt, fBool:
		return v.n != 0, true
	case fRV:
		rv := v.rv
		switch rv.Kind() {
		case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
			return rv.Len() > 0, true
		case reflect.Bool:
			return rv.Bool(), true
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return rv.Int() != 0, true
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			return rv.Uint() != 0, true
		case reflect.Float32, reflect.Float64:
			return rv.Float() != 0, true
		case reflect.Complex64, reflect.Complex128:
			return rv.Complex() != 0, true
		case reflect.Chan, reflect.Func, reflect.Pointer, reflect.UnsafePointer, reflect.Interface:
			return !rv.IsNil(), true
		case reflect.Struct:
			return true, true
		}
	}
	return false, false
}

// length is the builtin len, for what it takes without error.
func (v fval) length() (int, bool) {
	switch v.k {
	case fString:
		return len(v.s), true
	case fRV:
		switch v.rv.Kind() {
		case reflect.Array, reflect.Chan, reflect.Map, reflect.Slice, reflect.String:
			return v.rv.Len(), true
		}
	}
	return 0, false
}

// basic is v as a string, int or bool for comparison (kind 0: another
// kind, left to text/template).
func (v fval) basic() (fkind, string, int64) {
	switch v.k {
	case fString:
		return fString, v.s, 0
	case fInt, fBool:
		return v.k, "", int64(v.n)
	case fRV:
		switch v.rv.Kind() {
		case reflect.String:
			return fString, v.rv.String(), 0
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return fInt, "", v.rv.Int()
		case reflect.Bool:
			return fBool, "", int64(boolInt(v.rv.Bool()))
		}
	}
	return 0, "", 0
}

// equal is the builtin eq for strings, ints and bools of one kind;
// ok false for anything else (text/template decides, or fails).
func equal(a fval, bs []fval) (eq, ok bool) {
	ka, sa, na := a.basic()
	if ka == 0 {
		return false, false
	}
	for _, b := range bs {
		kb, sb, nb := b.basic()
		if kb != ka {
			return false, false
		}
		if sa == sb && na == nb {
			return true, true
		}
	}
	return false, true
}

// print writes v as text/template's printValue does (fmt.Fprint of the
// value, or of its address when that is what implements error or
// fmt.Stringer).
func (s *fstate) print(v fval) error {
	switch v.k {
	case fString:
		s.w.WriteString(v.s)
		return nil
	case fInt:
		s.w.Write(strconv.AppendInt(s.w.AvailableBuffer(), int64(v.n), 10))
		return nil
	case fBool:
		s.w.WriteString(strconv.FormatBool(v.n != 0))
		return nil
	case fRV:
		rv := v.rv
		if !rv.IsValid() {
			return errSlow
		}
		switch rv.Kind() {
		case reflect.Pointer, reflect.Interface:
			return errSlow
		}
		t := rv.Type()
		if !t.Implements(errorType) && !t.Implements(stringerType) {
			if rv.CanAddr() && (reflect.PointerTo(t).Implements(errorType) || reflect.PointerTo(t).Implements(stringerType)) {
				rv = rv.Addr()
			} else if k := rv.Kind(); k == reflect.Chan || k == reflect.Func {
				return errSlow
			}
		}
		fmt.Fprint(s.w, rv.Interface())
		return nil
	}
	return errSlow
}

var (
	errorType    = reflect.TypeFor[error]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
)
