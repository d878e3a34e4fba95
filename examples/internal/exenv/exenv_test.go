package exenv_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	_ "github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/examples/internal/exenv"
	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

// TestAdminStepsAreTheREADMEs: the README's "Schemas and migrations"
// section shows the statements the examples' administrator runs, for role
// "id-orders" in database "app".
func TestAdminStepsAreTheREADMEs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "\n## Schemas and migrations\n")
	if i < 0 {
		t.Fatal(`README has no "Schemas and migrations" section`)
	}
	section := readme[i+1:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	steps := exenv.AdminSteps("id-orders", "app")
	if len(steps) == 0 {
		t.Fatal("no steps")
	}
	block := strings.Join(steps, "\n")
	if !strings.Contains(section, "```sql\n"+block+"\n```") {
		t.Errorf("the section lacks the examples' steps as one SQL block:\n%s", block)
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
