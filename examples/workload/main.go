// Workload logs in from an AKS pod with Microsoft Entra Workload ID: the
// pod's service account is federated with an Entra identity, and the
// workload-identity webhook injects AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE (the projected service-account token) and
// AZURE_AUTHORITY_HOST. azure_credential=workload_identity makes pgentra use
// azidentity's WorkloadIdentityCredential, which reads exactly those.
// Set-up steps: docs/aks-workload-identity.md.
//
//	cd examples && go run ./workload   # offline emulator plays the pod, or PGHOST=... in a pod
//
// In a pod, set PGHOST, PGDATABASE and PGUSER (the role docs/admin.sql
// created for the identity); the code needs nothing else.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/examples/internal/exenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context) error {
	if os.Getenv("PGHOST") != "" {
		return run(ctx, os.Stdout, "") // in the pod: PG* variables and the webhook's AZURE_*
	}
	target, err := exenv.EmulateWorkload(ctx, exenv.EmulatorOptions, "orders-worker")
	if err != nil {
		return fmt.Errorf("no PGHOST set, and starting the offline Azure emulator failed: %w", err)
	}
	defer target.Close()
	fmt.Fprintf(os.Stderr, "No PGHOST set: the offline Azure emulator plays an AKS pod (projected token %s)\n", os.Getenv("AZURE_FEDERATED_TOKEN_FILE"))
	return run(ctx, os.Stdout, target.DSN, target.Options...)
}

// run connects with workload identity. dsn is a libpq DSN without a
// password ("" uses the PG* variables); opts are for the emulator only.
func run(ctx context.Context, out io.Writer, dsn string, opts ...driver.Option) error {
	c, err := driver.NewConnector(strings.TrimSpace(dsn+" azure_credential=workload_identity"), opts...)
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	defer db.Close()

	var user string
	if err := db.QueryRowContext(ctx, "select current_user").Scan(&user); err != nil {
		return err
	}
	fmt.Fprintf(out, "logged in as %s with workload identity\n", user)
	return nil
}
