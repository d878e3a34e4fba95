package driver

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// troubleshootingAnchors are the sections of docs/troubleshooting.md that
// errors may link to: its headings' slugs, agreed with the page's author.
// Every anchor the code links to must be one of them.
var troubleshootingAnchors = []string{
	"no-credential-available",
	"identity-endpoint-unreachable",
	"managed-identity-not-assigned",
	"developer-cli-not-signed-in",
	"token-request-failed",
	"password-authentication-failed",
	"user-is-not-the-tokens-role",
	"no-user-name",
	"token-expired",
	"token-expired-in-flight",
	"clock-skew",
	"wrong-audience",
	"invalid-token-format",
	"token-validation-error",
	"token-type-does-not-match-role",
	"database-does-not-exist",
	"certificate-verification-failed",
	"plain-text-refused",
	"pgbouncer",
	"listener-refused",
	"permission-denied-for-schema",
	"connection-string-refused",
}

// TestAnchorsAreTheTroubleshootingPages: every anchor declared in the
// package's code (a constant of type anchor, or a link written out to the
// troubleshooting page) is a section of the page.
func TestAnchorsAreTheTroubleshootingPages(t *testing.T) {
	known := make(map[string]bool)
	for _, a := range troubleshootingAnchors {
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
