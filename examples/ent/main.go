// Ent runs an ent client on pgentra: open the pool with
// sql.Open("pgentra", dsn), wrap it with entsql.OpenDB(dialect.Postgres, db)
// and pass that driver to ent.NewClient(ent.Driver(drv)). Not
// ent.Open("pgentra", dsn): the generated Open accepts only ent's dialect
// names and answers `unsupported driver: "pgentra"`; ent.Open("postgres",
// dsn) would open lib/pq directly, without a token.
//
//	cd examples && go run ./ent      # offline emulator, or PGHOST=... for Azure
//
// The code in ent/ was generated from ent/schema by `go generate ./ent/ent`
// (ent v0.14.5) and is committed: building and testing need no codegen.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	_ "github.com/pgentra/pgentra/driver" // registers "pgentra"
	"github.com/pgentra/pgentra/examples/ent/ent"
	"github.com/pgentra/pgentra/examples/ent/ent/task"
	"github.com/pgentra/pgentra/examples/internal/exenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	target, err := exenv.FromEnvironment(ctx, os.Stderr, "app-ent")
	if err == nil {
		defer target.Close()
		err = run(ctx, os.Stdout, target.DSN)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ent:", err)
		os.Exit(1)
	}
}

// open returns an ent client on the pgentra driver. dsn is a libpq DSN
// without a password ("" uses the PG* variables).
func open(dsn string) (*ent.Client, error) {
	db, err := sql.Open("pgentra", dsn)
	if err != nil {
		return nil, err
	}
	// Tokens don't end open connections; recycling them spreads logins and
	// moves the pool to the new primary after a fail-over.
	db.SetConnMaxLifetime(30 * time.Minute)
	drv := entsql.OpenDB(dialect.Postgres, db)
	return ent.NewClient(ent.Driver(drv)), nil // client.Close closes db
}

func run(ctx context.Context, out io.Writer, dsn string) error {
	client, err := open(dsn)
	if err != nil {
		return err
	}
	defer client.Close()
	// Creates the tasks table in the role's schema (first in search_path).
	if err := client.Schema.Create(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := client.Task.Delete().Exec(ctx); err != nil { // start over on each run
		return err
	}
	for _, title := range []string{"rotate keys", "write docs", "ship"} {
		t, err := client.Task.Create().SetTitle(title).Save(ctx)
		if err != nil {
			return fmt.Errorf("create %q: %w", title, err)
		}
		fmt.Fprintf(out, "created %q\n", t.Title)
	}
	// The unique title: ent reports the server's unique violation as a constraint error.
	if _, err := client.Task.Create().SetTitle("ship").Save(ctx); ent.IsConstraintError(err) {
		fmt.Fprintln(out, `second "ship": constraint error`)
	} else {
		return fmt.Errorf("second %q: %v, want a constraint error", "ship", err)
	}
	n, err := client.Task.Update().Where(task.TitleNEQ("ship")).SetDone(true).Save(ctx)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	fmt.Fprintf(out, "done: %d\n", n)
	pending, err := client.Task.Query().Where(task.Done(false)).Order(ent.Asc(task.FieldTitle)).All(ctx)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	for _, t := range pending {
		fmt.Fprintf(out, "open: %q\n", t.Title)
	}
	return nil
}
