package emulator_test

// End-to-end tests with real azidentity credentials (issue 3, item 6): every
// test opens a database/sql pool through the pgentra driver, logs in through
// the Entra-checking front with sslmode=verify-full against the emulator's
// test CA, and runs `select current_user, version()` on the real PostgreSQL
// behind it.
//
// Where a plain sql.Open("pgentra", dsn) can't reach the fakes, the tests use
// driver.NewConnector(dsn, driver.WithClientOptions(env.ClientOptions())) +
// sql.OpenDB instead, and say why: IMDS lives at http://169.254.169.254 and
// is only reachable through the emulator's transport, and the Entra
// authority's TLS certificate is only trusted by that transport. The App
// Service identity endpoint (plain HTTP on loopback, found through env vars)
// and the Azure CLI (a stand-in `az` on PATH) need no such help.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

// e67EnvVars are the variables that steer azidentity's (and pgentra's)
// choice of credential. Tests that set some of them clear all the others
// first, so the machine's environment can't pick another source.
var e67EnvVars = []string{
	"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
	"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
	"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
	"AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_TOKEN_CREDENTIALS",
	"AZURE_POSTGRESQL_CONNECTIONSTRING", "AZURE_POSTGRESQL_CLIENTID", "AZURE_POSTGRESQL_CLIENTSECRET", "AZURE_POSTGRESQL_TENANTID",
	"PGUSER",
}

// e67CleanEnv unsets every credential-steering variable for the test (and
// makes the test non-parallel, as t.Setenv does). Unset, not empty:
// azidentity rejects an empty AZURE_TOKEN_CREDENTIALS.
func e67CleanEnv(t *testing.T) {
	t.Helper()
	for _, k := range e67EnvVars {
		t.Setenv(k, "") // restores the old value after the test
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

var e67Seq atomic.Int32

// e67Name makes a principal name unique in the test binary: the cluster (and
// its roles) is shared by every test of the package.
func e67Name(base string) string {
	return fmt.Sprintf("%s-e67-%d", base, e67Seq.Add(1))
}

// e67SetEnv sets vars for the test.
func e67SetEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// e67Who runs `select current_user, version()` on db and returns the user.
func e67Who(t *testing.T, db *sql.DB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var user, version string
	if err := db.QueryRowContext(ctx, "select current_user, version()").Scan(&user, &version); err != nil {
		t.Fatalf("select current_user, version(): %v", err)
	}
	if !strings.HasPrefix(version, "PostgreSQL ") {
		t.Errorf("version() = %q, want a PostgreSQL version string", version)
	}
	return user
}

// e67CheckFront asserts that every login the front saw ran over TLS with
// SNI "localhost", succeeded as wantUser, and carried a token for p.
func e67CheckFront(t *testing.T, env *emulator.Env, p entra.Principal, wantUser string) {
	t.Helper()
	logins := env.Front.Logins()
	if len(logins) == 0 {
		t.Fatal("the front saw no login")
	}
	for i, l := range logins {
		if !l.OK || !l.TLS || l.User != wantUser || l.ServerName != emulator.Host {
			t.Errorf("login %d = %+v; want OK over TLS (SNI %q) as %q", i, l, emulator.Host, wantUser)
		}
	}
	for i, pw := range env.Front.Passwords() {
		c, err := token.ParseClaims(pw)
		if err != nil {
			t.Errorf("password %d is not a token: %v", i, err)
			continue
		}
		if c.ObjectID != p.ObjectID || c.Audience != entra.DatabaseAudience || c.TenantID != env.Tenant.ID() {
			t.Errorf("password %d is a token for %s; want oid=%s aud=%s tid=%s", i, c, p.ObjectID, entra.DatabaseAudience, env.Tenant.ID())
		}
	}
}

// e67CheckUserNameFallback: the database token of a managed identity has
// no xms_mirid, so the derived user name came from one management-scope
// token of the same identity.
func e67CheckUserNameFallback(t *testing.T, env *emulator.Env, p entra.Principal) {
	t.Helper()
	if n := env.Tenant.Minted(p, entra.ManagementAudience); n != 1 {
		t.Errorf("management-scope tokens minted = %d, want 1 (the user-name fallback)", n)
	}
}

// e67CheckAuthorityOnly: p's token came from one request to the Entra
// authority, and the managed-identity endpoint was never asked (in a
// default chain, the credentials before managed identity answered).
func e67CheckAuthorityOnly(t *testing.T, env *emulator.Env, p entra.Principal) {
	t.Helper()
	if n := env.Authority.RequestsFor(p); n != 1 {
		t.Errorf("authority token requests for %s = %d, want 1", p.Name, n)
	}
	if n := env.Identity.Requests(); n != 0 {
		t.Errorf("identity endpoint requests = %d, want 0", n)
	}
}

// e67Open opens a pool with the pgentra driver: through NewConnector +
// sql.OpenDB when opts are given, else with plain sql.Open.
func e67Open(t *testing.T, dsn string, opts ...driver.Option) *sql.DB {
	t.Helper()
	var db *sql.DB
	if opts == nil {
		var err error
		if db, err = sql.Open(driver.DriverName, dsn); err != nil {
			t.Fatalf("sql.Open: %v", err)
		}
	} else {
		c, err := driver.NewConnector(dsn, opts...)
		if err != nil {
			t.Fatalf("NewConnector: %v", err)
		}
		db = sql.OpenDB(c)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// e67HoldConns opens n connections of db at once and holds them until the
// test ends (closing one returns it to the pool): each is a physical
// connection of its own, so n logins happen concurrently.
func e67HoldConns(t *testing.T, ctx context.Context, db *sql.DB, n int) []*sql.Conn {
	t.Helper()
	conns := make([]*sql.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i], errs[i] = db.Conn(ctx) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	for i := range conns {
		if errs[i] != nil {
			t.Fatalf("conn %d: %v", i, errs[i])
		}
	}
	if st := db.Stats(); st.OpenConnections != n || st.InUse != n {
		t.Errorf("pool stats: %d open, %d in use; want %d held at once", st.OpenConnections, st.InUse, n)
	}
	return conns
}

// TestE2ERealCredentials logs in with every credential kind pgentra builds
// from a DSN, with the user given and derived from the token.
func TestE2ERealCredentials(t *testing.T) {
	type setup struct {
		p    entra.Principal
		dsn  string
		opts []driver.Option // nil: plain sql.Open
		env  map[string]string
	}
	tests := []struct {
		name string
		// add creates the principal in the tenant.
		add func(tn *entra.Tenant) (entra.Principal, error)
		// derive leaves user out of the DSN, so pgentra derives it.
		derive bool
		// prepare builds DSN, options and environment for p.
		prepare func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup
		// check runs extra assertions after the query.
		check func(t *testing.T, env *emulator.Env, p entra.Principal)
	}{
		{
			name: "managed identity IMDS user-assigned, user given",
			add: func(tn *entra.Tenant) (entra.Principal, error) {
				return tn.AddUserAssignedIdentity(e67Name("id-orders"))
			},
			prepare: func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup {
				// IMDS (169.254.169.254) is reachable only through the emulator's
				// transport: NewConnector + WithClientOptions, not sql.Open.
				return setup{p: p, dsn: env.DSN(user, "azure_credential=managed_identity", "azure_client_id="+p.AppID),
					opts: []driver.Option{driver.WithClientOptions(env.ClientOptions())}}
			},
			check: func(t *testing.T, env *emulator.Env, p entra.Principal) {
				if n := env.Identity.RequestsFor(p); n != 1 {
					t.Errorf("IMDS requests for %s = %d, want 1 (one database token, no management lookup)", p.Name, n)
				}
				if n := env.Tenant.Minted(p, entra.ManagementAudience); n != 0 {
					t.Errorf("management-scope tokens minted = %d, want 0 with the user given", n)
				}
			},
		},
		{
			name: "managed identity IMDS user-assigned, user derived",
			add: func(tn *entra.Tenant) (entra.Principal, error) {
				return tn.AddUserAssignedIdentity(e67Name("id-billing"))
			},
			derive: true,
			prepare: func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup {
				// IMDS needs the emulator's transport (see above).
				return setup{p: p, dsn: env.DSN(user, "azure_credential=managed_identity", "azure_client_id="+p.AppID),
					opts: []driver.Option{driver.WithClientOptions(env.ClientOptions())}}
			},
			check: e67CheckUserNameFallback,
		},
		{
			name:   "managed identity IMDS system-assigned VM, user derived",
			add:    func(tn *entra.Tenant) (entra.Principal, error) { return tn.AddSystemAssignedVM(e67Name("vm-web-01")) },
			derive: true,
			prepare: func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup {
				// No azure_client_id: the host's system-assigned identity. IMDS
				// needs the emulator's transport (see above).
				return setup{p: p, dsn: env.DSN(user, "azure_credential=managed_identity"),
					opts: []driver.Option{driver.WithClientOptions(env.ClientOptions())}}
			},
			check: e67CheckUserNameFallback,
		},
		{
			name: "managed identity App Service user-assigned, user given",
			add:  func(tn *entra.Tenant) (entra.Principal, error) { return tn.AddUserAssignedIdentity(e67Name("id-web")) },
			prepare: func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup {
				// App Service: the endpoint comes from IDENTITY_ENDPOINT and is
				// plain HTTP on loopback, so plain sql.Open works.
				return setup{p: p, dsn: env.DSN(user, "azure_credential=managed_identity", "azure_client_id="+p.AppID),
					env: env.Identity.AppServiceEnv()}
			},
			check: func(t *testing.T, env *emulator.Env, p entra.Principal) {
				if n := env.Identity.RequestsFor(p); n != 1 {
					t.Errorf("identity endpoint requests for %s = %d, want 1", p.Name, n)
				}
			},
		},
		{
			name: "managed identity App Service system-assigned web app, user derived",
			add: func(tn *entra.Tenant) (entra.Principal, error) {
				return tn.AddSystemAssignedWebApp(e67Name("app-orders"))
			},
			derive: true,
			prepare: func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup {
				return setup{p: p, dsn: env.DSN(user, "azure_credential=managed_identity"), env: env.Identity.AppServiceEnv()}
			},
		},
		{
			name: "client secret, user given",
			add:  func(tn *entra.Tenant) (entra.Principal, error) { return tn.AddServicePrincipal(e67Name("orders-api")) },
			prepare: func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup {
				// The authority's TLS certificate is trusted only by the
				// emulator's transport: NewConnector + WithClientOptions.
				return setup{p: p,
					dsn:  env.DSN(user, "azure_credential=client_secret", "azure_client_id="+p.AppID, "azure_tenant_id="+env.Tenant.ID()),
					opts: []driver.Option{driver.WithClientOptions(env.ClientOptions())},
					env:  map[string]string{"AZURE_CLIENT_SECRET": p.ClientSecret}}
			},
			check: e67CheckAuthorityOnly,
		},
		{
			name: "workload identity, user given",
			add: func(tn *entra.Tenant) (entra.Principal, error) {
				return tn.AddServicePrincipal(e67Name("orders-worker"))
			},
			prepare: func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup {
				path, err := env.Tenant.WriteFederatedTokenFile(t.TempDir(), p)
				if err != nil {
					t.Fatal(err)
				}
				// The authority's TLS needs the emulator's transport (see above).
				return setup{p: p,
					dsn: env.DSN(user, "azure_credential=workload_identity", "azure_client_id="+p.AppID,
						"azure_tenant_id="+env.Tenant.ID(), "azure_federated_token_file="+path),
					opts: []driver.Option{driver.WithClientOptions(env.ClientOptions())}}
			},
			check: e67CheckAuthorityOnly,
		},
		{
			name: "DefaultAzureCredential picks workload identity from the environment",
			add:  func(tn *entra.Tenant) (entra.Principal, error) { return tn.AddServicePrincipal(e67Name("orders-pod")) },
			prepare: func(t *testing.T, env *emulator.Env, p entra.Principal, user string) setup {
				path, err := env.Tenant.WriteFederatedTokenFile(t.TempDir(), p)
				if err != nil {
					t.Fatal(err)
				}
				// Only the transport comes from code (the authority's TLS); the
				// authority host comes from AZURE_AUTHORITY_HOST, as in AKS.
				co := env.ClientOptions()
				co.Cloud = cloud.Configuration{}
				return setup{p: p, dsn: env.DSN(user), // no azure_credential: default
					opts: []driver.Option{driver.WithClientOptions(co)},
					env: map[string]string{
						"AZURE_CLIENT_ID": p.AppID, "AZURE_TENANT_ID": env.Tenant.ID(),
						"AZURE_FEDERATED_TOKEN_FILE": path, "AZURE_AUTHORITY_HOST": env.Authority.URL(),
					}}
			},
			check: e67CheckAuthorityOnly,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e67CleanEnv(t)
			env := startEnv(t)
			ctx := context.Background()
			p, err := tc.add(env.Tenant)
			if err != nil {
				t.Fatal(err)
			}
			if msg, err := env.CreatePrincipal(ctx, p, false); err != nil || msg != `Created role for "`+p.Name+`"` {
				t.Fatalf("create principal: %q, %v", msg, err)
			}
			user := p.Name
			if tc.derive {
				user = ""
			}
			s := tc.prepare(t, env, p, user)
			e67SetEnv(t, s.env)
			db := e67Open(t, s.dsn, s.opts...)
			if got := e67Who(t, db); got != p.Name {
				t.Errorf("current_user = %q, want %q", got, p.Name)
			}
			e67CheckFront(t, env, p, p.Name)
			if tc.check != nil {
				tc.check(t, env, p)
			}
		})
	}
}

// TestE2EAzureCLIOneRunFor50Connections opens 50 connections at once through
// azure_credential=azure_cli and the stand-in az: the token cache makes that
// one `az` process, not 50.
func TestE2EAzureCLIOneRunFor50Connections(t *testing.T) {
	const n = 50
	for _, derive := range []bool{false, true} {
		name := "user given"
		if derive {
			name = "user derived from upn"
		}
		t.Run(name, func(t *testing.T) {
			e67CleanEnv(t)
			env := startEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			u, err := env.Tenant.AddUser(e67Name("carol") + "@contoso.com")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.CreatePrincipal(ctx, u, false); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			az, err := entra.InstallFakeAZ(dir, env.Tenant, u)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			user := u.Name
			if derive {
				user = ""
			}
			// az needs no transport: plain sql.Open.
			db := e67Open(t, env.DSN(user, "azure_credential=azure_cli"))
			db.SetMaxOpenConns(n)

			conns := e67HoldConns(t, ctx, db, n)
			pids := map[int]bool{}
			for i, c := range conns {
				var who string
				var pid int
				if err := c.QueryRowContext(ctx, "select current_user, pg_backend_pid()").Scan(&who, &pid); err != nil {
					t.Fatalf("conn %d: %v", i, err)
				}
				if who != u.Name {
					t.Errorf("conn %d: current_user = %q, want %q", i, who, u.Name)
				}
				pids[pid] = true
			}
			if len(pids) != n {
				t.Errorf("%d distinct backends, want %d", len(pids), n)
			}
			for _, c := range conns {
				c.Close() // back to the pool, which now serves the next query
			}
			if got := e67Who(t, db); got != u.Name {
				t.Errorf("current_user = %q, want %q", got, u.Name)
			}
			if runs := az.Runs(); runs != 1 {
				t.Errorf("az ran %d times for %d connections, want exactly 1: %q", runs, n, az.Args())
			}
			if got := len(env.Front.Logins()); got != n {
				t.Errorf("front saw %d logins, want %d", got, n)
			}
			e67CheckFront(t, env, u, u.Name)
		})
	}
}

// TestE2EServiceConnector opens sql.Open("pgentra", "") configured only by
// Azure Service Connector's AZURE_POSTGRESQL_* variables.
func TestE2EServiceConnector(t *testing.T) {
	tests := []struct {
		name string
		add  func(tn *entra.Tenant) (entra.Principal, error)
		// vars returns the Service Connector variables (and others the
		// platform sets); viaConnector says the pool must be built with
		// NewConnector("") + WithClientOptions.
		vars         func(env *emulator.Env, p entra.Principal) map[string]string
		viaConnector bool
		check        func(t *testing.T, env *emulator.Env, p entra.Principal)
	}{
		{
			name: "user-assigned managed identity on App Service",
			add: func(tn *entra.Tenant) (entra.Principal, error) {
				return tn.AddUserAssignedIdentity(e67Name("id-sc-web"))
			},
			vars: func(env *emulator.Env, p entra.Principal) map[string]string {
				m := env.Identity.AppServiceEnv() // plain HTTP on loopback: sql.Open works
				m["AZURE_POSTGRESQL_CONNECTIONSTRING"] = env.DSN(p.Name)
				m["AZURE_POSTGRESQL_CLIENTID"] = p.AppID
				return m
			},
			check: func(t *testing.T, env *emulator.Env, p entra.Principal) {
				if n := env.Identity.RequestsFor(p); n != 1 {
					t.Errorf("identity endpoint requests for %s = %d, want 1", p.Name, n)
				}
				if n := env.Authority.Requests(); n != 0 {
					t.Errorf("authority requests = %d, want 0", n)
				}
			},
		},
		{
			name: "service principal with client secret",
			add: func(tn *entra.Tenant) (entra.Principal, error) {
				return tn.AddServicePrincipal(e67Name("sc-orders-api"))
			},
			vars: func(env *emulator.Env, p entra.Principal) map[string]string {
				return map[string]string{
					"AZURE_POSTGRESQL_CONNECTIONSTRING": env.DSN(p.Name),
					"AZURE_POSTGRESQL_CLIENTID":         p.AppID,
					"AZURE_POSTGRESQL_CLIENTSECRET":     p.ClientSecret,
					"AZURE_POSTGRESQL_TENANTID":         env.Tenant.ID(),
				}
			},
			// The authority's TLS certificate is trusted only by the
			// emulator's transport: NewConnector("", WithClientOptions).
			viaConnector: true,
			check:        e67CheckAuthorityOnly,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e67CleanEnv(t)
			env := startEnv(t)
			ctx := context.Background()
			p, err := tc.add(env.Tenant)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.CreatePrincipal(ctx, p, false); err != nil {
				t.Fatal(err)
			}
			e67SetEnv(t, tc.vars(env, p))
			var db *sql.DB
			if tc.viaConnector {
				db = e67Open(t, "", driver.WithClientOptions(env.ClientOptions()))
			} else {
				db = e67Open(t, "")
			}
			if got := e67Who(t, db); got != p.Name {
				t.Errorf("current_user = %q, want %q", got, p.Name)
			}
			e67CheckFront(t, env, p, p.Name)
			tc.check(t, env, p)
		})
	}
}

// e67Cred is a tiny azcore.TokenCredential for scenario tests: fn mints the
// token; calls counts GetToken calls per scope.
type e67Cred struct {
	fn    func(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error)
	mu    sync.Mutex
	calls map[string]int
	total atomic.Int32
}

func (c *e67Cred) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.total.Add(1)
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[strings.Join(opts.Scopes, " ")]++
	c.mu.Unlock()
	return c.fn(ctx, opts)
}

// Calls returns how many GetToken calls asked for scope.
func (c *e67Cred) Calls(scope string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[scope]
}

// e67Wrap counts the calls of a real credential.
func e67Wrap(inner azcore.TokenCredential) *e67Cred {
	return &e67Cred{fn: inner.GetToken}
}

// e67Minting returns a credential that mints tokens for p with audience
// directly from the tenant, without HTTP.
func e67Minting(tn *entra.Tenant, p entra.Principal, audience string) *e67Cred {
	return &e67Cred{fn: func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		tok, exp, err := tn.Mint(p, audience, 0)
		return azcore.AccessToken{Token: tok, ExpiresOn: exp}, err
	}}
}

// TestE2EDefaultCredentialTokenFileInDSNClientFromEnv: with azure_credential
// left at default, a DSN that names only azure_federated_token_file (the
// client and tenant IDs come from AZURE_CLIENT_ID / AZURE_TENANT_ID, as AKS
// workload identity sets them) must still log in with workload identity:
// docs/connection-string.md says azure_client_id defaults to AZURE_CLIENT_ID "where
// azidentity reads it", and WorkloadIdentityCredential does read it.
func TestE2EDefaultCredentialTokenFileInDSNClientFromEnv(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	p, err := env.Tenant.AddServicePrincipal(e67Name("orders-aks"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(context.Background(), p, false); err != nil {
		t.Fatal(err)
	}
	path, err := env.Tenant.WriteFederatedTokenFile(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	e67SetEnv(t, map[string]string{"AZURE_CLIENT_ID": p.AppID, "AZURE_TENANT_ID": env.Tenant.ID()})
	// The authority's TLS needs the emulator's transport: NewConnector + WithClientOptions.
	db := e67Open(t, env.DSN(p.Name, "azure_federated_token_file="+path), driver.WithClientOptions(env.ClientOptions()))
	if got := e67Who(t, db); got != p.Name {
		t.Errorf("current_user = %q, want %q", got, p.Name)
	}
	if n := env.Authority.RequestsFor(p); n != 1 {
		t.Errorf("authority token requests for %s = %d, want 1 (workload identity)", p.Name, n)
	}
}
