package doccheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// outsideCitation matches references to documents that are not in the
// repository: the design notes and fact sheets the project was written
// from. Inside the repository they are docs/design.md and
// docs/azure-behavior.md.
var outsideCitation = regexp.MustCompile(`DESIGN(\.md)? ?§|\.\./shared|/shared/|\bclaims\.md|azure-facts\.md`)

func citesOutside(path, text string) []string {
	var bad []string
	for i, line := range strings.Split(text, "\n") {
		if outsideCitation.MatchString(line) {
			bad = append(bad, filepath.ToSlash(path)+":"+strconv.Itoa(i+1)+": "+strings.TrimSpace(line))
		}
	}
	return bad
}

// TestNoOutsideCitations: no source, script or document cites a document
// outside the repository.
func TestNoOutsideCitations(t *testing.T) {
	root := filepath.Join("..", "..")
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".sql", ".sh", ".yaml", ".yml", "":
		default:
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == filepath.Join("internal", "doccheck", "citations_test.go") {
			return nil // the patterns themselves
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		for _, bad := range citesOutside(rel, string(b)) {
			t.Errorf("cites a document outside the repository: %s", bad)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("checked only %d files", n)
	}
}

func TestCitesOutside(t *testing.T) {
	for _, c := range []struct {
		path, text string
		bad        bool
	}{
		{"driver/x.go", "// see DESIGN §4", true},
		{"driver/x.go", "// (DESIGN.md §6)", true},
		{"x.md", "in ../shared/notes", true},
		{"token/x.go", "// Claim sets from /work/shared/claims.md.", true},
		{"internal/x.go", "// as azure-facts.md quotes them", true},
		{"docs/design.md", "see azure-facts.md", true},
		{"docs/design.md", "see [azure-behavior.md](azure-behavior.md)", false},
		{"driver/x.go", "// as docs/azure-behavior.md quotes them", false},
		{"README.md", "[design](docs/design.md)", false},
	} {
		if got := len(citesOutside(c.path, c.text)) > 0; got != c.bad {
			t.Errorf("citesOutside(%q, %q) = %t, want %t", c.path, c.text, got, c.bad)
		}
	}
}
