package main

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestBun(t *testing.T) {
	target := extest.WebApp(t, "app-bun")
	ctx := extest.Context(t, time.Minute)
	want := `table books ready
inserted #1 "The Go Programming Language" owner=app-bun
inserted #2 "Designing Data-Intensive Applications" owner=app-bun
inserted #3 "PostgreSQL: Up and Running" owner=app-bun
in stock: #1 "The Go Programming Language" (4)
in stock: #3 "PostgreSQL: Up and Running" (2)
updated #2: stock 5 (1 row)
moved 3 copies #2 → #1: committed
moved 10 copies #3 → #1: rolled back (not enough copies in #3: 8 short)
stock: #1 7
stock: #2 2
stock: #3 2
current_user app-bun owns 3 rows
`
	// Twice: the second run finds the table (IfNotExists) and starts over.
	for i := range 2 {
		var out bytes.Buffer
		if err := run(ctx, &out, target.DSN); err != nil {
			t.Fatalf("run %d: %v\noutput:\n%s", i+1, err, out.String())
		}
		if out.String() != want {
			t.Errorf("run %d output:\n%s\nwant:\n%s", i+1, out.String(), want)
		}
	}

	// The database, seen by the superuser, not through bun: the table bun
	// created belongs to the Entra role, the committed transfer is there,
	// the rolled-back one is not, and the server filled in every owner.
	admin := target.Env.AdminDB
	var tableOwner string
	if err := admin.QueryRowContext(ctx, `select tableowner from pg_tables where schemaname = 'app-bun' and tablename = 'books'`).Scan(&tableOwner); err != nil || tableOwner != "app-bun" {
		t.Errorf(`owner of "app-bun".books = %q, %v; want app-bun`, tableOwner, err)
	}
	var books string
	if err := admin.QueryRowContext(ctx, `select string_agg(id || ':' || stock || ':' || owner, ' ' order by id) from "app-bun".books`).Scan(&books); err != nil {
		t.Fatal(err)
	}
	if want := "1:7:app-bun 2:2:app-bun 3:2:app-bun"; books != want {
		t.Errorf("books (id:stock:owner) = %q, want %q", books, want)
	}
}
