// Migrate shows golang-migrate on pgentra: migrations embedded in the binary
// (source/iofs with //go:embed) applied through database/postgres.WithInstance
// over sql.Open("pgentra", dsn); Up, the version, Steps(-1) down and Steps(1)
// back up, and Up again returning migrate.ErrNoChange, which a deploy treats
// as success.
//
//	cd examples && go run ./migrate      # offline emulator, or PGHOST=... for Azure
//
// Copy newMigrate(). WithInstance is the way to put pgentra underneath:
// golang-migrate's own "postgres://" database URLs open lib/pq directly,
// which needs a password in the URL, so a token would have to be pasted in
// and would expire. postgres.Config needs nothing: DatabaseName and
// SchemaName default to current_database() and current_schema(),
// MigrationsTable to schema_migrations.
//
// Things to know:
//
//   - Each Entra identity is its own role, and the default search_path
//     ("$user", public) makes current_schema() the role's own schema. Set
//     SchemaName (and search_path) explicitly if a pipeline identity and the
//     app's identity both migrate: the schema names the migrations table and
//     is part of the advisory lock's key.
//   - The lock is a session-level pg_advisory_lock taken on one connection
//     that the driver pins for its lifetime. It works through pgentra (the
//     pinned connection logs in once; a token expiring later does not end
//     it), but not through a transaction-mode pooler: use port 5432, not
//     Azure's built-in PgBouncer on 6432.
//   - WithInstance takes the lock itself and waits for it without a limit
//     or a context; m.LockTimeout bounds only Up, Down, Steps and Migrate.
//     A DSN with options='-c lock_timeout=60s' makes the server end any
//     wait (SQLSTATE 55P03), the migrations' own DDL lock waits included.
//   - After a migrate.ErrLockTimeout the abandoned wait still takes the lock
//     once it is free, and that instance then answers "can't acquire lock"
//     (database.ErrLocked) to everything: Close it and start over.
//   - m.Close closes the *sql.DB given to WithInstance too.
package main

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	_ "github.com/pgentra/pgentra/driver" // registers "pgentra"
	"github.com/pgentra/pgentra/examples/internal/exenv"
)

// migrations holds NNN_name.up.sql / NNN_name.down.sql pairs.
//
//go:embed migrations/*.sql
var migrations embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	target, err := exenv.FromEnvironment(ctx, os.Stderr, "app-migrate")
	if err == nil {
		defer target.Close()
		err = run(ctx, os.Stdout, target.DSN)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

// newMigrate returns a Migrate for the embedded migrations on the pgentra
// database dsn, and the Config WithInstance filled in. Its Close closes the
// database too.
func newMigrate(dsn string) (*migrate.Migrate, *postgres.Config, error) {
	db, err := sql.Open("pgentra", dsn)
	if err != nil {
		return nil, nil, err
	}
	config := &postgres.Config{MigrationsTable: "schema_migrations"}
	driver, err := postgres.WithInstance(db, config)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("postgres.WithInstance: %w", err)
	}
	src, err := iofs.New(migrations, "migrations")
	if err != nil {
		driver.Close()
		return nil, nil, fmt.Errorf("iofs: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "postgres", driver)
	if err != nil {
		src.Close()
		driver.Close()
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	return m, config, nil
}

func run(ctx context.Context, out io.Writer, dsn string) error {
	m, config, err := newMigrate(dsn)
	if err != nil {
		return err
	}
	defer m.Close()
	// Up, Steps… take no context: stop between migrations on Ctrl-C.
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()
	fmt.Fprintf(out, "migrations table: %q.%s\n", config.SchemaName, config.MigrationsTable)

	// Up: everything not applied yet. ErrNoChange means "already there".
	what := "up: applied"
	switch err := m.Up(); {
	case errors.Is(err, migrate.ErrNoChange):
		what = "up: no change"
	case err != nil:
		return fmt.Errorf("up: %w", err)
	}
	if err := printVersion(out, m, what); err != nil {
		return err
	}

	// One step down (runs 000002_….down.sql), then one step back up.
	if err := m.Steps(-1); err != nil {
		return fmt.Errorf("steps(-1): %w", err)
	}
	if err := printVersion(out, m, "steps(-1)"); err != nil {
		return err
	}
	if err := m.Steps(1); err != nil {
		return fmt.Errorf("steps(1): %w", err)
	}
	if err := printVersion(out, m, "steps(1)"); err != nil {
		return err
	}

	// Up again: nothing to do, which is not a failure.
	err = m.Up()
	if !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("second up: want migrate.ErrNoChange, got %v", err)
	}
	fmt.Fprintf(out, "up again: migrate.ErrNoChange (%q), not an error\n", err)
	return nil
}

// printVersion prints what was done and the schema's version after it.
func printVersion(out io.Writer, m *migrate.Migrate, what string) error {
	v, dirty, err := m.Version()
	if err != nil {
		return fmt.Errorf("version after %s: %w", what, err)
	}
	fmt.Fprintf(out, "%s → version %d", what, v)
	if dirty {
		fmt.Fprint(out, " (dirty: a migration failed half-way; fix it, then m.Force)")
	}
	fmt.Fprintln(out)
	return nil
}
