package main

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestBindDriver(t *testing.T) {
	if got := sqlx.BindType("pgentra"); got != sqlx.DOLLAR {
		t.Fatalf("sqlx.BindType(pgentra) = %d, want DOLLAR", got)
	}
}

func TestSQLX(t *testing.T) {
	target := extest.WebApp(t, "app-sqlx")
	ctx := extest.Context(t, time.Minute)
	var out bytes.Buffer
	if err := run(ctx, &out, target.DSN); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	want := `rebound: insert into tasks (title, done) values ($1, $2)
get: #1 "rotate keys" done=true owner=app-sqlx
select: #2 "write docs" done=false
select: #3 "ship v1" done=false
select: #4 "celebrate" done=false
named query: 3 pending
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	var n int
	if err := target.Env.AdminDB.QueryRowContext(ctx, `select count(*) from "app-sqlx".tasks where owner = 'app-sqlx'`).Scan(&n); err != nil || n != 4 {
		t.Errorf("rows owned by app-sqlx = %d, %v; want 4", n, err)
	}
}
