package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestCreatePrincipal(t *testing.T) {
	env := extest.Env(t)
	ctx := extest.Context(t, time.Minute)
	dsn, err := emulateAdmin(ctx, env, t.TempDir(), func(k, v string) error { t.Setenv(k, v); return nil })
	if err != nil {
		t.Fatal(err)
	}
	roleExists := func(name string) bool {
		t.Helper()
		var n int
		if err := env.AdminDB.QueryRowContext(ctx, "select count(*) from pg_roles where rolname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	t.Run("known name", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(ctx, &out, dsn, []string{"id-orders"}); err != nil {
			t.Fatalf("run: %v", err)
		}
		if got, want := out.String(), "Created role for \"id-orders\"\n"; got != want {
			t.Errorf("output %q, want %q", got, want)
		}
		if !roleExists("id-orders") {
			t.Error("role id-orders does not exist")
		}
	})

	t.Run("unknown name", func(t *testing.T) {
		var out bytes.Buffer
		err := run(ctx, &out, dsn, []string{"id-typo"})
		if err == nil || !strings.Contains(err.Error(), `Could not validate AAD user id-typo`) {
			t.Fatalf("err = %v, want Azure's Could not validate AAD user error", err)
		}
		if out.Len() != 0 || roleExists("id-typo") {
			t.Errorf("output %q / role created, want neither", out.String())
		}
	})

	t.Run("with oid", func(t *testing.T) {
		var out bytes.Buffer
		const oid = "3f2a1b4c-0000-4000-8000-00000000beef"
		if err := run(ctx, &out, dsn, []string{"-oid", oid, "-type", "service", "billing-job"}); err != nil {
			t.Fatalf("run: %v", err)
		}
		if got, want := out.String(), "Created role for \"billing-job\"\n"; got != want {
			t.Errorf("output %q, want %q", got, want)
		}
		var got string
		err := env.AdminDB.QueryRowContext(ctx, "select objectid from pgaadauth_list_principals(false) where rolname = 'billing-job'").Scan(&got)
		if err != nil || got != oid {
			t.Errorf("registered oid = %q, %v; want %s", got, err, oid)
		}
	})

	// The administrator logged in through the front, as an Entra user, over TLS.
	var adminLogins int
	for _, l := range env.Front.Logins() {
		if l.User == adminUPN && l.OK && l.TLS {
			adminLogins++
		}
	}
	if adminLogins == 0 {
		t.Errorf("no TLS login as %s: %+v", adminUPN, env.Front.Logins())
	}
}
