package emulator_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/pgtest"
)

var pg pgtest.Lazy

func TestMain(m *testing.M) {
	if dsn := os.Getenv(defaultTLSChildEnv); dsn != "" {
		os.Exit(defaultTLSChild(dsn)) // a child of TestE2EDefaultTLSUsesSystemRoots
	}
	os.Exit(pg.Main(m))
}

func startEnv(t *testing.T) *emulator.Env {
	t.Helper()
	// Every test starts its own tenant: short lifetimes keep MSAL's process-wide
	// managed-identity cache out of the way (see package entra).
	env, err := emulator.Start(context.Background(), emulator.Options{PG: pg.Get(t), TokenLifetime: entra.ShortTestLifetime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return env
}

// The seed's flow: a user-assigned managed identity, created as a principal,
// logs in through IMDS with its name derived from the token.
func TestManagedIdentityDerivedUser(t *testing.T) {
	env := startEnv(t)
	ctx := context.Background()
	mi, err := env.Tenant.AddUserAssignedIdentity(fmt.Sprintf("id-orders-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := env.CreatePrincipal(ctx, mi, false)
	if err != nil || msg != fmt.Sprintf("Created role for %q", mi.Name) {
		t.Fatalf("create principal: %q, %v", msg, err)
	}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: env.ClientOptions(), ID: azidentity.ClientID(mi.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := driver.NewConnector(env.DSN(""), driver.WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var user, version string
	if err := db.QueryRowContext(ctx, "select current_user, version()").Scan(&user, &version); err != nil {
		t.Fatal(err)
	}
	if user != mi.Name {
		t.Errorf("current_user = %q", user)
	}
	if got := env.Front.Logins(); len(got) != 1 || !got[0].TLS || !got[0].OK {
		t.Errorf("front logins: %+v", got)
	}
}
