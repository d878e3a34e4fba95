package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/internal/extest"
	"github.com/pgentra/pgentra/internal/emulator"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

// clearAzureEnv makes the test independent of the machine's environment.
func clearAzureEnv(t *testing.T) {
	for _, k := range []string{"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT",
		"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_POSTGRESQL_CONNECTIONSTRING"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// Without PGHOST the program starts its own emulator, says so in one line,
// and then prints what the C# sample prints.
func TestQuickstartStartsEmulator(t *testing.T) {
	extest.Env(t) // skip early (not in CI) when PostgreSQL is missing
	clearAzureEnv(t)
	var out bytes.Buffer
	if err := run(extest.Context(t, time.Minute), &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 lines, got %d:\n%s", len(lines), out.String())
	}
	if !strings.HasPrefix(lines[0], "No PGHOST set: using the offline Azure emulator") {
		t.Errorf("line 1 = %q", lines[0])
	}
	checkSample(t, lines[1:])
	if v := os.Getenv("IDENTITY_ENDPOINT"); v != "" {
		t.Errorf("IDENTITY_ENDPOINT left set: %q", v)
	}
}

// With PGHOST/PGUSER/PGDATABASE set it connects there with
// DefaultAzureCredential — here the shared emulator, playing App Service.
func TestQuickstartUsesPGEnvironment(t *testing.T) {
	clearAzureEnv(t)
	target := extest.WebApp(t, "app-orders")
	env := target.Env
	env.Front.Reset()
	t.Setenv("PGHOST", emulator.Host)
	t.Setenv("PGPORT", strconv.Itoa(env.Front.Port()))
	t.Setenv("PGUSER", target.Role)
	t.Setenv("PGDATABASE", "postgres")
	t.Setenv("PGSSLROOTCERT", env.CAFile) // PGSSLMODE unset: pgentra uses verify-full

	var out bytes.Buffer
	if err := run(extest.Context(t, time.Minute), &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 lines (no emulator line), got %d:\n%s", len(lines), out.String())
	}
	checkSample(t, lines)

	logins := env.Front.Logins()
	if len(logins) != 1 || !logins[0].OK || !logins[0].TLS || logins[0].User != "app-orders" {
		t.Errorf("front logins = %+v, want one TLS login as app-orders", logins)
	}
}

func checkSample(t *testing.T, lines []string) {
	t.Helper()
	want := []string{"Getting access token from Azure AD...", "Opening connection using access token...", "Connected!"}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %q, want %q", lines[i], w)
		}
	}
	if !strings.HasPrefix(lines[3], "Postgres version: PostgreSQL ") {
		t.Errorf("version line = %q", lines[3])
	}
}
