package topology

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"text/template"
)

// bigNumber matches number literals from 10,000 up (five digits, four
// after a base prefix, a two-digit exponent): a template ranging over
// one, or printing that wide, keeps text/template busy for seconds.
var bigNumber = regexp.MustCompile(`[0-9][0-9_]{4}|0[xXoObB][0-9a-fA-F_]{4}|[0-9.][eEpP][+]?[0-9]{2}`)

// FuzzCompiledTemplate: for any template text/template parses, the
// compiled template writes exactly what text/template writes on the same
// host, or steps aside before writing anything (runBoth), on a host with
// jails, pipes and vars (uirig serverA) and one with WireGuard (routed
// vpssmall). Seeds: every example repo's templates, the constructs the
// compiler takes or leaves, and templateCases.
func FuzzCompiledTemplate(f *testing.F) {
	for _, ex := range examples {
		paths, _ := filepath.Glob(filepath.Join(infraDir, ex, "templates", "*"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(b))
		}
	}
	for _, s := range []string{
		`{{range $i, $j := .Jails}}{{$i}}={{$j.Name}}{{else}}none{{end}}`,
		`{{with $x := .Peer}}{{$x}}{{else with .Host}}{{.}}{{end}}`,
		`{{if and (eq .Host "serverA") (ne .Peer "")}}y{{else if .Jails}}j{{end}}`,
		`{{.Host | lower | printf "%s-%d" 7}} {{index .Vars "pg_role"}} {{len .TunnelPorts}}`,
		`{{range .Pipes}}{{.SourcePort}} {{.Remote}}{{range .Clients}} {{.Addr}}{{end}}{{end}}`,
		`{{$h := .Host}}{{range .WireGuard}}{{$h}} {{.Name}} {{range .Peers}}{{.Endpoint}}{{end}}{{end}}{{$h = "x"}}{{$h}}`,
		`{{(.Jail "pg_j").Addr}} {{.Addr "peer/ipg_b"}} {{ports .TunnelPorts}} {{join "," (sorted (fields "b a"))}}`,
		`{{or 0 "" .Jails}} {{not .TunnelPorts}} {{eq 1 1 2}} {{-1}} {{0x1F}} {{'x'}}`,
	} {
		f.Add(s)
	}
	for _, c := range templateCases {
		f.Add(c.src)
	}
	repos := map[string]*Repo{}
	for _, ex := range []string{"uirig", "routed"} {
		repos[ex] = loadExample(f, ex)
	}
	views := []*View{repos["uirig"].view(repos["uirig"].hosts["serverA"]), repos["routed"].view(repos["routed"].hosts["vpssmall"])}
	f.Fuzz(func(t *testing.T, src string) {
		if bigNumber.MatchString(src) {
			return // {{range 2000000000}} or %999999d: slow in text/template itself
		}
		tm, err := template.New("fuzz").Option("missingkey=error").Funcs(templateFuncs).Parse(src)
		if err != nil {
			return
		}
		for _, v := range views {
			runBoth(t, tm, v)
		}
	})
}
