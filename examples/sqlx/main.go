// Sqlx shows sqlx on pgentra: sqlx.BindDriver("pgentra", sqlx.DOLLAR) so
// that Rebind turns ? into $1, $2…, named queries (NamedExec with a struct
// and a slice, NamedQuery), and Get/Select into structs.
//
//	cd examples && go run ./sqlx      # offline emulator, or PGHOST=... for Azure
//
// Copy the init() line into any program that uses sqlx with pgentra: sqlx
// picks the bind style by driver name and does not know "pgentra", so
// without it Rebind leaves ? in place and named queries send ? to the
// server. (sqlx.NewDb(sql.OpenDB(connector), "postgres") is the other way.)
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/jmoiron/sqlx"

	_ "github.com/pgentra/pgentra/driver" // registers "pgentra"
	"github.com/pgentra/pgentra/examples/internal/exenv"
)

func init() {
	sqlx.BindDriver("pgentra", sqlx.DOLLAR)
}

// Task is one row of the tasks table.
type Task struct {
	ID    int64  `db:"id"`
	Title string `db:"title"`
	Done  bool   `db:"done"`
	Owner string `db:"owner"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	target, err := exenv.FromEnvironment(ctx, os.Stderr, "app-sqlx")
	if err == nil {
		defer target.Close()
		err = run(ctx, os.Stdout, target.DSN)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqlx:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, dsn string) error {
	db, err := sqlx.Open("pgentra", dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	if _, err := db.ExecContext(ctx, `create table if not exists tasks (
		id bigserial primary key, title text not null, done boolean not null default false, owner text not null default current_user)`); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `truncate tasks restart identity`); err != nil {
		return err
	}

	// Rebind: ? → $n, because of BindDriver.
	q := db.Rebind("insert into tasks (title, done) values (?, ?)")
	fmt.Fprintf(out, "rebound: %s\n", q)
	if _, err := db.ExecContext(ctx, q, "rotate keys", true); err != nil {
		return err
	}

	// Named queries: a struct, then a slice (one multi-row insert).
	if _, err := db.NamedExecContext(ctx, `insert into tasks (title, done) values (:title, :done)`,
		Task{Title: "write docs"}); err != nil {
		return err
	}
	if _, err := db.NamedExecContext(ctx, `insert into tasks (title, done) values (:title, :done)`,
		[]Task{{Title: "ship v1"}, {Title: "celebrate"}}); err != nil {
		return err
	}

	// Get: one row into a struct.
	var first Task
	if err := db.GetContext(ctx, &first, db.Rebind("select id, title, done, owner from tasks where id = ?"), 1); err != nil {
		return err
	}
	fmt.Fprintf(out, "get: #%d %q done=%t owner=%s\n", first.ID, first.Title, first.Done, first.Owner)

	// Select: many rows into a slice, with In + Rebind.
	query, args, err := sqlx.In("select id, title, done, owner from tasks where title in (?) order by id", []string{"write docs", "ship v1", "celebrate"})
	if err != nil {
		return err
	}
	var open []Task
	if err := db.SelectContext(ctx, &open, db.Rebind(query), args...); err != nil {
		return err
	}
	for _, t := range open {
		fmt.Fprintf(out, "select: #%d %q done=%t\n", t.ID, t.Title, t.Done)
	}

	// NamedQuery with a map.
	rows, err := db.NamedQueryContext(ctx, `select count(*) from tasks where done = :done`, map[string]any{"done": false})
	if err != nil {
		return err
	}
	defer rows.Close()
	var pending int
	for rows.Next() {
		if err := rows.Scan(&pending); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	fmt.Fprintf(out, "named query: %d pending\n", pending)
	return nil
}
