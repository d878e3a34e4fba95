package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestMigrate(t *testing.T) {
	target := extest.WebApp(t, "app-migrate")
	ctx := extest.Context(t, time.Minute)
	// Start from an empty schema, whatever ran before in this binary.
	if _, err := target.Env.AdminDB.ExecContext(ctx, `drop table if exists "app-migrate".accounts, "app-migrate".schema_migrations`); err != nil {
		t.Fatal(err)
	}
	rest := `steps(-1) → version 1
steps(1) → version 2
up again: migrate.ErrNoChange ("no change"), not an error
`
	// The first run applies both migrations; a second run (the next
	// deploy) finds nothing to do and still succeeds.
	for i, up := range []string{"up: applied", "up: no change"} {
		want := "migrations table: \"app-migrate\".schema_migrations\n" + up + " → version 2\n" + rest
		var out bytes.Buffer
		if err := run(ctx, &out, target.DSN); err != nil {
			t.Fatalf("run %d: %v\noutput:\n%s", i+1, err, out.String())
		}
		if out.String() != want {
			t.Errorf("run %d output:\n%s\nwant:\n%s", i+1, out.String(), want)
		}
	}

	// The database, seen by the superuser: the version golang-migrate
	// recorded, and tables created by (and belonging to) the Entra role.
	admin := target.Env.AdminDB
	var version int
	var dirty bool
	if err := admin.QueryRowContext(ctx, `select version, dirty from "app-migrate".schema_migrations`).Scan(&version, &dirty); err != nil || version != 2 || dirty {
		t.Errorf("schema_migrations = (%d, dirty %t, %v), want (2, false)", version, dirty, err)
	}
	var owner, account string
	err := admin.QueryRowContext(ctx, `select t.tableowner, a.email || ' ' || a.display_name || ' ' || a.created_by
		from pg_tables t, "app-migrate".accounts a where t.schemaname = 'app-migrate' and t.tablename = 'accounts'`).Scan(&owner, &account)
	if err != nil || owner != "app-migrate" || account != "ops@example.com ops app-migrate" {
		t.Errorf("accounts: owner %q, row %q, %v; want app-migrate, \"ops@example.com ops app-migrate\"", owner, account, err)
	}
}

// TestLock shows golang-migrate's pg_advisory_lock working through pgentra:
// while another session holds the lock, the Entra role's session waits on it
// and Up gives up after LockTimeout; the abandoned wait then takes the lock,
// which only Close gives back.
func TestLock(t *testing.T) {
	target := extest.WebApp(t, "app-migrate")
	ctx := extest.Context(t, 30*time.Second)
	admin := target.Env.AdminDB

	m, config, err := newMigrate(target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	closeM := sync.OnceValues(m.Close)
	defer closeM()
	if config.DatabaseName == "" || config.SchemaName != "app-migrate" {
		t.Errorf("WithInstance filled in %+v, want the database and the role's schema", config)
	}
	// Another migrator (here: the superuser) holds the same lock.
	id, err := database.GenerateAdvisoryLockId(config.DatabaseName, config.SchemaName, config.MigrationsTable)
	if err != nil {
		t.Fatal(err)
	}
	other, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, `select pg_advisory_lock($1)`, id); err != nil {
		t.Fatal(err)
	}

	m.LockTimeout = 300 * time.Millisecond
	if err := m.Up(); !errors.Is(err, migrate.ErrLockTimeout) {
		t.Fatalf("Up while another session holds the lock: %v, want migrate.ErrLockTimeout", err)
	}
	waitFor(t, ctx, admin, `select count(*) from pg_stat_activity
		where usename = 'app-migrate' and wait_event_type = 'Lock' and wait_event = 'advisory'`, 1)

	if _, err := other.ExecContext(ctx, `select pg_advisory_unlock($1)`, id); err != nil {
		t.Fatal(err)
	}
	const held = `select count(*) from pg_locks l join pg_stat_activity a using (pid)
		where l.locktype = 'advisory' and l.granted and a.usename = 'app-migrate'`
	waitFor(t, ctx, admin, held, 1) // the abandoned wait got it
	if err := m.Up(); !errors.Is(err, database.ErrLocked) {
		t.Errorf("Up after a lock timeout: %v, want database.ErrLocked", err)
	}
	if serr, derr := closeM(); serr != nil || derr != nil {
		t.Fatalf("Close: %v, %v", serr, derr)
	}
	waitFor(t, ctx, admin, held, 0) // closing the session let go of it

	m2, _, err := newMigrate(target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		t.Errorf("Up on a new instance: %v", err)
	}

	// lock_timeout through pgentra's DSN bounds the wait inside
	// WithInstance, which LockTimeout does not.
	if _, err := other.ExecContext(ctx, `select pg_advisory_lock($1)`, id); err != nil {
		t.Fatal(err)
	}
	defer other.ExecContext(context.Background(), `select pg_advisory_unlock($1)`, id)
	done := make(chan error, 1)
	go func() {
		m3, _, err := newMigrate(target.DSN + " options='-c lock_timeout=300'")
		if err == nil {
			m3.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "55P03") {
			t.Errorf("newMigrate with lock_timeout while locked: %v, want SQLSTATE 55P03", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("newMigrate with lock_timeout still waiting for the lock after 10s")
	}
}

// TestFailedMigration checks golang-migrate's error report and dirty flag
// through pgentra: it reads *pq.Error with a type assertion, which works
// because pgentra hands out pq's own connections.
func TestFailedMigration(t *testing.T) {
	target := extest.WebApp(t, "app-migrate")
	t.Cleanup(func() {
		target.Env.AdminDB.Exec(`drop table if exists "app-migrate".broken_migrations`)
	})
	db, err := sql.Open("pgentra", target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	driver, err := postgres.WithInstance(db, &postgres.Config{MigrationsTable: "broken_migrations"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := iofs.New(fstest.MapFS{
		"1_broken.up.sql":   {Data: []byte("create table broken (id int,);")},
		"1_broken.down.sql": {Data: []byte("drop table broken;")},
	}, ".")
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "postgres", driver)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Up()
	if err == nil || !strings.Contains(err.Error(), `migration failed: syntax error at or near ")" (column 29)`) {
		t.Errorf("Up: %v, want the server's syntax error with its column", err)
	}
	if v, dirty, err := m.Version(); v != 1 || !dirty || err != nil {
		t.Errorf("Version = %d, dirty %t, %v; want 1, dirty", v, dirty, err)
	}
}

// waitFor polls query (one integer) on db until it returns want.
func waitFor(t *testing.T, ctx context.Context, db *sql.DB, query string, want int) {
	t.Helper()
	var got int
	for {
		if err := db.QueryRowContext(ctx, query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		if got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s = %d, want %d", query, got, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
