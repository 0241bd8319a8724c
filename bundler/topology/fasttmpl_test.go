package topology

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"text/template"
)

// runBoth executes t on v with text/template and compiled (when it
// compiles): the compiled output must be text/template's byte for byte,
// or the compiled run must step aside (errSlow) without writing. It
// reports whether the compiled template ran it.
func runBoth(t *testing.T, tm *template.Template, v *View) (fast bool) {
	t.Helper()
	var want bytes.Buffer
	werr := tm.Execute(&want, v)
	c := compileTemplate(tm)
	if c == nil {
		return false
	}
	got := bytes.NewBufferString("before|")
	err := c.execute(got, v)
	switch {
	case err != nil && !errors.Is(err, errSlow):
		t.Errorf("%s: compiled: %v", tm.Name(), err)
	case err != nil && got.String() != "before|":
		t.Errorf("%s: compiled stepped aside after writing %q", tm.Name(), got.String())
	case err != nil:
		return false
	case werr != nil:
		t.Errorf("%s: compiled wrote %q where text/template fails: %v", tm.Name(), got.String(), werr)
	case got.String() != "before|"+want.String():
		t.Errorf("%s: compiled output differs\n--- compiled\n%s\n--- text/template\n%s", tm.Name(), got.String()[len("before|"):], want.String())
	}
	return true
}

func parseTest(t *testing.T, name, src string) *template.Template {
	t.Helper()
	tm, err := template.New(name).Option("missingkey=error").Funcs(templateFuncs).Parse(src)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tm
}

// TestCompiledTemplatesExamples runs every example repo's templates on
// every host of its repo both ways: the compiled ones must all compile,
// run (these are the templates rendering speed is measured on) and write
// what text/template writes.
func TestCompiledTemplatesExamples(t *testing.T) {
	for _, ex := range examples {
		r := loadExample(t, ex)
		for name, rt := range r.tmpls {
			if rt == nil {
				continue
			}
			if rt.c == nil {
				t.Errorf("%s: %s not compiled", ex, name)
				continue
			}
			for _, hn := range r.names {
				var want bytes.Buffer
				if rt.t.Execute(&want, r.view(r.hosts[hn])) != nil {
					continue // a template of another role
				}
				if !runBoth(t, rt.t, r.view(r.hosts[hn])) {
					t.Errorf("%s: %s on %s: compiled template stepped aside", ex, name, hn)
				}
			}
		}
	}
}

// templateCases hold the compiled templates to text/template construct
// by construct. fast: the case must run compiled (where the host has
// what it names); otherwise it may step aside, and must when
// text/template fails.
var templateCases = []struct {
	name, src string
	fast      bool
}{
	{"text", "plain text\n", true},
	{"fields", "{{.Host}} {{.Hostname}} {{.Domain}} {{.Peer}}", true},
	{"methods", `{{.Addr "ipg_b"}} {{.CIDR "ipg_b"}} {{.Net "xbridge"}} {{.Table "email"}} {{.Var "pg_role"}} {{.Addr "peer/ipg_b"}} {{.Addr "10.1.2.3"}}`, true},
	{"chain", `{{(.Jail "pg_j").Addr}} {{(.Jail "node_j").Addrs}} {{(.Jail "nginx_j").Path}}`, true},
	{"struct", `{{.Jail "pg_j"}}|{{index .Jails 0}}`, true},
	{"print kinds", `{{.TunnelPorts}} {{len .Jails}} {{(index .Pipes 0).Remote}} {{(index .Pipes 0).SourcePort}} {{.Vars}} {{.Pipes}}`, false},
	{"ints and bools", `{{range .Pipes}}{{.SourcePort}} {{.Remote}} {{.TargetPort}} {{.Clients}} {{.ClientAddrs}};{{end}}`, true},
	{"slice and map", `{{.TunnelPorts}} {{.Vars}} {{.Jails}}`, true},
	{"range vars", `{{range $i, $j := .Jails}}{{$i}}={{$j.Name}}/{{.Hostname}} {{end}}{{range $j := .Jails}}{{$j.Path}} {{end}}`, true},
	{"range map", `{{range $k, $v := .Vars}}{{$k}}={{$v}};{{end}}{{range .Vars}}{{.}},{{end}}`, true},
	{"range else", `{{range .Jails}}{{.Name}}{{else}}none{{end}}|{{range $x := (.Jail "pg_j").Interfaces}}{{$x}} {{end}}`, true},
	{"range empty else vars", `{{range $i, $e := .WireGuard}}{{$i}}{{else}}none {{len $e}} {{$i}}{{end}}`, true},
	{"range string", `{{range .Host}}x{{end}}`, false},
	{"if else", `{{if eq .Host "serverA"}}A{{else if eq .Host "serverB"}}B{{else}}other{{end}}`, true},
	{"if truth", `{{if .Peer}}p{{end}}{{if .TunnelPorts}}t{{end}}{{if .Jails}}j{{end}}{{if .WireGuard}}w{{else}}-w{{end}}{{if 0}}z{{end}}{{if "x"}}s{{end}}{{if true}}b{{end}}`, true},
	{"with", `{{with .Peer}}peer {{.}}{{else}}alone{{end}} {{with $j := .Jail "pg_j"}}{{$j.Name}} {{.Path}}{{end}} {{with .WireGuard}}w{{else}}no wg{{end}}`, true},
	{"vars", `{{$h := .Host}}{{$a := .Addr "ipg_b"}}{{$h}} {{$a}} {{$.Domain}}{{range .Jails}} {{$h}}/{{$.Host}}/{{.Name}}{{end}}{{$h = "x"}} {{$h}}`, true},
	{"var scope", `{{if true}}{{$x := 1}}{{$x}}{{end}}{{$x := "outer"}}{{range .Jails}}{{$x := .Name}}{{$x}}{{end}}{{$x}}`, true},
	{"and or not", `{{and .Peer .Host}} {{or "" .Host}} {{and "" .Host}} {{or .Jails "no"}} {{not .Peer}} {{not ""}} {{if and (eq .Host "serverA") .Jails}}y{{end}} {{or 0 1}} {{and 1 2 3}}`, true},
	{"and or mixed", `{{(or .Jails .Host) | len}}`, true},
	{"eq ne", `{{eq .Host "serverA" "serverB"}} {{ne .Host "x"}} {{eq 1 1}} {{eq (len .Jails) 3}} {{eq .Host .Hostname}} {{eq true true}}`, true},
	{"eq kinds", `{{eq .Host 1}}`, false},
	{"eq struct", `{{eq (.Jail "pg_j") (.Jail "pg_j")}}`, false},
	{"funcs", `{{join ", " (fields (.Var "resolvers"))}}|{{lower "AbC"}}|{{upper .Host}}|{{quote .Host}}|{{ports .TunnelPorts}}|{{sorted (.Jail "pg_j").Interfaces}}|{{range sorted (fields "c b a")}}{{.}}{{end}}`, true},
	{"pipelines", `{{.Host | lower}} {{"ipg_b" | .Addr}} {{.Jails | len}} {{.Host | eq "serverA"}} {{"x" | printf "%s-%s" "y"}} {{.Host | lower | upper}} {{(.Jail "pg_j").Interfaces | join ","}}`, false},
	{"compiled pipelines", `{{.Host | lower}} {{"ipg_b" | .Addr}} {{.Jails | len}} {{.Host | eq "serverA"}} {{.Host | lower | upper}} {{(.Jail "pg_j").Interfaces | join ","}} {{.Peer | or "none"}} {{.Host | not}}`, true},
	{"parens", `{{(.Host)}} {{((.Jail "pg_j").Addr)}} {{(lower (upper .Host))}}`, true},
	{"numbers", `{{1}} {{-2}} {{0x10}} {{'a'}} {{1.5}} {{1e3}}`, false},
	{"ints", `{{1}} {{-2}} {{0x10}} {{'a'}} {{1_000}}`, true},
	{"unknown jail", `before {{(.Jail "nope").Addr}}`, false},
	{"unknown var", `{{.Var "nope"}}`, false},
	{"unknown ref", `{{.Addr "nope"}}`, false},
	{"missing key", `{{.Vars.nope}}`, false},
	{"map key", `{{.Vars.pg_role}}`, true},
	{"wrong args", `{{if false}}{{.Addr}}{{end}}ok`, false},
	{"not a string", `{{.Addr 1}}`, false},
	{"field args", `{{.Host "x"}}`, false},
	{"unexported", `{{.r}}`, false},
	{"template", `{{define "x"}}X{{end}}{{template "x"}}`, false},
	{"break", `{{range .Jails}}{{break}}{{end}}`, false},
	{"print func", `{{print .Host 1}} {{printf "%03d" 7}} {{index .Jails 1}}`, false},
	{"dot", `{{.}}`, false},
	{"nil", `{{if eq .Peer nil}}x{{end}}`, false},
	{"wireguard", `{{range .WireGuard}}{{.Name}} {{.Addrs}} {{.ListenPort}}{{range .Peers}} {{.Host}} {{.Interface}} {{.Endpoint}} {{.EndpointAddr}}:{{.EndpointPort}} {{join "," .AllowedIPs}}{{end}}{{end}}`, true},
	{"wg method", `{{(.WG "wg0").ListenPort}} {{range (.WG "wg0").Peers}}{{.Host}}{{end}}`, true},
	{"role addrs", `{{range .RoleAddrs "uirig" "ipg_b"}}{{.}} {{end}}{{.RoleAddrs "uirig" "inic"}}`, true},
	{"role addrs unknown", `{{.RoleAddrs "nope" "ipg_b"}}`, false},
	{"pipes", `{{range .Pipes}}{{.Name}} {{.Jail}} {{.Mode}} {{.SourceAddr}}:{{.SourcePort}} {{.SourceIf}} {{.HostIf}} -> {{.TargetAddr}}:{{.TargetPort}} {{.Peer}} {{.Remote}}{{range .Clients}} {{.Host}}/{{.Jail}}/{{.Pipe}}/{{.Addr}}{{end}}{{"\n"}}{{end}}`, true},
	{"index", `{{index .Vars "pg_role"}} {{index .Vars "nope"}}|{{with index .Vars "nope"}}x{{else}}none{{end}} {{(index .Jails 1).Name}} {{index (.Jail "pg_j").Interfaces 0}} {{index .TunnelPorts 0}}`, true},
	{"index out of range", `{{index .Jails 7}}`, false},
	{"index two", `{{index .Jails 0 1}}`, false},
	{"tables", `{{range .Tables}}{{.Name}}={{.Path}} {{end}}`, true},
}

// TestCompiledTemplateCases runs templateCases on a host with jails,
// pipes and vars (uirig) and one with WireGuard (routed).
func TestCompiledTemplateCases(t *testing.T) {
	for _, ex := range []struct{ repo, host string }{{"uirig", "serverA"}, {"uirig", "serverB"}, {"routed", "vpssmall"}} {
		r := loadExample(t, ex.repo)
		h := r.hosts[ex.host]
		if h == nil {
			t.Fatalf("%s: no host %s", ex.repo, ex.host)
		}
		for _, c := range templateCases {
			tm := parseTest(t, c.name, c.src)
			fast := runBoth(t, tm, r.view(h))
			var out bytes.Buffer
			ok := tm.Execute(&out, r.view(h)) == nil
			// A case may only fail where the host lacks what it names.
			if c.fast && ok && !fast {
				t.Errorf("%s/%s: %s: not run compiled", ex.repo, ex.host, c.name)
			}
		}
	}
}

// TestViewMethodsCompiled: every View method has its direct call, so no
// template falls back to text/template for using one.
func TestViewMethodsCompiled(t *testing.T) {
	var missing []string
	for i := range viewPtr.NumMethod() {
		m := viewPtr.Method(i)
		vm, ok := viewMethods[m.Name]
		if !ok {
			missing = append(missing, m.Name)
			continue
		}
		if m.Type.NumIn()-1 != vm.nargs || m.Type.Out(0) != vm.out {
			t.Errorf("%s: compiled as %d args returning %v, is %v", m.Name, vm.nargs, vm.out, m.Type)
		}
		for j := 1; j < m.Type.NumIn(); j++ {
			if m.Type.In(j) != stringType {
				t.Errorf("%s: argument %d is %v, compiled as a string", m.Name, j, m.Type.In(j))
			}
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("View methods without a compiled call: %v", missing)
	}
	if len(viewMethods) != viewPtr.NumMethod() {
		t.Errorf("viewMethods has %d entries, View %d methods", len(viewMethods), viewPtr.NumMethod())
	}
}

// BenchmarkTemplates runs uirig's templates on serverA, compiled and by
// text/template.
func BenchmarkTemplates(b *testing.B) {
	r := loadExample(b, "uirig")
	v := r.view(r.hosts["serverA"])
	var names []string
	for name := range r.tmpls {
		names = append(names, name)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	b.Run("compiled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, name := range names {
				buf.Reset()
				if err := r.tmpls[name].c.execute(&buf, v); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("text-template", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, name := range names {
				buf.Reset()
				if err := r.tmpls[name].t.Execute(&buf, v); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
