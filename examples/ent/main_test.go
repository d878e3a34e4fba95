package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/ent/ent"
	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestEnt(t *testing.T) {
	target := extest.WebApp(t, "app-ent")
	ctx := extest.Context(t, time.Minute)
	want := `created "rotate keys"
created "write docs"
created "ship"
second "ship": constraint error
done: 2
open: "ship"
`
	// Twice: the second run finds the table (Schema.Create changes nothing).
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
	if err := target.Env.AdminDB.QueryRowContext(ctx, `select tableowner from pg_tables where schemaname = 'app-ent' and tablename = 'tasks'`).Scan(&owner); err != nil || owner != "app-ent" {
		t.Errorf(`owner of "app-ent".tasks = %q, %v; want the Entra role`, owner, err)
	}
}

// TestOpenRefusesPgentra: why the example wraps the pool with entsql.OpenDB.
func TestOpenRefusesPgentra(t *testing.T) {
	client, err := ent.Open("pgentra", "host=localhost")
	if client != nil {
		client.Close()
	}
	if err == nil || !strings.Contains(err.Error(), `unsupported driver: "pgentra"`) {
		t.Errorf(`ent.Open("pgentra", …): %v; want ent's unsupported-driver error`, err)
	}
}
