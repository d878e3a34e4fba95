package main

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/pgentra/pgentra/examples/internal/extest"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestPoolOneToken(t *testing.T) {
	target := extest.WebApp(t, "app-pgx")
	env := target.Env
	ctx := extest.Context(t, time.Minute)
	env.Front.Reset()
	before := env.Tenant.Minted(target.Principal, entra.DatabaseAudience)

	// The App Service variables extest set; what DefaultAzureCredential
	// would find on App Service.
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	const n = 6
	if err := run(ctx, &out, target.DSN, cred, n); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if got, want := out.String(), "6 pool connections as app-pgx, 1 token fetch(es)\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	if minted := env.Tenant.Minted(target.Principal, entra.DatabaseAudience) - before; minted != 1 {
		t.Errorf("tenant minted %d database tokens, want 1", minted)
	}
	logins := env.Front.Logins()
	if len(logins) != n {
		t.Errorf("front saw %d logins, want %d", len(logins), n)
	}
	for _, l := range logins {
		if !l.OK || !l.TLS || l.ServerName != "localhost" {
			t.Errorf("login %+v: want OK over verified TLS to localhost", l)
		}
	}
	pw := env.Front.Passwords()
	for _, p := range pw[1:] {
		if p != pw[0] {
			t.Error("connections used different tokens")
		}
	}
}
