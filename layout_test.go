package statelab_test

// The arrows between the module's layers, checked from the source: the lab
// layer imports the protocol packages, never the other way round. This test
// needs no namespace, tool or network, so it runs wherever `go test ./...`
// does (the packages whose tests enter the lab's namespace skip elsewhere).

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// layer is a package's place in the architecture.
type layer int

const (
	engine     layer = iota // tcpstate and its harness: the standard library only
	protocol                // the protocol libraries: the engine, other protocol packages, third-party modules
	labLayer                // lab/...: the experiment API; may use the protocol packages, never an experiment
	experiment              // experiments/X: one group; never another group or the program
	program                 // cmd/...: may import anything
)

var layerNames = [...]string{"engine", "protocol", "lab", "experiment", "program"}

func (l layer) String() string { return layerNames[l] }

// layerOf places a package (its path inside the module) in its layer.
func layerOf(rel string) (layer, bool) {
	under := func(root string) bool { return rel == root || strings.HasPrefix(rel, root+"/") }
	switch {
	case rel == "tcpstate", rel == "tcpstate/tcptest":
		return engine, true
	case under("tcpstate"), under("udpdns"), under("quicconn"), under("httpstate"):
		return protocol, true
	case under("lab"):
		return labLayer, true
	case strings.HasPrefix(rel, "experiments/") && strings.Count(rel, "/") == 1:
		return experiment, true
	case under("cmd"):
		return program, true
	case rel == ".":
		return program, true // this test
	}
	return 0, false
}

// arrowViolation says why package from (inside the module) may not import
// path, or returns "" if it may. mod is the module path; test says the
// import is in a _test.go file.
func arrowViolation(mod, from, path string, test bool) string {
	fl, ok := layerOf(from)
	if !ok {
		return fmt.Sprintf("%s is in no layer: add it to layerOf in layout_test.go", from)
	}
	std := !strings.Contains(strings.SplitN(path, "/", 2)[0], ".")
	if path != mod && !strings.HasPrefix(path, mod+"/") {
		if fl == engine && !std {
			return fmt.Sprintf("%s (%s) imports %s: the engine uses the standard library only", from, fl, path)
		}
		return ""
	}
	to := strings.TrimPrefix(strings.TrimPrefix(path, mod), "/")
	tl, ok := layerOf(to)
	if !ok {
		return fmt.Sprintf("%s is in no layer: add it to layerOf in layout_test.go", to)
	}
	switch {
	case fl == engine && tl != engine:
		return fmt.Sprintf("%s (engine) imports %s (%s): the engine uses the standard library only", from, to, tl)
	case fl == protocol && tl > protocol:
		// The raw driver's and the NAT's own tests need a network namespace;
		// the lab's sandbox makes one. The packages themselves take theirs
		// as a parameter.
		if test && to == "lab/sandbox" {
			return ""
		}
		return fmt.Sprintf("%s (protocol) imports %s (%s): a protocol package takes what it needs from its surroundings as a parameter", from, to, tl)
	case fl == labLayer && tl > labLayer:
		return fmt.Sprintf("%s (lab) imports %s (%s): the lab API knows no experiment", from, to, tl)
	case fl == experiment && tl == experiment && to != from:
		return fmt.Sprintf("%s imports %s: each experiment group stands alone", from, to)
	case fl == experiment && tl == program:
		return fmt.Sprintf("%s imports %s: experiments do not import the program", from, to)
	}
	return ""
}

func TestArrowViolation(t *testing.T) {
	const mod = "github.com/statelab/statelab"
	tests := []struct {
		name, from, path string
		test, bad        bool
	}{
		{"engine imports the standard library", "tcpstate", "encoding/binary", false, false},
		{"engine imports no third-party module", "tcpstate", "golang.org/x/sys/unix", false, true},
		{"engine tests use the harness", "tcpstate", mod + "/tcpstate/tcptest", true, false},
		{"engine imports no protocol package", "tcpstate", mod + "/tcpstate/rawtcp", false, true},
		{"driver imports the engine", "tcpstate/rawtcp", mod + "/tcpstate", false, false},
		{"driver imports no sandbox", "tcpstate/rawtcp", mod + "/lab/sandbox", false, true},
		{"driver tests may enter the sandbox", "tcpstate/rawtcp", mod + "/lab/sandbox", true, false},
		{"protocol package imports no capture, even in tests", "udpdns", mod + "/lab/capture", true, true},
		{"protocol package imports no experiment", "httpstate", mod + "/experiments/httpexp", false, true},
		{"protocol package imports another", "udpdns/dnsfault", mod + "/udpdns", false, false},
		{"lab draws the engine's diagram", "lab/htmlreport", mod + "/tcpstate", false, false},
		{"lab imports no experiment", "lab", mod + "/experiments/tcpexp", false, true},
		{"experiment imports the lab", "experiments/dnsexp", mod + "/lab/capture", false, false},
		{"experiment imports no other group", "experiments/dnsexp", mod + "/experiments/tcpexp", false, true},
		{"experiment imports no program", "experiments/dnsexp", mod + "/cmd/statelab", false, true},
		{"program imports experiments", "cmd/statelab", mod + "/experiments/quicexp", false, false},
		{"a new folder must be placed", "newthing", "fmt", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := arrowViolation(mod, tt.from, tt.path, tt.test)
			if (got != "") != tt.bad {
				t.Errorf("arrowViolation(%q, %q, test=%v) = %q, want violation %v", tt.from, tt.path, tt.test, got, tt.bad)
			}
		})
	}
}

// TestArrowsRunOneWay checks every import of every Go file in the module
// (examples/ is a module of its own and is not walked).
func TestArrowsRunOneWay(t *testing.T) {
	mod := modulePath(t)
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "examples") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		from := filepath.ToSlash(filepath.Dir(p))
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if v := arrowViolation(mod, from, path, strings.HasSuffix(p, "_test.go")); v != "" {
				t.Errorf("%s: %s", fset.Position(imp.Pos()), v)
			}
			checked++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked %d imports; the walk missed the module", checked)
	}
}

// TestEveryLayerIsPresent keeps layerOf honest: each protocol package the
// README names exists, so a rename cannot silently take it out of the check.
func TestEveryLayerIsPresent(t *testing.T) {
	for _, dir := range []string{"tcpstate", "tcpstate/tcptest", "tcpstate/rawtcp", "udpdns", "udpdns/dnsfault",
		"quicconn", "quicconn/lb", "quicconn/nat", "httpstate", "lab", "lab/sandbox", "lab/capture", "cmd/statelab"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		if !slices.ContainsFunc(ents, func(e fs.DirEntry) bool {
			return strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go")
		}) {
			t.Errorf("%s has no Go package", dir)
		}
	}
}

func modulePath(t *testing.T) string {
	f, err := os.Open("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "module "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatal("go.mod names no module")
	return ""
}
