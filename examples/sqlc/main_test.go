package main

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestSqlc(t *testing.T) {
	target := extest.WebApp(t, "app-sqlc")
	ctx := extest.Context(t, time.Minute)
	want := `created "Brian Kernighan"
got "Brian Kernighan": Co-author of The C Programming Language and The Go Programming Language
listed "Alan Donovan" (bio given: false)
listed "Brian Kernighan" (bio given: true)
deleted 2 authors
`
	// Twice: the second run finds the table and an empty one.
	for i := range 2 {
		var out bytes.Buffer
		if err := run(ctx, &out, target.DSN); err != nil {
			t.Fatalf("run %d: %v\noutput:\n%s", i+1, err, out.String())
		}
		if out.String() != want {
			t.Errorf("run %d output:\n%s\nwant:\n%s", i+1, out.String(), want)
		}
	}
	var owner string
	if err := target.Env.AdminDB.QueryRowContext(ctx, `select tableowner from pg_tables where schemaname = 'app-sqlc' and tablename = 'authors'`).Scan(&owner); err != nil || owner != "app-sqlc" {
		t.Errorf(`owner of "app-sqlc".authors = %q, %v; want the Entra role`, owner, err)
	}
}
