package emulator_test

// Issue 10 item 5 and issue 14 item 4 against the emulator with the real
// azidentity credentials: after the server refuses a cached token, the retry
// uses a token the credential really issued anew (MSAL caches tokens living
// longer than 5 minutes, so only a claims challenge gets a new one), or
// there is no retry when the credential can only hand the same token back.
// Counted: the front's logins and passwords, the identity endpoint's and the
// authority's requests, az runs.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// retryCase builds a pool for one credential kind and counts that
// credential's token requests.
type retryCase struct {
	name string
	// open creates the principal and the pool; requests counts the token
	// requests of the credential so far.
	open func(t *testing.T, env *emulator.Env) (db *sql.DB, user string, requests func() int)
	// newToken: the credential can issue a new token while its own cache
	// still holds the refused one.
	newToken bool
}

func retryCases() []retryCase {
	miOpen := func(appService bool) func(t *testing.T, env *emulator.Env) (*sql.DB, string, func() int) {
		return func(t *testing.T, env *emulator.Env) (*sql.DB, string, func() int) {
			p := e67Principal(t, env, "id-retry", true)
			dsn := e67MIDSN(env, p, p.Name)
			if appService {
				e67SetEnv(t, env.Identity.AppServiceEnv())
				return e67Open(t, dsn), p.Name, func() int { return env.Identity.RequestsFor(p) }
			}
			// IMDS needs the emulator's transport.
			return e67Open(t, dsn, driver.WithClientOptions(env.ClientOptions())), p.Name, func() int { return env.Identity.RequestsFor(p) }
		}
	}
	spOpen := func(workload bool) func(t *testing.T, env *emulator.Env) (*sql.DB, string, func() int) {
		return func(t *testing.T, env *emulator.Env) (*sql.DB, string, func() int) {
			p, err := env.Tenant.AddServicePrincipal(e67Name("sp-retry"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.CreatePrincipal(context.Background(), p, false); err != nil {
				t.Fatal(err)
			}
			dsn := env.DSN(p.Name, "azure_client_id="+p.AppID, "azure_tenant_id="+env.Tenant.ID())
			if workload {
				path, err := env.Tenant.WriteFederatedTokenFile(t.TempDir(), p)
				if err != nil {
					t.Fatal(err)
				}
				dsn += " azure_credential=workload_identity azure_federated_token_file=" + path
			} else {
				t.Setenv("AZURE_CLIENT_SECRET", p.ClientSecret)
				dsn += " azure_credential=client_secret"
			}
			// The authority's TLS needs the emulator's transport.
			return e67Open(t, dsn, driver.WithClientOptions(env.ClientOptions())), p.Name, func() int { return env.Authority.RequestsFor(p) }
		}
	}
	return []retryCase{
		{name: "managed identity IMDS", open: miOpen(false), newToken: true},
		{name: "managed identity App Service", open: miOpen(true), newToken: true},
		{name: "client secret", open: spOpen(false), newToken: true},
		{name: "workload identity", open: spOpen(true), newToken: true},
		{name: "azure cli", newToken: false, open: func(t *testing.T, env *emulator.Env) (*sql.DB, string, func() int) {
			u, err := env.Tenant.AddUser(e67Name("dana") + "@contoso.com")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.CreatePrincipal(context.Background(), u, false); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			az, err := entra.InstallFakeAZ(dir, env.Tenant, u)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			return e67Open(t, env.DSN(u.Name, "azure_credential=azure_cli")), u.Name, az.Runs
		}},
	}
}

// TestScenarioRetryGetsReallyNewToken: tokens live an hour, so MSAL caches
// them. Then the administrator drops the role, so the server refuses the
// token the pool has cached. The one retry must send a different token,
// asked for past MSAL's cache (it is refused too: the role is gone); az,
// whose token cannot be replaced, gets no retry. (The server's clock moving
// ahead would do as well for the managed identity and the client secret, but
// not for workload identity: its federated assertion would be expired for
// the tenant too, and azidentity keeps reading it for 10 minutes.)
func TestScenarioRetryGetsReallyNewToken(t *testing.T) {
	for _, tc := range retryCases() {
		t.Run(tc.name, func(t *testing.T) {
			e67CleanEnv(t)
			env := startEnv(t)
			env.Tenant.SetTokenLifetime(time.Hour)
			db, user, requests := tc.open(t, env)
			db.SetMaxIdleConns(0) // every ping logs in
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := db.PingContext(ctx); err != nil {
				t.Fatalf("first login: %v", err)
			}
			if n := requests(); n != 1 {
				t.Fatalf("token requests for the first login = %d, want 1", n)
			}
			if _, err := env.AdminDB.ExecContext(ctx, "drop role "+pq.QuoteIdentifier(user)); err != nil {
				t.Fatal(err)
			}
			env.Front.Reset()
			err := db.PingContext(ctx)
			logins, pws := env.Front.Logins(), env.Front.Passwords()
			var pe *pq.Error
			var le *driver.LoginError
			if !errors.As(err, &pe) || pe.Code != "28P01" || !errors.As(err, &le) || le.User != user {
				t.Fatalf("error %v; want the server's 28P01 refusal for %q in a *driver.LoginError", err, user)
			}
			for i, l := range logins {
				if l.OK || l.Code != "28P01" {
					t.Errorf("login %d = %+v; want refused 28P01", i, l)
				}
			}
			// Two token requests: the first token, and one asking past the
			// credential's cache; one retry, only with a new token.
			want := 1
			if tc.newToken {
				want = 2
			}
			if n := requests(); n != 2 {
				t.Errorf("token requests = %d, want 2 (the first token, one for the retry)", n)
			}
			if len(logins) != want || len(pws) != want {
				t.Fatalf("front saw %d logins, %d passwords; want %d", len(logins), len(pws), want)
			}
			if want == 2 && pws[0] == pws[1] {
				t.Errorf("the retry sent the refused token again; want a new one")
			}
			// The pool does not ask for more tokens for the same refusal.
			if err := db.PingContext(ctx); !errors.As(err, &pe) {
				t.Fatalf("next ping: %v", err)
			}
			if n := requests(); n != 2 {
				t.Errorf("token requests after one more ping = %d, want still 2", n)
			}
		})
	}
}

// skewRun is what 30 pings, one new connection each, saw.
type skewRun struct {
	failed, logins, refused, distinct, maxSends, requests int
	hints                                                 map[string]int
}

func (r skewRun) String() string {
	return fmt.Sprintf("%d of 30 pings failed; %d logins (%d refused); %d distinct tokens sent, the most-sent one %d times; %d token requests",
		r.failed, r.logins, r.refused, r.distinct, r.maxSends, r.requests)
}

// TestScenarioClockSkew (issue 14 item 4): this machine's clock is 6
// minutes behind Entra's and the server's, tokens live 10 s (scaled down
// here to 2 s and one ping every 200 ms: the same 30 pings over three token
// lives). The credential's cache (MSAL, az) believes a token lives 6 min
// longer than the server does. A managed identity asked past MSAL's cache
// gives a new token, so no ping fails; az can't, so its pings fail — each
// refused token is sent at most twice (refused, and never again after the
// credential handed it back) and the error names the clock skew.
func TestScenarioClockSkew(t *testing.T) {
	const (
		skew = 6 * time.Minute
		// A retry's new token must outlive a connect on a busy machine: 4 s.
		lifetime = 4 * time.Second
		interval = 300 * time.Millisecond
		pings    = 30
	)
	for _, tc := range retryCases() {
		if tc.name != "managed identity IMDS" && tc.name != "azure cli" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			e67CleanEnv(t)
			env := startEnv(t)
			env.Tenant.SetSkew(skew)
			env.Tenant.SetTokenLifetime(lifetime)
			db, _, requests := tc.open(t, env)
			db.SetMaxIdleConns(0)
			run := skewRun{hints: map[string]int{}}
			for range pings {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := db.PingContext(ctx)
				cancel()
				if err != nil {
					run.failed++
					var le *driver.LoginError
					if !errors.As(err, &le) {
						t.Fatalf("ping: %v; want a *driver.LoginError", err)
					}
					run.hints[le.Hint[:min(len(le.Hint), 40)]]++
					if !strings.Contains(le.Hint, "clock skew") || strings.Contains(le.Hint, "azure_refresh_margin") {
						t.Errorf("hint %q; want clock skew named, no azure_refresh_margin", le.Hint)
					}
				}
				time.Sleep(interval)
			}
			logins, pws := env.Front.Logins(), env.Front.Passwords()
			sends := map[string]int{}
			refusedSends := map[string]int{}
			for i, pw := range pws {
				sends[pw]++
				if i < len(logins) && !logins[i].OK {
					refusedSends[pw]++
				}
				run.maxSends = max(run.maxSends, sends[pw])
			}
			for _, l := range logins {
				if !l.OK {
					run.refused++
				}
			}
			run.logins, run.distinct, run.requests = len(logins), len(sends), requests()
			t.Logf("%s, skew %s, tokens of %s: %s", tc.name, skew, lifetime, run)
			for pw, n := range refusedSends {
				if n > 1 {
					t.Errorf("a token was refused %d times: it must not be sent again once refused (token #%d)", n, indexOf(pws, pw))
				}
			}
			if tc.newToken && run.failed != 0 {
				t.Errorf("%d pings failed; want none: the managed identity issues a new token past MSAL's cache", run.failed)
			}
			if !tc.newToken && run.failed == 0 {
				t.Errorf("no ping failed with az under a %s skew: the test did not model the skew", skew)
			}
		})
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// Issue 10 item 4 with a real managed identity: the management-scope
// request of the user-name lookup hangs at IMDS. A Connect with a 200 ms
// deadline returns at its deadline while another Connect waits for that
// lookup, and the lookup is one IMDS request for both.
func TestScenarioUserLookupHonoursDeadline(t *testing.T) {
	env := startEnv(t)
	p := e67Principal(t, env, "id-lookup", true)
	env.Identity.Script(entra.Fault{}, entra.Fault{Hang: true}) // the database token, then the hung lookup
	c, err := driver.NewConnector(e67MIDSN(env, p, ""), driver.WithClientOptions(env.ClientOptions()))
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	ctxA, cancelA := context.WithCancel(context.Background())
	go func() {
		conn, err := c.Connect(ctxA)
		if conn != nil {
			conn.Close()
		}
		first <- err
	}()
	for env.Identity.RequestsFor(p) < 2 { // the lookup is at IMDS
		time.Sleep(5 * time.Millisecond)
	}
	connectFailsAtDeadline(t, c, 200*time.Millisecond, 5*time.Second, "while another Connect's user-name lookup hangs")
	select {
	case err := <-first:
		t.Errorf("the first Connect returned (%v) although its lookup still hangs", err)
	default:
	}
	if n := env.Identity.RequestsFor(p); n != 2 {
		t.Errorf("IMDS requests = %d, want 2 (one token, one shared lookup)", n)
	}
	cancelA()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first Connect: %v; want it to wrap context.Canceled", err)
	}
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("Close did not stop the hung lookup")
	}
}
