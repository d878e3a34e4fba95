package driver

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// troubleshootingAnchors returns the anchors of docs/troubleshooting.md:
// GitHub's slugs of its headings (lower case, spaces to '-', punctuation
// dropped).
func troubleshootingAnchors(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	var anchors []string
	inFence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		anchors = append(anchors, githubSlug(heading))
	}
	return anchors
}

// githubSlug is GitHub's anchor for a heading: lower case, spaces to '-',
// everything but letters, digits, '-' and '_' dropped.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestGitHubSlug(t *testing.T) {
	for in, want := range map[string]string{
		"User is not the token's role": "user-is-not-the-tokens-role",
		"PgBouncer":                    "pgbouncer",
		"Token expired in flight":      "token-expired-in-flight",
	} {
		if got := githubSlug(in); got != want {
			t.Errorf("githubSlug(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAnchorsAreTheTroubleshootingPages: every anchor declared in the
// package's code (a constant of type anchor, or a link written out to the
// troubleshooting page) is a heading of docs/troubleshooting.md.
func TestAnchorsAreTheTroubleshootingPages(t *testing.T) {
	known := make(map[string]bool)
	for _, a := range troubleshootingAnchors(t) {
		known[a] = true
	}
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
