package main

import (
	"bytes"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/pgentra/pgentra/examples/internal/extest"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

// tokenOut runs the program and returns stdout, which must be one JWT line.
func tokenOut(t *testing.T, args ...string) (token.Claims, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(extest.Context(t, time.Minute), &stdout, &stderr, args); err != nil {
		t.Fatalf("run %q: %v\nstderr:\n%s", args, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 1 || strings.Count(lines[0], ".") != 2 {
		t.Fatalf("stdout is not exactly one JWT line: %q", stdout.String())
	}
	tok := lines[0]
	if strings.Contains(stderr.String(), tok) || strings.Contains(stderr.String(), strings.Split(tok, ".")[2]) {
		t.Errorf("stderr contains the token")
	}
	c, err := token.ParseClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	return c, tok, stderr.String()
}

func TestManagedIdentityToken(t *testing.T) {
	target := extest.WebApp(t, "app-token") // App Service: IDENTITY_ENDPOINT, IDENTITY_HEADER
	t.Setenv("PGHOST", "")

	c, tok, stderr := tokenOut(t, "-credential", "managed_identity")
	if c.Audience != entra.DatabaseAudience {
		t.Errorf("aud = %q, want %q", c.Audience, entra.DatabaseAudience)
	}
	if c.ObjectID != target.Principal.ObjectID || c.TenantID != target.Env.Tenant.ID() {
		t.Errorf("token for oid %s tid %s, want %s", c.ObjectID, c.TenantID, target.Principal.ObjectID)
	}
	if !strings.Contains(stderr, "scope "+token.ScopePublic) {
		t.Errorf("stderr lacks the scope:\n%s", stderr)
	}

	// The shell flow: the printed token as a plain password with lib/pq.
	db, err := sql.Open("postgres", target.DSN+" password="+tok) // a JWT needs no quoting
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var user string
	if err := db.QueryRow("select current_user").Scan(&user); err != nil || user != "app-token" {
		t.Errorf("psql-style login: user %q, %v", user, err)
	}
}

func TestScopeFromHostAndFlag(t *testing.T) {
	extest.WebApp(t, "app-token")
	t.Setenv("PGHOST", "orders.postgres.database.chinacloudapi.cn")
	c, _, _ := tokenOut(t, "-credential", "default") // DefaultAzureCredential → App Service identity
	if want := "https://ossrdbms-aad.database.chinacloudapi.cn"; c.Audience != want {
		t.Errorf("aud from $PGHOST = %q, want %q", c.Audience, want)
	}
	c, _, _ = tokenOut(t, "-credential", "managed_identity", "-host", "orders.postgres.database.azure.com")
	if c.Audience != entra.DatabaseAudience {
		t.Errorf("aud from -host = %q", c.Audience)
	}
	c, _, _ = tokenOut(t, "-credential", "managed_identity", "-scope", token.ScopeCosmos)
	if want := "https://token.postgres.cosmos.azure.com"; c.Audience != want {
		t.Errorf("aud from -scope = %q, want %q", c.Audience, want)
	}
}

func TestBadCredential(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(extest.Context(t, time.Minute), &stdout, &stderr, []string{"-credential", "azure_clii"})
	if err == nil || !strings.Contains(err.Error(), "unknown -credential") || stdout.Len() != 0 {
		t.Errorf("err = %v, stdout %q", err, stdout.String())
	}
}
