package emulator_test

// Issue 11 item 7: Azure Service Connector writes sslmode=require into
// AZURE_POSTGRESQL_CONNECTIONSTRING for Go apps. pq's require checks no
// certificate, so on that path (the empty DSN) pgentra upgrades it to
// verify-full. Here the front's certificate comes from the emulator's test
// CA, which is not among the system roots of this process: a server nobody
// can verify. It must get no token through the empty-DSN path, while the
// very same string written by the user (sslmode kept) does hand it one —
// which is what the upgrade prevents.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
)

func TestE2EServiceConnectorRequireIsUpgraded(t *testing.T) {
	e67CleanEnv(t)
	t.Setenv("HOME", t.TempDir()) // no ~/.postgresql/root.crt for pq to pick up
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mi, err := env.Tenant.AddUserAssignedIdentity(e67Name("id-sc"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(ctx, mi, false); err != nil {
		t.Fatal(err)
	}
	// What Service Connector writes for a user-assigned identity.
	cs := fmt.Sprintf("host=%s port=%d dbname=postgres sslmode=require user=%s", emulator.Host, env.Front.Port(), mi.Name)
	t.Setenv("AZURE_POSTGRESQL_CONNECTIONSTRING", cs)
	t.Setenv("AZURE_POSTGRESQL_CLIENTID", mi.AppID)

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	passwords := len(env.Front.Passwords())
	c, err := driver.NewConnector("", driver.WithClientOptions(env.ClientOptions()), driver.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.String(); !strings.Contains(s, "sslmode=verify-full") {
		t.Errorf("Service Connector's sslmode=require not upgraded: %s", s)
	}
	db := sql.OpenDB(c)
	err = db.PingContext(ctx)
	db.Close()
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("empty DSN, Service Connector's require, unverifiable server: err = %v; want a refusal for an unknown authority", err)
	}
	if n := len(env.Front.Passwords()); n != passwords {
		t.Fatalf("the front received %d passwords over a connection nobody verified", n-passwords)
	}
	if strings.Contains(logs.String(), "sslmode=require does not check") {
		t.Errorf("the upgraded Service Connector string should not warn about sslmode:\n%s", logs.String())
	}
	var le *driver.LoginError
	if !errors.As(err, &le) || !strings.Contains(le.Hint, "Service Connector") || !strings.Contains(le.Hint, "sslrootcert=") {
		t.Errorf("the refusal's hint does not say why pgentra verified and how to add roots: %v", err)
	}

	// The same string as a DSN the user wrote: sslmode=require is kept and
	// the token goes to the unverified front (to localhost: no warning).
	var logs2 bytes.Buffer
	c2, err := driver.NewConnector(cs+" azure_credential=managed_identity azure_client_id="+mi.AppID,
		driver.WithClientOptions(env.ClientOptions()),
		driver.WithLogger(slog.New(slog.NewTextHandler(&logs2, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	db2 := sql.OpenDB(c2)
	defer db2.Close()
	if err := db2.PingContext(ctx); err != nil {
		t.Fatalf("user-written sslmode=require: %v", err)
	}
	if n := len(env.Front.Passwords()); n != passwords+1 {
		t.Fatalf("user-written require: the front got %d passwords, want 1", n-passwords)
	}
	if logs2.Len() != 0 {
		t.Errorf("warnings for a local host:\n%s", logs2.String())
	}
}
