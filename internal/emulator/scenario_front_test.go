package emulator_test

// Scenario tests through the Entra-checking front (issue 3, item 7): token
// expiry and retry, refused tokens and the driver's hints, TLS verification,
// query cancellation, and a throttled or hung IMDS.

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
	"github.com/pgentra/pgentra/internal/emulator/testca"
	"github.com/pgentra/pgentra/token"
)

// e67FrozenClock is a token.Clock that never moves: the driver's cache keeps
// believing its token is fresh.
type e67FrozenClock struct{ t time.Time }

func (c e67FrozenClock) Now() time.Time { return c.t }

// e67Principal adds a user-assigned identity to env's tenant and, when
// create is true, makes it a database principal.
func e67Principal(t *testing.T, env *emulator.Env, base string, create bool) entra.Principal {
	t.Helper()
	p, err := env.Tenant.AddUserAssignedIdentity(e67Name(base))
	if err != nil {
		t.Fatal(err)
	}
	if create {
		if _, err := env.CreatePrincipal(context.Background(), p, false); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// e67RoleOfType registers p in the server's directory and creates its role
// with pgaadauth_create_principal_with_oid and the given type, e.g. "user"
// for an application: the mistake Azure refuses with its
// AAD_AUTH_TOKENTYPE_APP_USER messages.
func e67RoleOfType(t *testing.T, env *emulator.Env, p entra.Principal, typ string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.Register(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := env.AdminDB.ExecContext(ctx, `select * from pgaadauth_create_principal_with_oid($1, $2, $3, false, false)`, p.Name, p.ObjectID, typ); err != nil {
		t.Fatal(err)
	}
}

// e67MIDSN is a DSN that makes pgentra build a ManagedIdentityCredential
// for p (IMDS: use it with driver.WithClientOptions(env.ClientOptions())).
func e67MIDSN(env *emulator.Env, p entra.Principal, user string) string {
	return env.DSN(user, "azure_credential=managed_identity", "azure_client_id="+p.AppID)
}

// A token that the driver's cache still believes valid, but the server
// says has expired, is dropped and replaced once; the retry succeeds.
func TestScenarioExpiredCachedTokenRefreshedOnce(t *testing.T) {
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := e67Principal(t, env, "id-expiry", true)
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: env.ClientOptions(), ID: azidentity.ClientID(p.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	cred := e67Wrap(mi)
	// The cache's clock stands still, so it keeps serving its first token; the
	// tenant's clock (which the front checks exp against) is moved past it.
	c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(cred),
		driver.WithTokenCacheOptions(token.WithClock(e67FrozenClock{time.Now()})))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxIdleConns(0) // every query opens a new physical connection

	if got := e67Who(t, db); got != p.Name {
		t.Fatalf("first login: current_user = %q", got)
	}
	env.Front.Reset()
	env.Tenant.SetSkew(entra.ShortTestLifetime + time.Minute)

	var user string
	if err := db.QueryRowContext(ctx, "select current_user").Scan(&user); err != nil {
		t.Fatalf("login after expiry: %v", err)
	}
	if user != p.Name {
		t.Errorf("current_user = %q, want %q", user, p.Name)
	}
	logins := env.Front.Logins()
	if len(logins) != 2 {
		t.Fatalf("front saw %d logins after expiry, want 2 (refused, retried): %+v", len(logins), logins)
	}
	if l := logins[0]; l.OK || l.Code != pgfront.CodeInvalidAuthorization || l.Message != pgfront.MsgTokenExpired {
		t.Errorf("first login = %+v; want refused with %s %q", l, pgfront.CodeInvalidAuthorization, pgfront.MsgTokenExpired)
	}
	if l := logins[1]; !l.OK {
		t.Errorf("retry = %+v; want OK", l)
	}
	pws := env.Front.Passwords()
	if len(pws) != 2 || pws[0] == pws[1] {
		t.Errorf("front received %d passwords (distinct: %v); want the stale token, then a new one", len(pws), len(pws) == 2 && pws[0] != pws[1])
	}
	if n := cred.Calls(token.ScopePublic); n != 2 {
		t.Errorf("GetToken calls = %d, want 2 (first token, one refresh)", n)
	}
	if n := cred.total.Load(); n != 2 {
		t.Errorf("GetToken calls for any scope = %d, want 2", n)
	}
}

// Logins the front refuses come back as *driver.LoginError with Azure's
// message (reachable as *pq.Error) and pgentra's hint.
func TestScenarioLoginRefusedWithHint(t *testing.T) {
	env := startEnv(t)
	tests := []struct {
		name string
		// open returns the pool and the role the login should name.
		open                 func(t *testing.T) (db *sql.DB, user string)
		wantCode, wantMsgFmt string // wantMsgFmt may hold %s for the user
		wantHint             []string
		wantDerived          bool
	}{
		{
			name: "token for another audience",
			open: func(t *testing.T) (*sql.DB, string) {
				p := e67Principal(t, env, "id-audience", true)
				// A token minted for ARM instead of the database.
				cred := e67Minting(env.Tenant, p, entra.ManagementAudience)
				return e67Open(t, env.DSN(p.Name), driver.WithCredential(cred)), p.Name
			},
			wantCode:   pgfront.CodeInvalidAuthorization,
			wantMsgFmt: pgfront.MsgInvalidAudience(entra.DatabaseAudience),
			wantHint:   []string{"another resource", token.ScopePublic},
		},
		{
			name: "managed identity, role created as a user",
			open: func(t *testing.T) (*sql.DB, string) {
				p := e67Principal(t, env, "id-usertype", false)
				e67RoleOfType(t, env, p, "user")
				return e67Open(t, e67MIDSN(env, p, p.Name), driver.WithClientOptions(env.ClientOptions())), p.Name
			},
			wantCode:   pgfront.CodeInvalidAuthorization,
			wantMsgFmt: `Microsoft Entra user token for role "%s" is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token.`,
			wantHint:   []string{"managed identity", "pgaadauth_create_principal_with_oid('%s', '", "', 'service', false, false)"},
		},
		{
			name: "service principal, role created as a user",
			open: func(t *testing.T) (*sql.DB, string) {
				sp, err := env.Tenant.AddServicePrincipal(e67Name("sp-usertype"))
				if err != nil {
					t.Fatal(err)
				}
				e67RoleOfType(t, env, sp, "user")
				return e67Open(t, env.DSN(sp.Name), driver.WithCredential(e67Minting(env.Tenant, sp, entra.DatabaseScope))), sp.Name
			},
			wantCode:   pgfront.CodeInvalidAuthorization,
			wantMsgFmt: `Service principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role "%s"`,
			wantHint:   []string{"service principal", "pgaadauth_create_principal_with_oid('%s', '", "', 'service', false, false)"},
		},
		{
			name: "token of another tenant",
			open: func(t *testing.T) (*sql.DB, string) {
				p := e67Principal(t, env, "id-tenant", true)
				other, err := entra.NewTenant(entra.TenantOptions{TokenLifetime: entra.ShortTestLifetime})
				if err != nil {
					t.Fatal(err)
				}
				q, err := other.AddUserAssignedIdentity(p.Name)
				if err != nil {
					t.Fatal(err)
				}
				return e67Open(t, env.DSN(p.Name), driver.WithCredential(e67Minting(other, q, entra.DatabaseScope))), p.Name
			},
			wantCode:   pgfront.CodeInvalidAuthorization,
			wantMsgFmt: "An error occurred while validating the access token. Please acquire a new token and retry",
			wantHint:   []string{"tenant", "authority", "clock"},
		},
		{
			name: "user given, another identity's role",
			open: func(t *testing.T) (*sql.DB, string) {
				p := e67Principal(t, env, "id-mine", true)
				u, err := env.Tenant.AddUser(e67Name("erin") + "@contoso.com")
				if err != nil {
					t.Fatal(err)
				}
				return e67Open(t, env.DSN(p.Name), driver.WithCredential(e67Minting(env.Tenant, u, entra.DatabaseScope))), p.Name
			},
			wantCode:   pgfront.CodeInvalidPassword,
			wantMsgFmt: pgfront.MsgPasswordFailed("%s"),
			wantHint:   []string{"this token's identity maps to role \"erin-e67-"},
		},
		{
			name: "unknown principal, user given",
			open: func(t *testing.T) (*sql.DB, string) {
				p := e67Principal(t, env, "id-ghost", false) // never created in the database
				return e67Open(t, e67MIDSN(env, p, p.Name), driver.WithClientOptions(env.ClientOptions())), p.Name
			},
			wantCode:   pgfront.CodeInvalidPassword,
			wantMsgFmt: pgfront.MsgPasswordFailed("%s"),
			wantHint:   []string{"pgaadauth_create_principal('%s', false, false)"},
		},
		{
			name: "unknown principal, user derived",
			open: func(t *testing.T) (*sql.DB, string) {
				p := e67Principal(t, env, "id-phantom", false)
				return e67Open(t, e67MIDSN(env, p, ""), driver.WithClientOptions(env.ClientOptions())), p.Name
			},
			wantCode:    pgfront.CodeInvalidPassword,
			wantMsgFmt:  pgfront.MsgPasswordFailed("%s"),
			wantHint:    []string{"pgaadauth_create_principal('%s', false, false)"},
			wantDerived: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env.Front.Reset()
			db, user := tc.open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := db.PingContext(ctx)
			if err == nil {
				t.Fatal("login succeeded, want it refused")
			}
			wantMsg := strings.ReplaceAll(tc.wantMsgFmt, "%s", user)
			var le *driver.LoginError
			if !errors.As(err, &le) {
				t.Fatalf("error %T %v is not a *driver.LoginError", err, err)
			}
			if le.User != user || le.Derived != tc.wantDerived {
				t.Errorf("LoginError user %q derived %v; want %q, %v", le.User, le.Derived, user, tc.wantDerived)
			}
			for _, h := range tc.wantHint {
				if h = strings.ReplaceAll(h, "%s", user); !strings.Contains(le.Hint, h) {
					t.Errorf("hint %q lacks %q", le.Hint, h)
				}
			}
			var pe *pq.Error
			if !errors.As(err, &pe) {
				t.Fatalf("errors.As(*pq.Error) failed for %v", err)
			}
			if string(pe.Code) != tc.wantCode || pe.Message != wantMsg {
				t.Errorf("server error %s %q; want %s %q", pe.Code, pe.Message, tc.wantCode, wantMsg)
			}
			// The message quotes the server and links the troubleshooting
			// page; the full hint is in le.Hint.
			if !strings.Contains(err.Error(), wantMsg) || !strings.Contains(err.Error(), "docs/troubleshooting.md#") || le.Hint == "" {
				t.Errorf("error text %q should quote the server's message and link the troubleshooting page (hint %q)", err, le.Hint)
			}
			// The token was fetched for this very login: no pointless retry.
			if n := len(env.Front.Logins()); n != 1 {
				t.Errorf("front saw %d logins, want 1", n)
			}
		})
	}
}

// e67OtherFront starts a second front with tlsConf in front of env's
// backend, with the same checks as env.Front.
func e67OtherFront(t *testing.T, env *emulator.Env, ca *testca.CA, hosts ...string) *pgfront.Front {
	t.Helper()
	tlsConf, err := ca.ServerTLS(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	f, err := env.StartFront(tlsConf, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// verify-full against the test CA succeeds; a front whose certificate names
// another host, or comes from another CA, is refused before any token is
// sent — also when the DSN names no sslmode (pgentra's default is
// verify-full, not pq's require).
func TestScenarioTLSVerification(t *testing.T) {
	env := startEnv(t)
	p := e67Principal(t, env, "id-tls", true)
	otherCA, err := testca.New()
	if err != nil {
		t.Fatal(err)
	}
	fronts := map[string]*pgfront.Front{
		"env":        env.Front,
		"wrong host": e67OtherFront(t, env, env.CA, "other.invalid"),
		"other CA":   e67OtherFront(t, env, otherCA, emulator.Host, "127.0.0.1"),
	}
	tests := []struct {
		name, front string
		sslmode     string // "" leaves sslmode out of the DSN
		wantErr     string // "" for success; else a substring of the error
	}{
		{name: "verify-full, test CA, right host", front: "env", sslmode: "verify-full"},
		{name: "default sslmode, test CA, right host", front: "env"},
		{name: "verify-full, certificate for another host", front: "wrong host", sslmode: "verify-full", wantErr: "other.invalid"},
		{name: "default sslmode, certificate for another host", front: "wrong host", wantErr: "other.invalid"},
		{name: "default sslmode, certificate from another CA", front: "other CA", wantErr: "unknown authority"},
		{name: "verify-ca, certificate from another CA", front: "other CA", sslmode: "verify-ca", wantErr: "unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fronts[tc.front]
			f.Reset()
			dsn := fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslrootcert=%s", emulator.Host, f.Port(), p.Name, env.CAFile)
			if tc.sslmode != "" {
				dsn += " sslmode=" + tc.sslmode
			}
			cred := e67Minting(env.Tenant, p, entra.DatabaseAudience)
			db := e67Open(t, dsn, driver.WithCredential(cred))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var user string
			err := db.QueryRowContext(ctx, "select current_user").Scan(&user)
			if tc.wantErr == "" {
				if err != nil || user != p.Name {
					t.Fatalf("current_user = %q, %v; want %q", user, err, p.Name)
				}
				if l := f.Logins(); len(l) != 1 || !l[0].TLS || !l[0].OK {
					t.Errorf("front logins: %+v", l)
				}
				return
			}
			if err == nil {
				t.Fatalf("connected as %q; want the certificate refused", user)
			}
			var (
				he x509.HostnameError
				ue x509.UnknownAuthorityError
				le *driver.LoginError
			)
			switch tc.wantErr {
			case "other.invalid":
				if !errors.As(err, &he) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q; want an x509.HostnameError naming %q", err, tc.wantErr)
				}
			case "unknown authority":
				if !errors.As(err, &ue) {
					t.Errorf("error %q; want an x509.UnknownAuthorityError", err)
				}
			}
			if !errors.As(err, &le) || !strings.Contains(le.Hint, "TLS") {
				t.Errorf("error %q; want a *driver.LoginError whose hint points at TLS", err)
			}
			if cred.total.Load() == 0 {
				t.Errorf("no token was fetched: the test did not get as far as the TLS check")
			}
			if pws := f.Passwords(); len(pws) != 0 {
				t.Errorf("front received %d passwords from an unverified connection, want 0", len(pws))
			}
			if l := f.Logins(); len(l) != 0 {
				t.Errorf("front saw logins from an unverified connection: %+v", l)
			}
		})
	}
}

// Cancelling a running query through its context returns at once and
// cancels it on the server (the front forwards pq's CancelRequest), whether
// the connection was pooled before or opened with that same context.
func TestScenarioCancelRunningQuery(t *testing.T) {
	env := startEnv(t)
	p := e67Principal(t, env, "id-cancel", true)
	for _, warm := range []bool{true, false} {
		name := "pooled connection"
		if !warm {
			name = "connection opened with the query's context"
		}
		t.Run(name, func(t *testing.T) {
			db := e67Open(t, env.DSN(p.Name), driver.WithCredential(e67Minting(env.Tenant, p, entra.DatabaseAudience)))
			if warm {
				if err := db.PingContext(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			env.Front.Reset()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := db.ExecContext(ctx, "select pg_sleep(30)")
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("pg_sleep(30) finished; want it cancelled")
			}
			// Well under the 30 s sleep; the rest is room for a busy machine.
			if elapsed >= 10*time.Second {
				t.Errorf("cancelled query returned after %v, want < 10s (the sleep is 30 s)", elapsed)
			}
			var pe *pq.Error
			if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &pe) && pe.Code == "57014") {
				t.Errorf("error = %v; want context.DeadlineExceeded or query_canceled (57014)", err)
			}
			// The CancelRequest reached the server and the backend stopped sleeping.
			deadline := time.Now().Add(3 * time.Second)
			for {
				var sleeping int
				qerr := env.AdminDB.QueryRow(`select count(*) from pg_stat_activity
					where pid <> pg_backend_pid() and state = 'active' and query like '%pg_sleep(30)%'`).Scan(&sleeping)
				if qerr != nil {
					t.Fatal(qerr)
				}
				if env.Front.Cancels() >= 1 && sleeping == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after cancel: front forwarded %d CancelRequests, %d backends still in pg_sleep", env.Front.Cancels(), sleeping)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The pool still works.
			if got := e67Who(t, db); got != p.Name {
				t.Errorf("current_user = %q", got)
			}
		})
	}
}

// IMDS answering 429 or 5xx before a token: azidentity retries (fast, with
// the emulator's retry options) and the connection succeeds.
func TestScenarioIMDSTransientErrors(t *testing.T) {
	env := startEnv(t)
	tests := []struct {
		name   string
		script []entra.Fault
	}{
		{"429, 429, 200", []entra.Fault{{Status: 429}, {Status: 429}, {}}},
		{"429 with Retry-After, 200", []entra.Fault{{Status: 429, RetryAfter: 50 * time.Millisecond}, {}}},
		{"503, 500, 200", []entra.Fault{{Status: 503}, {Status: 500}, {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := e67Principal(t, env, "id-throttled", true)
			env.Front.Reset()
			env.Identity.Script(tc.script...)
			// IMDS needs the emulator's transport: NewConnector + WithClientOptions.
			db := e67Open(t, e67MIDSN(env, p, p.Name), driver.WithClientOptions(env.ClientOptions()))
			if got := e67Who(t, db); got != p.Name {
				t.Errorf("current_user = %q, want %q", got, p.Name)
			}
			if n := env.Identity.Pending(); n != 0 {
				t.Errorf("%d scripted faults not consumed", n)
			}
			if n, want := env.Identity.RequestsFor(p), len(tc.script); n != want {
				t.Errorf("IMDS requests for %s = %d, want %d", p.Name, n, want)
			}
			if l := env.Front.Logins(); len(l) != 1 || !l[0].OK {
				t.Errorf("front logins = %+v, want one successful", l)
			}
		})
	}
}

// An IMDS that never answers does not hang Connect: it returns at the
// caller's deadline with an error wrapping context.DeadlineExceeded, sends
// nothing to the server, and closing the connector stops the fetch.
func TestScenarioIMDSHangHonoursContext(t *testing.T) {
	env := startEnv(t)
	p := e67Principal(t, env, "id-hang", true)
	env.Identity.SetDefault(entra.Fault{Hang: true})
	// IMDS needs the emulator's transport: NewConnector + WithClientOptions.
	c, err := driver.NewConnector(e67MIDSN(env, p, p.Name), driver.WithClientOptions(env.ClientOptions()))
	if err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	closeConnector := func() { closeOnce.Do(func() { c.Close() }) }
	t.Cleanup(closeConnector)

	connectFailsAtDeadline(t, c, 300*time.Millisecond, 5*time.Second, "against a hung IMDS") // the hang is endless: 5 s is room for a busy machine
	if n := env.Identity.RequestsFor(p); n < 1 {
		t.Errorf("IMDS requests = %d, want at least 1", n)
	}
	if n := len(env.Front.Passwords()); n != 0 {
		t.Errorf("front received %d passwords, want 0", n)
	}
	// Close cancels the fetch still hanging in the background.
	done := make(chan struct{})
	go func() { closeConnector(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Error("Connector.Close did not return within 3s of a hung fetch")
	}
}

// Careless TLS settings get hints that name the TLS setting to fix: a
// cleartext login to a server that requires TLS (sslmode), and an
// sslrootcert file that does not exist (sslrootcert and Azure's roots).
func TestScenarioTLSMistakesHint(t *testing.T) {
	env := startEnv(t)
	p := e67Principal(t, env, "id-tlsmiss", true)
	tlsConf, err := env.CA.ServerTLS(emulator.Host, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	strict, err := env.StartFront(tlsConf, true, nil) // require_secure_transport=on
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { strict.Close() })
	for _, tc := range []struct {
		name, dsn string
		want      []string
	}{
		{"sslmode=disable to a server requiring TLS",
			fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=%s sslmode=disable", strict.Port(), p.Name),
			[]string{"sslmode=verify-full", "encrypted"}},
		{"missing sslrootcert",
			fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=verify-full sslrootcert=%s/none.pem", emulator.Host, strict.Port(), p.Name, t.TempDir()),
			[]string{"sslrootcert", "DigiCert Global Root G2", "DigiCert Global Root CA", "Microsoft RSA Root CA 2017"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := e67Open(t, tc.dsn, driver.WithCredential(e67Minting(env.Tenant, p, entra.DatabaseScope)))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := db.PingContext(ctx)
			var le *driver.LoginError
			if !errors.As(err, &le) {
				t.Fatalf("error %v (%T); want a *driver.LoginError", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(le.Hint, w) {
					t.Errorf("hint %q lacks %q", le.Hint, w)
				}
			}
			if pws := strict.Passwords(); len(pws) != 0 {
				t.Errorf("the front received %d passwords", len(pws))
			}
		})
	}
}

// connectFailsAtDeadline asserts that c.Connect with a deadline d fails with
// an error wrapping context.DeadlineExceeded within max, while what stalls
// it (named by why) goes on.
func connectFailsAtDeadline(t *testing.T, c *driver.Connector, d, max time.Duration, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	conn, err := c.Connect(ctx)
	elapsed := time.Since(start)
	if err == nil {
		conn.Close()
		t.Fatalf("Connect succeeded %s", why)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v; want it to wrap context.DeadlineExceeded", err)
	}
	if elapsed > max {
		t.Errorf("Connect with a %v deadline returned after %v %s", d, elapsed, why)
	}
}
