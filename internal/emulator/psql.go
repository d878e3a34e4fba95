package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// AdminSQLFile returns the path of the repository's docs/admin.sql: the
// statements an Entra administrator runs for an application's role. It is
// found next to this source file, so it exists wherever the module's source
// does (go test, go run).
func AdminSQLFile() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("emulator: cannot locate docs/admin.sql: no caller information")
	}
	path := filepath.Join(filepath.Dir(self), "..", "..", "docs", "admin.sql")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("emulator: docs/admin.sql not found beside the module's source (built with -trimpath?): %w", err)
	}
	return path, nil
}

// EntraAdmin returns the tenant's user upn as a server's Microsoft Entra
// administrator, adding it first if needed (what `az postgres
// flexible-server microsoft-entra-admin create` does): a role with
// CREATEROLE and CREATEDB, member of azure_pg_admin, not superuser.
func (e *Env) EntraAdmin(ctx context.Context, upn string) (entra.Principal, error) {
	if p, ok := e.Tenant.ByName(upn); ok {
		return p, nil
	}
	p, err := e.Tenant.AddUser(upn)
	if err != nil {
		return entra.Principal{}, err
	}
	if _, err := e.CreatePrincipal(ctx, p, true); err != nil {
		return entra.Principal{}, fmt.Errorf("emulator: making %q an Entra administrator: %w", upn, err)
	}
	return p, nil
}

// PSQL runs psql as user through the front — TLS verify-full against the
// emulator's CA, a freshly minted database token as the password, database
// postgres — with -X (no psqlrc), -v ON_ERROR_STOP=1 and args, and returns
// its combined output. The error names psql's exit status and carries its
// output, which never holds the token (it travels in PGPASSWORD only).
func (e *Env) PSQL(ctx context.Context, user entra.Principal, args ...string) ([]byte, error) {
	psql, err := findPSQL()
	if err != nil {
		return nil, err
	}
	tok, _, err := e.Tenant.Mint(user, entra.DatabaseAudience, 0)
	if err != nil {
		return nil, fmt.Errorf("emulator: a token for %q: %w", user.Name, err)
	}
	cmd := exec.CommandContext(ctx, psql, append([]string{"-X", "-v", "ON_ERROR_STOP=1"}, args...)...)
	cmd.Env = append(cleanPGEnv(os.Environ()),
		"PGHOST="+Host, "PGPORT="+strconv.Itoa(e.Front.Port()), "PGDATABASE=postgres",
		"PGUSER="+user.Name, "PGPASSWORD="+tok,
		"PGSSLMODE=verify-full", "PGSSLROOTCERT="+e.CAFile, "PGCONNECT_TIMEOUT=30")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("emulator: psql %s as %q: %w\n%s", strings.Join(args, " "), user.Name, err, out.String())
	}
	return out.Bytes(), nil
}

// cleanPGEnv drops the caller's libpq variables, so psql reaches the front
// with exactly what PSQL sets.
func cleanPGEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PG") {
			out = append(out, kv)
		}
	}
	return out
}

// findPSQL looks for psql on PATH, then in `pg_config --bindir` (Debian
// keeps the server's programs off PATH, psql not always).
func findPSQL() (string, error) {
	if p, err := exec.LookPath("psql"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "psql")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("emulator: psql not found on PATH nor in `pg_config --bindir`; install the PostgreSQL client package")
}
