// Goose runs pressly/goose migrations through pgentra with goose's Provider
// API: open the pool with sql.Open("pgentra", dsn) and hand it to
// goose.NewProvider(goose.DialectPostgres, db, fsys).
//
//	cd examples && go run ./goose      # offline emulator, or PGHOST=... for Azure
//
// Not goose.OpenDBWithDriver("pgentra", dsn): goose maps driver names to its
// dialects and answers `"pgentra": unknown dialect`; and
// OpenDBWithDriver("postgres", dsn) opens pgx, which never asks pgentra for
// a token. The goose command-line tool opens its own connection the same
// way, so run migrations from Go (this program) or give the CLI a token as
// the password (PGPASSWORD=$(go run ./token)).
package main

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"

	"github.com/pressly/goose/v3"

	_ "github.com/pgentra/pgentra/driver" // registers "pgentra"
	"github.com/pgentra/pgentra/examples/internal/exenv"
)

//go:embed migrations/*.sql
var embedded embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	target, err := exenv.FromEnvironment(ctx, os.Stderr, "app-goose")
	if err == nil {
		defer target.Close()
		err = run(ctx, os.Stdout, target.DSN)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goose:", err)
		os.Exit(1)
	}
}

// newProvider opens the pool on pgentra and a goose Provider over it. dsn is
// a libpq DSN without a password ("" uses the PG* variables).
func newProvider(dsn string) (*goose.Provider, error) {
	db, err := sql.Open("pgentra", dsn)
	if err != nil {
		return nil, err
	}
	migrations, err := fs.Sub(embedded, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("goose provider: %w", err)
	}
	return p, nil // p.Close closes db
}

func run(ctx context.Context, out io.Writer, dsn string) error {
	p, err := newProvider(dsn)
	if err != nil {
		return err
	}
	defer p.Close()

	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	for _, r := range results {
		fmt.Fprintf(out, "up: applied %s\n", r.Source.Path)
	}
	if len(results) == 0 {
		fmt.Fprintln(out, "up: nothing to apply")
	}
	if err := version(ctx, out, p); err != nil {
		return err
	}

	// One step back and forth, as a rollback would.
	if r, err := p.Down(ctx); err != nil {
		return fmt.Errorf("down: %w", err)
	} else {
		fmt.Fprintf(out, "down: rolled back %s\n", r.Source.Path)
	}
	if r, err := p.UpByOne(ctx); err != nil {
		return fmt.Errorf("up by one: %w", err)
	} else {
		fmt.Fprintf(out, "up by one: applied %s\n", r.Source.Path)
	}
	return version(ctx, out, p)
}

func version(ctx context.Context, out io.Writer, p *goose.Provider) error {
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	fmt.Fprintf(out, "version %d\n", v)
	return nil
}
