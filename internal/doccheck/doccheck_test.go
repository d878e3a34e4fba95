package doccheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositoryLinks: every relative link and anchor in README.md and
// docs/*.md resolves.
func TestRepositoryLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	files := []string{"README.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no docs/*.md found")
	}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, rel)
	}
	problems, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Try it without Azure":                   "try-it-without-azure",
		"With GORM, sqlx, pgx, bun":              "with-gorm-sqlx-pgx-bun",
		"`sslmode` refused":                      "sslmode-refused",
		"password authentication failed":         "password-authentication-failed",
		"User is not the token's role":           "user-is-not-the-tokens-role",
		"PgBouncer (port 6432)":                  "pgbouncer-port-6432",
		"LISTEN/NOTIFY":                          "listennotify",
		"Azure set-up — short":                   "azure-set-up--short",
		"[docs](docs/x.md) and more":             "docs-and-more",
		"snake_case_key":                         "snake_case_key",
		"Émulateur: déjà":                        "émulateur-déjà",
		"  trailing  ":                           "trailing",
		"AAD_AUTH_TOKENTYPE_* refused (28000)":   "aad_auth_tokentype_-refused-28000",
		"invalid token format":                   "invalid-token-format",
		"What `go run ./emulator token` prints?": "what-go-run-emulator-token-prints",
	} {
		if got := Slug(heading); got != want {
			t.Errorf("Slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

// TestCheckFindsBrokenLinks: a table of broken links, each of which Check
// must report, beside good ones it must not.
func TestCheckFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/page.md", "# Page\n\n## Some Section\n\n### Repeated\n\n### Repeated\n\n```\n## Not a heading\n```\n")
	write("docs/admin.sql", "select 1;\n")
	write("examples/gorm/main.go", "package main\n")

	for _, c := range []struct {
		link   string
		broken bool
	}{
		{"docs/page.md", false},
		{"docs/page.md#page", false},
		{"docs/page.md#some-section", false},
		{"docs/page.md#repeated", false},
		{"docs/page.md#repeated-1", false},
		{"docs/admin.sql", false},
		{"examples/gorm", false},
		{"examples/gorm/", false},
		{"./docs/../docs/page.md", false},
		{"#top", false},
		{"https://example.invalid/missing.md", false},
		{"mailto:someone@example.invalid", false},

		{"docs/missing.md", true},
		{"docs/page.md#missing-section", true},
		{"docs/page.md#Some-Section", true}, // anchors are lower case
		{"docs/page.md#not-a-heading", true},
		{"docs/page.md#repeated-2", true},
		{"docs/admin.sql#x", true},
		{"examples/gorm#x", true},
		{"examples/missing/", true},
		{"#nowhere", true},
		{"../outside.md", true},
		{"/docs/page.md", true},
		{"", true},
	} {
		t.Run(c.link, func(t *testing.T) {
			write("README.md", "# Top\n\nSee [the link]("+c.link+").\n")
			problems, err := Check(root, []string{"README.md"})
			if err != nil {
				t.Fatal(err)
			}
			if c.broken && len(problems) == 0 {
				t.Errorf("link %q: no problem reported", c.link)
			}
			if !c.broken && len(problems) > 0 {
				t.Errorf("link %q: %v", c.link, problems)
			}
		})
	}
}

// TestLinksSyntax: the forms of link found, and the places skipped.
func TestLinksSyntax(t *testing.T) {
	text := strings.Join([]string{
		"[a](a.md) and ![img](img.png \"title\") and [b](<b c.md>)",
		"`[not](code.md)`",
		"```go",
		"[not](fenced.md)",
		"```",
		"[ref]: ref.md",
		"[nested [x]](nested.md)",
		"[paren](dir/f(1).md)",
	}, "\n")
	var got []string
	for _, l := range Links(text) {
		got = append(got, l.Target)
	}
	want := "a.md img.png b c.md ref.md nested.md dir/f(1).md"
	if strings.Join(got, " ") != want {
		t.Errorf("Links = %q, want %q", strings.Join(got, " "), want)
	}
}

// TestCheckRelativeToFile: a link in docs/x.md is relative to docs/.
func TestCheckRelativeToFile(t *testing.T) {
	root := t.TempDir()
	for name, text := range map[string]string{
		"README.md":       "# R\n",
		"docs/x.md":       "# X\n[up](../README.md#r) [same](y.md#y) [bad](docs/y.md)\n",
		"docs/y.md":       "# Y\n",
		"examples/a/a.go": "package a\n",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	problems, err := Check(root, []string{"docs/x.md"})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Target != "docs/y.md" || problems[0].Line != 2 {
		t.Errorf("problems = %v, want only docs/y.md on line 2 (docs/docs/y.md does not exist)", problems)
	}
}

// troubleshootingAnchors are the cases pgentra's error messages link to
// (docs/troubleshooting.md#<anchor>): each must be a ### heading there.
var troubleshootingAnchors = []string{
	"no-credential-available", "identity-endpoint-unreachable", "managed-identity-not-assigned",
	"developer-cli-not-signed-in", "token-request-failed", "password-authentication-failed",
	"user-is-not-the-tokens-role", "no-user-name", "token-expired", "token-expired-in-flight",
	"clock-skew", "wrong-audience", "invalid-token-format", "token-validation-error",
	"token-type-does-not-match-role", "database-does-not-exist", "certificate-verification-failed",
	"plain-text-refused", "pgbouncer", "listener-refused", "permission-denied-for-schema",
	"connection-string-refused",
}

func TestTroubleshootingAnchors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	h3 := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "### "); ok {
			h3[Slug(rest)] = true
		}
	}
	for _, a := range troubleshootingAnchors {
		if !h3[a] {
			t.Errorf("docs/troubleshooting.md has no ### heading whose anchor is #%s", a)
		}
	}
}

// TestREADMETestCommand: the test command the README gives is the one CI
// runs.
func TestREADMETestCommand(t *testing.T) {
	const cmd = "bash scripts/test"
	root := filepath.Join("..", "..")
	hasLine := func(file string, ok func(line string) bool) bool {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if ok(strings.TrimSpace(line)) {
				return true
			}
		}
		return false
	}
	if !hasLine("README.md", func(l string) bool { return l == cmd || strings.HasPrefix(l, cmd+" ") }) {
		t.Errorf("README.md gives no line starting with %q", cmd)
	}
	if !hasLine(filepath.Join(".ci", "run"), func(l string) bool { return l == cmd }) {
		t.Errorf(".ci/run does not run %q", cmd)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "test")); err != nil {
		t.Error(err)
	}
}
