// Quickstart is Azure's "Connect with managed identity" C# sample for Azure
// Database for PostgreSQL, in Go with pgentra: get an access token, open a
// connection with it, print version().
//
//	cd examples && go run ./quickstart
//
// With no PGHOST in the environment it starts the offline Azure emulator by
// itself (an App Service identity endpoint, an Entra-checking PostgreSQL
// front with a test CA, a throwaway PostgreSQL, a role created with
// pgaadauth_create_principal) and says so in one line. With PGHOST, PGUSER
// and PGDATABASE set (PGSSLMODE defaults to verify-full) it connects to that
// server with DefaultAzureCredential, e.g. on an Azure VM whose identity an
// Entra administrator created a role for:
//
//	PGHOST=myserver.postgres.database.azure.com PGUSER=my-vm PGDATABASE=postgres go run ./quickstart
//
// Copy it as the smallest complete program: one shared token.Cache (so the
// token fetched up front is the one the first connection uses) and a
// Connector built from the PG* variables. Programs that don't need the token
// themselves just call sql.Open("pgentra", dsn).
package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/examples/internal/exenv"
	"github.com/pgentra/pgentra/token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// Azure (PG* variables) or, without PGHOST, the offline emulator.
	target, err := exenv.FromEnvironment(ctx, out, "app-quickstart")
	if err != nil {
		return err
	}
	defer target.Close()

	// The C# sample asks IMDS directly. DefaultAzureCredential does that on
	// a VM, and uses App Service's, Container Apps' or AKS's endpoint there.
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return err
	}
	cache := token.NewCache(cred, token.ScopeForHost(target.Host))
	defer cache.Close()

	fmt.Fprintln(out, "Getting access token from Azure AD...")
	if _, err := cache.Token(ctx); err != nil {
		return err
	}

	// "" reads PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, PGSSLROOTCERT.
	connector, err := driver.NewConnector(target.DSN, driver.WithTokenCache(cache))
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	fmt.Fprintln(out, "Opening connection using access token...")
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "Connected!")

	var version string
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&version); err != nil {
		return err
	}
	fmt.Fprintf(out, "Postgres version: %s\n", version)
	return nil
}
