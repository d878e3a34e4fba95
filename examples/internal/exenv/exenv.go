// Package exenv gives the example programs a server to connect to.
//
// With PGHOST set, that is the server the standard libpq variables name
// (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, PGSSLROOTCERT): a real Azure
// Database for PostgreSQL, reached with DefaultAzureCredential. Without
// PGHOST, the examples start the offline emulator and play an App Service
// app with a system-assigned managed identity: the emulator's identity
// endpoint goes into IDENTITY_ENDPOINT / IDENTITY_HEADER, exactly the two
// variables App Service sets, so the examples' code has nothing
// emulator-specific in it — DefaultAzureCredential finds the endpoint as it
// would in Azure.
//
// This package is support code for the examples, not something to copy.
package exenv

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// Target is the server an example connects to.
type Target struct {
	// DSN is a libpq key=value connection string without a password and
	// without azure_* keys, so pq, pgx and pgentra all accept it. It is ""
	// against Azure: the PG* variables say everything.
	DSN string
	// Role is the database role the example logs in as ("" against Azure:
	// PGUSER, or derived from the token).
	Role string
	// Host is the server's host name, for token.ScopeForHost.
	Host string
	// Env is the running emulator, nil against Azure.
	Env *emulator.Env
	// Principal is the emulated identity (zero against Azure).
	Principal entra.Principal
	// Options are what a pgentra Connector needs beyond the DSN against the
	// emulator (nil for App Service apps and against Azure).
	Options []driver.Option

	ownsEnv bool
	restore []func()
}

// Emulated reports whether the target is the offline emulator.
func (t *Target) Emulated() bool { return t.Env != nil }

// Close undoes what set the target up: it restores the environment
// variables and stops an emulator it started.
func (t *Target) Close() error {
	for i := len(t.restore) - 1; i >= 0; i-- {
		t.restore[i]()
	}
	t.restore = nil
	if t.ownsEnv && t.Env != nil {
		err := t.Env.Close()
		t.Env = nil
		return err
	}
	return nil
}

// EmulatorOptions are what FromEnvironment starts the emulator with. The zero
// value gives Azure's token lifetimes (managed identities 24 h); test binaries
// shorten TokenLifetime (extest.Main does), because they start several
// emulators in one process and MSAL caches managed-identity tokens
// process-wide, not per tenant.
var EmulatorOptions emulator.Options

// FromEnvironment returns the server the PG* variables name when PGHOST is
// set. Otherwise it starts the emulator with an App Service app named app
// (see Emulate) and writes ONE line saying so to w.
func FromEnvironment(ctx context.Context, w io.Writer, app string) (*Target, error) {
	if host := os.Getenv("PGHOST"); host != "" {
		return &Target{Host: host, Role: os.Getenv("PGUSER")}, nil
	}
	t, err := Emulate(ctx, EmulatorOptions, app)
	if err != nil {
		return nil, fmt.Errorf("no PGHOST set, and starting the offline Azure emulator failed: %w", err)
	}
	fmt.Fprintf(w, "No PGHOST set: using the offline Azure emulator (App Service identity endpoint, Entra-checking PostgreSQL front at %s:%d, throwaway PostgreSQL, role %q and its schema made by the Entra administrator with docs/admin.sql)\n",
		emulator.Host, t.Env.Front.Port(), t.Role)
	return t, nil
}

// Emulate starts the emulator and sets up app on it (see WebApp). Close
// stops the emulator.
func Emulate(ctx context.Context, opts emulator.Options, app string) (*Target, error) {
	env, err := emulator.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	t, err := WebApp(ctx, env, app, os.Setenv, os.Unsetenv)
	if err != nil {
		env.Close()
		return nil, err
	}
	t.ownsEnv = true
	return t, nil
}

// AdminUPN is the Entra administrator WebApp adds when the emulator has
// none yet.
const AdminUPN = "admin@contoso.com"

// RunAdminSQL has the server's Entra administrator (see Admin) run the
// repository's docs/admin.sql for role in database, with psql through the
// Entra-checking front — exactly what the docs tell an administrator on
// Azure to run:
//
//	psql -v ON_ERROR_STOP=1 -v role=<role> -v db=<database> -f docs/admin.sql
func RunAdminSQL(ctx context.Context, env *emulator.Env, role, database string) error {
	file, err := emulator.AdminSQLFile()
	if err != nil {
		return err
	}
	return RunAdminFile(ctx, env, file, role, database)
}

// RunAdminFile is RunAdminSQL with another file (tests run the old,
// failing statements through it).
func RunAdminFile(ctx context.Context, env *emulator.Env, file, role, database string) error {
	admin, err := Admin(ctx, env)
	if err != nil {
		return err
	}
	_, err = env.PSQL(ctx, admin, "-q", "-v", "role="+role, "-v", "db="+database, "-f", file)
	return err
}

// Admin returns an Entra administrator of env's server: the first one
// pgaadauth_list_principals lists, else AdminUPN, made one. Like Azure's,
// it has CREATEROLE and is a member of azure_pg_admin, but is no superuser
// and no member of the roles it creates.
func Admin(ctx context.Context, env *emulator.Env) (entra.Principal, error) {
	rows, err := env.AdminDB.QueryContext(ctx, "select rolname from pgaadauth_list_principals(true)")
	if err != nil {
		return entra.Principal{}, fmt.Errorf("listing the Entra administrators: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return entra.Principal{}, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return entra.Principal{}, err
	}
	for _, n := range names {
		if p, ok := env.Tenant.ByName(n); ok && p.Kind == entra.User {
			return p, nil
		}
	}
	return env.EntraAdmin(ctx, AdminUPN)
}

// Database is the database the emulator's DSNs name (emulator.Env.DSN).
const Database = "postgres"

// WebApp adds to env's tenant an App Service app named app with a
// system-assigned managed identity, has the Entra administrator run
// docs/admin.sql for it (RunAdminSQL: its role, and a schema named like it
// in Database), and sets the
// variables App Service would set with setenv (os.Setenv, or a test's
// t.Setenv; unsetenv, when non-nil, is used by Close to undo it).
//
// The emulator serves the tenant's FIRST system-assigned identity to
// requests that name none, so use one app per emulator.
func WebApp(ctx context.Context, env *emulator.Env, app string, setenv func(k, v string) error, unsetenv func(string) error) (*Target, error) {
	p, ok := env.Tenant.ByName(app)
	if !ok {
		var err error
		if p, err = env.Tenant.AddSystemAssignedWebApp(app); err != nil {
			return nil, err
		}
		// In the tenant's directory, where pgaadauth_create_principal looks.
		if err := env.Register(ctx, p); err != nil {
			return nil, fmt.Errorf("registering %q in the tenant's directory: %w", app, err)
		}
		if err := RunAdminSQL(ctx, env, app, Database); err != nil {
			return nil, fmt.Errorf("the administrator's docs/admin.sql for %q: %w", app, err)
		}
	}
	t := &Target{DSN: env.DSN(p.Name), Role: p.Name, Host: emulator.Host, Env: env, Principal: p}
	if err := t.setenv(env.Identity.AppServiceEnv(), setenv, unsetenv); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// setenv sets vars with setenv and, when unsetenv is non-nil, makes Close
// restore what was there before.
func (t *Target) setenv(vars map[string]string, setenv func(k, v string) error, unsetenv func(string) error) error {
	for k, v := range vars {
		old, had := os.LookupEnv(k)
		if err := setenv(k, v); err != nil {
			return err
		}
		if unsetenv != nil {
			t.restore = append(t.restore, func() {
				if had {
					setenv(k, old)
				} else {
					unsetenv(k)
				}
			})
		}
	}
	return nil
}
