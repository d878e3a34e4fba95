package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestGoose(t *testing.T) {
	target := extest.WebApp(t, "app-goose")
	ctx := extest.Context(t, time.Minute)
	admin := target.Env.AdminDB
	// Start from an empty schema, whatever ran before in this binary.
	if _, err := admin.ExecContext(ctx, `drop table if exists "app-goose".orders, "app-goose".goose_db_version`); err != nil {
		t.Fatal(err)
	}
	rest := `version 2
down: rolled back 00002_add_quantity.sql
up by one: applied 00002_add_quantity.sql
version 2
`
	// The second run (the next deploy) finds nothing to apply.
	for i, up := range []string{"up: applied 00001_create_orders.sql\nup: applied 00002_add_quantity.sql\n", "up: nothing to apply\n"} {
		var out bytes.Buffer
		if err := run(ctx, &out, target.DSN); err != nil {
			t.Fatalf("run %d: %v\noutput:\n%s", i+1, err, out.String())
		}
		if want := up + rest; out.String() != want {
			t.Errorf("run %d output:\n%s\nwant:\n%s", i+1, out.String(), want)
		}
	}

	// goose's tables belong to the Entra role, in its schema.
	var owners string
	if err := admin.QueryRowContext(ctx, `select string_agg(tablename || '=' || tableowner, ' ' order by tablename)
		from pg_tables where schemaname = 'app-goose'`).Scan(&owners); err != nil {
		t.Fatal(err)
	}
	if want := "goose_db_version=app-goose orders=app-goose"; owners != want {
		t.Errorf("tables: %q, want %q", owners, want)
	}
}

// TestOpenDBWithDriverRefusesPgentra: why the example uses NewProvider.
func TestOpenDBWithDriverRefusesPgentra(t *testing.T) {
	db, err := goose.OpenDBWithDriver("pgentra", "host=localhost")
	if db != nil {
		db.Close()
	}
	if err == nil || !strings.Contains(err.Error(), `"pgentra": unknown dialect`) {
		t.Errorf("goose.OpenDBWithDriver(\"pgentra\", …): %v; want the unknown-dialect error docs/orms-and-tools.md names", err)
	}
}
