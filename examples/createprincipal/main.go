// Createprincipal is the Entra administrator's step of Azure's set-up:
// create the PostgreSQL role that an identity (managed identity, user,
// service principal, group) logs in as.
//
//	createprincipal [-admin] [-mfa] <identity_name>
//	createprincipal -oid <object-id> -type service|user|group [-admin] [-mfa] <role_name>
//
// It connects as the administrator — an Entra user that was made the
// server's Microsoft Entra administrator, usually signed in with `az login`,
// so DefaultAzureCredential lands on the Azure CLI — to the postgres
// database through pgentra and runs
//
//	select * from pgaadauth_create_principal($1, false, false)
//
// or, with -oid, pgaadauth_create_principal_with_oid (for identities the
// server cannot look up by name, or to pick the role name yourself). It
// prints Azure's success line (Created role for "<name>") or Azure's error.
//
// Against Azure set PGHOST, PGUSER (the administrator's UPN) and
// PGDATABASE=postgres, or pass -dsn. With no PGHOST and no -dsn it starts
// the offline emulator, with the administrator admin@contoso.com signed in
// through a fake az, and the managed identity "id-orders" in the directory:
//
//	cd examples && go run ./createprincipal id-orders
//
// Copy it to script role creation in a deployment pipeline; then GRANT the
// new role what it needs.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	_ "github.com/pgentra/pgentra/driver" // registers "pgentra"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "createprincipal:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string) error {
	dsn := ""
	if os.Getenv("PGHOST") == "" && !hasDSNFlag(args) {
		env, err := emulator.Start(ctx, emulator.Options{})
		if err != nil {
			return fmt.Errorf("no PGHOST set, and starting the offline Azure emulator failed: %w", err)
		}
		defer env.Close()
		dir, err := os.MkdirTemp("", "pgentra-az-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if dsn, err = emulateAdmin(ctx, env, dir, os.Setenv); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "No PGHOST set: using the offline Azure emulator (Entra admin %s signed in with a fake az; %q is in the directory)\n", adminUPN, "id-orders")
	}
	return run(ctx, os.Stdout, dsn, args)
}

func hasDSNFlag(args []string) bool {
	for _, a := range args {
		if a == "-dsn" || a == "--dsn" || strings.HasPrefix(a, "-dsn=") || strings.HasPrefix(a, "--dsn=") {
			return true
		}
	}
	return false
}

// run parses the command line and creates the role. dsn is the default for
// -dsn ("" means the PG* variables and DefaultAzureCredential).
func run(ctx context.Context, out io.Writer, dsn string, args []string) error {
	fs := flag.NewFlagSet("createprincipal", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&dsn, "dsn", dsn, "connection string of the postgres database, as the Entra administrator (default: PG* variables)")
	oid := fs.String("oid", "", "object ID of the principal: use pgaadauth_create_principal_with_oid")
	typ := fs.String("type", "service", "with -oid: user, service (managed identity, service principal) or group")
	admin := fs.Bool("admin", false, "make the role an Entra administrator too")
	mfa := fs.Bool("mfa", false, "require multi-factor authentication for the role's tokens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: createprincipal [-dsn DSN] [-oid OID -type TYPE] [-admin] [-mfa] <name>")
	}
	name := fs.Arg(0)

	db, err := sql.Open("pgentra", dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	var msg string
	if *oid == "" {
		err = db.QueryRowContext(ctx, "select * from pgaadauth_create_principal($1, $2, $3)", name, *admin, *mfa).Scan(&msg)
	} else {
		err = db.QueryRowContext(ctx, "select * from pgaadauth_create_principal_with_oid($1, $2, $3, $4, $5)",
			name, *oid, *typ, *admin, *mfa).Scan(&msg)
	}
	if err != nil {
		return err // Azure's message, e.g. Could not validate AAD user … because its name is not found in the tenant.
	}
	fmt.Fprintln(out, msg)
	return nil
}

const adminUPN = "admin@contoso.com"

// emulateAdmin prepares env like a server after `az postgres flexible-server
// microsoft-entra-admin create`: the user adminUPN is an Entra administrator,
// signed in to a fake az installed in dir (prepended to PATH with setenv),
// and the managed identity "id-orders" exists in the tenant's directory.
// It returns the administrator's DSN.
func emulateAdmin(ctx context.Context, env *emulator.Env, dir string, setenv func(k, v string) error) (string, error) {
	admin, ok := env.Tenant.ByName(adminUPN)
	if !ok {
		var err error
		if admin, err = env.Tenant.AddUser(adminUPN); err != nil {
			return "", err
		}
		if _, err := env.CreatePrincipal(ctx, admin, true); err != nil {
			return "", err
		}
	}
	if _, err := entra.InstallFakeAZ(dir, env.Tenant, admin); err != nil {
		return "", err
	}
	if err := setenv("PATH", dir+string(filepath.ListSeparator)+os.Getenv("PATH")); err != nil {
		return "", err
	}
	mi, ok := env.Tenant.ByName("id-orders")
	if !ok {
		var err error
		if mi, err = env.Tenant.AddUserAssignedIdentity("id-orders"); err != nil {
			return "", err
		}
	}
	if err := env.Register(ctx, mi); err != nil {
		return "", err
	}
	return env.DSN(adminUPN, "azure_credential=azure_cli"), nil
}
