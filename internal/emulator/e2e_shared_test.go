package emulator_test

// One token per identity, not per pool (issue 21 item 6): pools opened from
// DSNs with the same credential settings share one credential and token
// cache in the process, so 50 pools run `az` once, or ask Entra once, per
// token — and the cache lives until the last of them is closed.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

const sharedPools = 50

// sharedQueryAll runs `select current_user` once on every pool, all at once,
// and fails unless each ran as want.
func sharedQueryAll(t *testing.T, ctx context.Context, dbs []*sql.DB, want string) {
	t.Helper()
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			var who string
			if err := db.QueryRowContext(ctx, "select current_user").Scan(&who); err != nil {
				errs[i] = err
			} else if who != want {
				errs[i] = fmt.Errorf("current_user = %q, want %q", who, want)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pool %d: %v", i, err)
		}
	}
}

// sharedQuery runs `select current_user` on db.
func sharedQuery(ctx context.Context, db *sql.DB) (string, error) {
	var who string
	err := db.QueryRowContext(ctx, "select current_user").Scan(&who)
	return who, err
}

// tokenGoroutines counts goroutines running code of pgentra's token or
// driver packages (the test's own excluded).
func tokenGoroutines() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	n := 0
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "created by testing.") || strings.Contains(g, "emulator_test.") {
			continue
		}
		if strings.Contains(g, "pgentra/pgentra/token.") || strings.Contains(g, "pgentra/pgentra/driver.") {
			n++
		}
	}
	return n
}

// sharedCheckClosed: once every pool is closed, the shared cache is closed
// and no goroutine of pgentra is left beyond the before count.
func sharedCheckClosed(t *testing.T, cache *token.Cache, before int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cache.Token(ctx); !errors.Is(err, token.ErrClosed) {
		t.Errorf("after closing every pool: cache.Token = %v, want token.ErrClosed", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tokenGoroutines() > before {
		if time.Now().After(deadline) {
			t.Errorf("%d pgentra goroutines left after closing every pool, %d before", tokenGoroutines(), before)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sharedOpenPools opens n-1 pools with open and one with NewConnector (the
// probe: its TokenCache is the pools' shared cache when sharing works).
// Every pool logs in anew for each query (no idle connections).
func sharedOpenPools(t *testing.T, n int, open func() (*sql.DB, error), probe func() (*driver.Connector, error)) ([]*sql.DB, *driver.Connector) {
	t.Helper()
	var dbs []*sql.DB
	for range n - 1 {
		db, err := open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	c, err := probe()
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	dbs = append(dbs, db)
	for _, db := range dbs {
		db.SetMaxIdleConns(0)
	}
	return dbs, c
}

// TestE2ESharedAzureCLI50Pools: 50 pools opened with sql.Open and
// azure_credential=azure_cli run the stand-in az once for their first
// token, and once more when that token is replaced; closing 49 pools keeps
// the 50th working, closing all closes the cache.
func TestE2ESharedAzureCLI50Pools(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, err := env.Tenant.AddUser(e67Name("dana") + "@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	// An hour, as Azure's: the first round can't outlive the token on a busy
	// machine; the token is replaced below on purpose.
	if err := env.Tenant.SetPrincipalLifetime(u, time.Hour); err != nil {
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
	before := tokenGoroutines()

	dsn := env.DSN(u.Name, "azure_credential=azure_cli")
	dbs, probe := sharedOpenPools(t, sharedPools,
		func() (*sql.DB, error) { return sql.Open(driver.DriverName, dsn) },
		func() (*driver.Connector, error) { return driver.NewConnector(dsn) })
	sharedQueryAll(t, ctx, dbs, u.Name)
	if runs := az.Runs(); runs != 1 {
		t.Errorf("az ran %d times for %d pools of one identity, want 1", runs, sharedPools)
	}

	// The token is replaced (as at the end of its lifetime): one az run
	// serves every pool again.
	cache := probe.TokenCache()
	tok, err := cache.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := az.Refresh(); err != nil {
		t.Fatal(err)
	}
	sharedRefresh(t, ctx, cache, tok.Token)
	sharedQueryAll(t, ctx, dbs, u.Name)
	if runs := az.Runs(); runs != 2 {
		t.Errorf("az ran %d times after the token was replaced, want 2 (one per token)", runs)
	}

	// Closing 49 pools leaves the 50th a working cache, which still fetches.
	last := dbs[len(dbs)-1]
	for _, db := range dbs[:len(dbs)-1] {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if who, err := sharedQuery(ctx, last); err != nil || who != u.Name {
		t.Fatalf("the 50th pool after closing 49: %q, %v", who, err)
	}
	tok, err = cache.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := az.Refresh(); err != nil {
		t.Fatal(err)
	}
	sharedRefresh(t, ctx, cache, tok.Token)
	if who, err := sharedQuery(ctx, last); err != nil || who != u.Name {
		t.Fatalf("the 50th pool with a new token: %q, %v", who, err)
	}
	if runs := az.Runs(); runs != 3 {
		t.Errorf("az ran %d times, want 3", runs)
	}
	for i, l := range env.Front.Logins() {
		if !l.OK {
			t.Errorf("login %d refused: %+v", i, l)
		}
	}

	if err := last.Close(); err != nil {
		t.Fatal(err)
	}
	sharedCheckClosed(t, cache, before)
}

// TestE2ESharedWorkloadIdentity50Pools: 50 pools of one workload identity
// (same DSN, same client options) make one token request to Entra between
// them; closing 49 keeps the 50th working; closing all closes the cache.
// They are built with NewConnector + WithClientOptions: the authority's TLS
// certificate is trusted only by the emulator's transport. One
// ClientOptions value serves them all, as an application would pass it.
func TestE2ESharedWorkloadIdentity50Pools(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := env.Tenant.AddServicePrincipal(e67Name("orders-shared"))
	if err != nil {
		t.Fatal(err)
	}
	// Under MSAL's 5-minute caching threshold (every GetToken reaches the
	// authority), long enough that the first round can't outlive half of it.
	if err := env.Tenant.SetPrincipalLifetime(p, 4*time.Minute+30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	path, err := env.Tenant.WriteFederatedTokenFile(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	before := tokenGoroutines()
	dsn := env.DSN(p.Name, "azure_credential=workload_identity", "azure_client_id="+p.AppID,
		"azure_tenant_id="+env.Tenant.ID(), "azure_federated_token_file="+path)
	co := env.ClientOptions()
	connector := func() (*driver.Connector, error) { return driver.NewConnector(dsn, driver.WithClientOptions(co)) }
	dbs, probe := sharedOpenPools(t, sharedPools,
		func() (*sql.DB, error) {
			c, err := connector()
			if err != nil {
				return nil, err
			}
			return sql.OpenDB(c), nil
		}, connector)
	sharedQueryAll(t, ctx, dbs, p.Name)
	if n := env.Authority.RequestsFor(p); n != 1 {
		t.Errorf("Entra token requests = %d for %d pools of one workload identity, want 1", n, sharedPools)
	}

	cache := probe.TokenCache()
	last := dbs[len(dbs)-1]
	for _, db := range dbs[:len(dbs)-1] {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := cache.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sharedRefresh(t, ctx, cache, tok.Token) // the 50th's cache must still fetch
	if who, err := sharedQuery(ctx, last); err != nil || who != p.Name {
		t.Fatalf("the 50th pool after closing 49: %q, %v", who, err)
	}
	if n := env.Authority.RequestsFor(p); n != 2 {
		t.Errorf("Entra token requests = %d, want 2 (the first token and its replacement)", n)
	}
	e67CheckFront(t, env, p, p.Name)

	if err := last.Close(); err != nil {
		t.Fatal(err)
	}
	sharedCheckClosed(t, cache, before)
}

// TestE2ESharedIdentitiesApart: pools of two workload identities opened
// side by side, with the same client options, never share a token: each
// identity is asked once and each pool logs in as its own.
func TestE2ESharedIdentitiesApart(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	co := env.ClientOptions()
	var sps []entra.Principal
	var dbs []*sql.DB
	for _, name := range []string{"billing-a", "billing-b"} {
		p, err := env.Tenant.AddServicePrincipal(e67Name(name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.CreatePrincipal(ctx, p, false); err != nil {
			t.Fatal(err)
		}
		path, err := env.Tenant.WriteFederatedTokenFile(t.TempDir(), p)
		if err != nil {
			t.Fatal(err)
		}
		sps = append(sps, p)
		for range 3 {
			c, err := driver.NewConnector(env.DSN(p.Name, "azure_credential=workload_identity", "azure_client_id="+p.AppID,
				"azure_tenant_id="+env.Tenant.ID(), "azure_federated_token_file="+path), driver.WithClientOptions(co))
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			t.Cleanup(func() { db.Close() })
			dbs = append(dbs, db)
		}
	}
	for i, db := range dbs {
		want := sps[i/3].Name
		if who, err := sharedQuery(ctx, db); err != nil || who != want {
			t.Errorf("pool %d: current_user = %q, %v; want %q", i, who, err, want)
		}
	}
	for _, p := range sps {
		if n := env.Authority.RequestsFor(p); n != 1 {
			t.Errorf("Entra token requests for %s = %d, want 1 (its three pools share one token)", p.Name, n)
		}
	}
}

// sharedRefresh replaces tok in cache, as after a server refused it, waiting
// out the rate limit of refusal-driven refreshes when an earlier one was too
// recent.
func sharedRefresh(t *testing.T, ctx context.Context, cache *token.Cache, tok string) {
	t.Helper()
	for {
		next, err := cache.Refresh(ctx, tok)
		switch {
		case errors.Is(err, token.ErrRefreshLimited):
			select {
			case <-ctx.Done():
				t.Fatalf("Refresh: %v", ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		case err != nil:
			t.Fatalf("Refresh: %v", err)
		case next.Token == tok:
			t.Fatal("Refresh returned the same token")
		default:
			return
		}
	}
}
