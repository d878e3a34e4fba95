package doccheck

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// godocText is what `go doc -all` shows of the package in dir: the
// package doc and the doc comments of its exported names.
func godocText(t *testing.T, dir string) string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	p, err := doc.NewFromFiles(fset, files, "github.com/pgentra/pgentra/"+filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(p.Doc)
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			b.WriteString(v.Doc)
		}
	}
	funcs := func(fs []*doc.Func) {
		for _, f := range fs {
			b.WriteString(f.Doc)
		}
	}
	values(p.Consts)
	values(p.Vars)
	funcs(p.Funcs)
	for _, ty := range p.Types {
		b.WriteString(ty.Doc)
		values(ty.Consts)
		values(ty.Vars)
		funcs(ty.Funcs)
		funcs(ty.Methods)
	}
	return b.String()
}

// TestGoDocNamesNoInternalPackage: the public packages' documentation
// (what go doc -all shows) names no internal package, which users cannot
// import or read on pkg.go.dev, and points to docs/ for the reference.
func TestGoDocNamesNoInternalPackage(t *testing.T) {
	for _, pkg := range []string{"driver", "token"} {
		text := godocText(t, filepath.Join("..", "..", pkg))
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "internal") {
				t.Errorf("go doc %s: %q names an internal package", pkg, strings.TrimSpace(line))
			}
		}
		t.Logf("go doc %s: %d words of doc comments", pkg, len(strings.Fields(text)))
	}
}
