package exenv_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	_ "github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/examples/internal/exenv"
	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

// TestDocsShowAdminSQL: the docs tell an administrator to run
// docs/admin.sql, with the command line its header gives.
func TestDocsShowAdminSQL(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	const cmd = "psql -v ON_ERROR_STOP=1 -v role="
	sql, err := os.ReadFile(filepath.Join(root, "docs", "admin.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sql), cmd) {
		t.Errorf("docs/admin.sql does not say how to run it (%s...)", cmd)
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, cmd) && strings.Contains(line, "-f docs/admin.sql") {
				return
			}
		}
	}
	t.Errorf("neither README.md nor docs/*.md shows %q ... -f docs/admin.sql", cmd)
}

// oldREADMESQL is what the README told the administrator before
// docs/admin.sql: it worked only for a superuser.
const oldREADMESQL = `SELECT * FROM pgaadauth_create_principal(:'role', false, false);
GRANT CONNECT ON DATABASE :"db" TO :"role";
GRANT USAGE ON SCHEMA public TO :"role";
CREATE SCHEMA :"role" AUTHORIZATION :"role";
`

var adminSQLRuns atomic.Int64

// TestAdminSQLAsEntraAdministrator: through the front, as an Entra
// administrator like Azure's (CREATEROLE, member of azure_pg_admin, not
// superuser, not a member of the roles it creates), the old README
// statements fail and docs/admin.sql works, twice.
func TestAdminSQLAsEntraAdministrator(t *testing.T) {
	env := extest.Env(t)
	ctx := extest.Context(t, 2*time.Minute)
	admin, err := exenv.Admin(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	var super, createRole, azureAdmin bool
	if err := env.AdminDB.QueryRowContext(ctx, `select rolsuper, rolcreaterole, pg_has_role(rolname, 'azure_pg_admin', 'member')
		from pg_roles where rolname = $1`, admin.Name).Scan(&super, &createRole, &azureAdmin); err != nil {
		t.Fatal(err)
	}
	if super || !createRole || !azureAdmin {
		t.Fatalf("administrator %q: superuser %t, createrole %t, azure_pg_admin %t; want false, true, true", admin.Name, super, createRole, azureAdmin)
	}

	p, err := env.Tenant.AddUserAssignedIdentity(fmt.Sprintf("id-admin-sql-%d", adminSQLRuns.Add(1))) // -count=N shares the emulator
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Register(ctx, p); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "old.sql")
	if err := os.WriteFile(old, []byte(oldREADMESQL), 0o600); err != nil {
		t.Fatal(err)
	}
	err = exenv.RunAdminFile(ctx, env, old, p.Name, exenv.Database)
	if want := fmt.Sprintf("must be member of role %q", p.Name); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("the old README statements as the Entra administrator: %v; want %q", err, want)
	}

	for i := range 2 { // the first run finds the role the old statements created; the second changes nothing
		if err := exenv.RunAdminSQL(ctx, env, p.Name, exenv.Database); err != nil {
			t.Fatalf("docs/admin.sql, run %d: %v", i+1, err)
		}
	}
	var member, usage, create bool
	var owner string
	if err := env.AdminDB.QueryRowContext(ctx, `select pg_has_role($1, $2, 'member'), nspowner::regrole::text,
			has_schema_privilege($2, nspname, 'usage'), has_schema_privilege($2, nspname, 'create')
		from pg_namespace where nspname = $2`, admin.Name, p.Name).Scan(&member, &owner, &usage, &create); err != nil {
		t.Fatal(err)
	}
	if member || owner != pq.QuoteIdentifier(admin.Name) || !usage || !create {
		t.Errorf("after docs/admin.sql: administrator member of the role %t, schema owner %s, role usage %t create %t; want false, %s, true, true",
			member, owner, usage, create, pq.QuoteIdentifier(admin.Name))
	}
}

// TestWebAppRights: after the administrator's steps, an example's role has
// what the README says: it logs in, creates tables (in its own schema,
// through the default search_path), and may not create in public nor read
// another role's tables.
func TestWebAppRights(t *testing.T) {
	target := extest.WebApp(t, "app-rights")
	ctx := extest.Context(t, time.Minute)
	db, err := sql.Open("pgentra", target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx) // one session: what the search_path says holds for the next statements
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	var user, schema string
	var super bool
	if err := conn.QueryRowContext(ctx, "select current_user, current_schema(), rolsuper from pg_roles where rolname = current_user").Scan(&user, &schema, &super); err != nil {
		t.Fatal(err)
	}
	if user != "app-rights" || schema != "app-rights" || super {
		t.Errorf("current_user %q, current_schema %q, superuser %t; want the role, its own schema, no superuser", user, schema, super)
	}
	if _, err := conn.ExecContext(ctx, "create table notes (id int primary key, body text)"); err != nil {
		t.Fatalf("create table in the role's schema: %v", err)
	}
	t.Cleanup(func() { _, _ = target.Env.AdminDB.Exec(`drop table if exists "app-rights".notes`) }) // -count=N reuses the cluster
	if _, err := conn.ExecContext(ctx, "insert into notes values (1, 'x')"); err != nil {
		t.Fatal(err)
	}
	var owner string
	if err := target.Env.AdminDB.QueryRowContext(ctx, `select tableowner from pg_tables where schemaname = 'app-rights' and tablename = 'notes'`).Scan(&owner); err != nil || owner != "app-rights" {
		t.Errorf("notes: owner %q, %v; want a table of the role in its schema", owner, err)
	}
	// docs/admin.sql made the schema, as the Entra administrator (not as
	// the superuser, who could give the schema to the role itself).
	var schemaOwnerSuper, schemaOwnerAdmin bool
	if err := target.Env.AdminDB.QueryRowContext(ctx, `select r.rolsuper, pg_has_role(r.oid, 'azure_pg_admin', 'member')
		from pg_namespace n join pg_roles r on r.oid = n.nspowner where n.nspname = 'app-rights'`).Scan(&schemaOwnerSuper, &schemaOwnerAdmin); err != nil {
		t.Fatal(err)
	}
	if schemaOwnerSuper || !schemaOwnerAdmin {
		t.Errorf("schema app-rights: owner superuser %t, Entra administrator %t; want a schema made by the Entra administrator", schemaOwnerSuper, schemaOwnerAdmin)
	}

	// No CREATE on public, no access to what it was not granted.
	var pe *pq.Error
	if _, err := conn.ExecContext(ctx, "create table public.notes (id int)"); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("create table public.notes: %v, want 42501 (no CREATE on public)", err)
	}
	if _, err := target.Env.AdminDB.ExecContext(ctx, "create table if not exists public.admin_only (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "select * from public.admin_only"); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("select from another role's table: %v, want 42501", err)
	}
	var admin bool
	if err := conn.QueryRowContext(ctx, "select pg_has_role(current_user, 'azure_pg_admin', 'member')").Scan(&admin); err != nil || admin {
		t.Errorf("member of azure_pg_admin: %t, %v; want false", admin, err)
	}
}
