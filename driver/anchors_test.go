package driver

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgentra/pgentra/internal/doccheck"
)

// troubleshootingAnchors returns the anchors GitHub gives the headings of
// docs/troubleshooting.md (the same rules the repository's link check uses).
func troubleshootingAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	return doccheck.Anchors(string(b))
}

// TestAnchorsAreTheTroubleshootingPages: every anchor declared in the
// package's code (a constant of type anchor, or a link written out to the
// troubleshooting page) is a heading of docs/troubleshooting.md.
func TestAnchorsAreTheTroubleshootingPages(t *testing.T) {
	known := troubleshootingAnchors(t)
	decl := regexp.MustCompile(`\banchor\s*=\s*"([^"]*)"`)
	link := regexp.MustCompile(`troubleshooting\.md#([A-Za-z0-9_-]*)`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []*regexp.Regexp{decl, link} {
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				used++
				if !known[m[1]] {
					t.Errorf("%s links to #%s, which is not a section of docs/troubleshooting.md", f, m[1])
				}
			}
		}
	}
	if used < 15 {
		t.Errorf("found %d anchors in the code; the scan is broken", used)
	}
	// The link the errors show is built from the page's address and an anchor.
	if got := anchorExpired.url(); got != "https://github.com/pgentra/pgentra/blob/main/docs/troubleshooting.md#token-expired" {
		t.Errorf("anchor URL = %q", got)
	}
}
