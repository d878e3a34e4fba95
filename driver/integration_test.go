package driver

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/pgtest"
	"github.com/pgentra/pgentra/token"
)

// fakeClock is a token.Clock the tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env for one integration test: a role on the throwaway server whose
// password is set to whatever token the fake credential will issue.
type itest struct {
	t    *testing.T
	pg   *pgtest.Cluster
	cred *fakeCredential
	role string
}

func newITest(t *testing.T, claims map[string]any, role string) *itest {
	t.Helper()
	c := pg.Get(t)
	it := &itest{t: t, pg: c, cred: &fakeCredential{claims: claims}, role: role}
	it.setPassword("not-a-token-yet")
	return it
}

func (it *itest) setPassword(pw string) {
	it.t.Helper()
	if err := it.pg.CreateRole(context.Background(), it.role, pw); err != nil {
		it.t.Fatal(err)
	}
}

// dsn is a DSN to the throwaway server; extra is appended.
func (it *itest) dsn(extra string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres sslmode=disable %s", it.pg.Port, extra)
}

func (it *itest) connector(extra string, opts ...Option) *Connector {
	it.t.Helper()
	c, err := NewConnector(it.dsn(extra), append([]Option{WithCredential(it.cred)}, opts...)...)
	if err != nil {
		it.t.Fatal(err)
	}
	it.t.Cleanup(func() { c.Close() })
	return c
}

func currentUser(t *testing.T, db *sql.DB) string {
	t.Helper()
	var u string
	if err := db.QueryRow("select current_user").Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestTokenIsThePassword(t *testing.T) {
	it := newITest(t, userClaims(), "carol@contoso.com")
	it.setPassword(it.cred.peekNext())
	db := sql.OpenDB(it.connector("")) // no user: derived from the token's upn
	defer db.Close()
	if u := currentUser(t, db); u != "carol@contoso.com" {
		t.Errorf("current_user = %q", u)
	}
	// A pool of several connections makes one token request.
	db.SetMaxIdleConns(10)
	conns := make([]*sql.Conn, 5)
	for i := range conns {
		var err error
		if conns[i], err = db.Conn(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if n := it.cred.calls.Load(); n != 1 {
		t.Errorf("GetToken calls = %d, want 1", n)
	}
}

func TestRotatedTokenUsedByNewConnections(t *testing.T) {
	it := newITest(t, spClaims(), "orders-app")
	clock := &fakeClock{now: time.Now()}
	it.cred.now = clock.Now
	it.setPassword(it.cred.peekNext())
	c := it.connector("user=orders-app", WithTokenCacheOptions(token.WithClock(clock)))
	conn1, err := c.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn1.Close()
	// The server's password moves on; the cached token expires.
	it.setPassword(it.cred.peekNext())
	clock.Add(2 * time.Hour)
	conn2, err := c.Connect(context.Background())
	if err != nil {
		t.Fatalf("connect after rotation: %v", err)
	}
	conn2.Close()
	if n := it.cred.calls.Load(); n != 2 {
		t.Errorf("GetToken calls = %d, want 2", n)
	}
	// The first connection outlives its token: the server checks only at login.
	if err := conn1.(interface {
		Ping(context.Context) error
	}).Ping(context.Background()); err != nil {
		t.Errorf("old connection died with its token: %v", err)
	}
}

func TestRetryOnceWhenCachedTokenRefused(t *testing.T) {
	it := newITest(t, spClaims(), "retry-app")
	it.setPassword(it.cred.peekNext())
	var logs bytes.Buffer
	c := it.connector("user=retry-app", WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	conn, err := c.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// The server stops accepting the cached token (revoked, or a password
	// reset): pgentra must drop it, fetch one new token and retry once.
	it.setPassword(it.cred.peekNext())
	conn, err = c.Connect(context.Background())
	if err != nil {
		t.Fatalf("connect with a refused cached token: %v", err)
	}
	conn.Close()
	if n := it.cred.calls.Load(); n != 2 {
		t.Errorf("GetToken calls = %d, want 2 (one fetch, one retry)", n)
	}
	if !strings.Contains(logs.String(), "retrying once") {
		t.Errorf("the retry was not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secretMarker) {
		t.Errorf("a token reached the log:\n%s", logs.String())
	}
}

func TestFreshTokenRefusedIsNotRetried(t *testing.T) {
	it := newITest(t, spClaims(), "norole-app")
	c := it.connector("user=norole-app")
	_, err := c.Connect(context.Background())
	if err == nil {
		t.Fatal("login with a wrong token succeeded")
	}
	if n := it.cred.calls.Load(); n != 1 {
		t.Errorf("GetToken calls = %d, want 1: a fresh token must not be retried", n)
	}
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("error %v does not carry *pq.Error 28P01", err)
	}
	var le *LoginError
	if !errors.As(err, &le) {
		t.Fatalf("error %T is not a *LoginError", err)
	}
	// A given user the token does not name: the hint says how to find the
	// identity's role, never to create one named after the given user.
	for _, must := range []string{"pgaadauth_list_principals", "oid=7a6b5c4d", "appid=3f2e1d0c"} {
		if !strings.Contains(le.Hint, must) {
			t.Errorf("hint %q lacks %q", le.Hint, must)
		}
	}
	if strings.Contains(le.Hint, "pgaadauth_create_principal('norole-app'") {
		t.Errorf("hint suggests creating the given user's role: %q", le.Hint)
	}
	if strings.Contains(err.Error(), secretMarker) {
		t.Errorf("error leaks the token: %v", err)
	}
}

// TestRefusedFreshTokenNotRefetched: a pool whose every login is refused
// (no role maps to the identity) must not fetch a token per connect —
// with the Azure CLI that is a process each time. The token refused when
// fresh stays cached and later connects fail without a retry; once the
// role is fixed, that same token logs in. A cached token refused for the
// first time still gets its one retry.
func TestRefusedFreshTokenNotRefetched(t *testing.T) {
	it := newITest(t, spClaims(), "misconfigured-app")
	c := it.connector("user=misconfigured-app")
	db := sql.OpenDB(c)
	defer db.Close()
	for i := range 10 {
		var pe *pq.Error
		if err := db.Ping(); !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Fatalf("ping %d: %v, want 28P01", i, err)
		}
	}
	if n := it.cred.calls.Load(); n != 1 {
		t.Errorf("GetToken calls = %d for 10 refused connects, want 1", n)
	}
	// The administrator fixes the role for the token the pool holds.
	it.setPassword(it.cred.lastToken())
	if err := db.Ping(); err != nil {
		t.Fatalf("after the fix: %v", err)
	}
	if n := it.cred.calls.Load(); n != 1 {
		t.Errorf("GetToken calls = %d after the fix, want still 1", n)
	}
	// A later refusal of that (once good) cached token is retried with a
	// new token, which the server accepts.
	db.SetMaxIdleConns(0)
	it.setPassword(it.cred.peekNext())
	if err := db.Ping(); err != nil {
		t.Fatalf("cached token refused for the first time: %v", err)
	}
	if n := it.cred.calls.Load(); n != 2 {
		t.Errorf("GetToken calls = %d, want 2 (one retry)", n)
	}
}

func TestListenNotifyThroughPQHandler(t *testing.T) {
	it := newITest(t, spClaims(), "listen-app")
	it.setPassword(it.cred.peekNext())
	got := make(chan *pq.Notification, 1)
	db := sql.OpenDB(pq.ConnectorWithNotificationHandler(it.connector("user=listen-app"), func(n *pq.Notification) {
		select {
		case got <- n:
		default:
		}
	}))
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "listen orders"); err != nil {
		t.Fatal(err)
	}
	if err := it.pg.Exec(ctx, "postgres", "notify orders, 'order 42'"); err != nil {
		t.Fatal(err)
	}
	// pq delivers notifications while reading the next response.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := conn.ExecContext(ctx, "select 1"); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-got:
			if n.Channel != "orders" || n.Extra != "order 42" {
				t.Fatalf("notification %+v", n)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("no notification arrived")
}

func TestPQFeaturesPassThrough(t *testing.T) {
	it := newITest(t, spClaims(), "features-app")
	it.setPassword(it.cred.peekNext())
	closed := closedPort(t)
	// A closed port first, then the server: pq's multi-host logic runs
	// untouched. hostaddr is what is dialed; connect_timeout, application_name
	// and an unknown run-time parameter go to pq and the server as usual.
	dsn := fmt.Sprintf("host=127.0.0.1,localhost hostaddr=127.0.0.1,127.0.0.1 port=%d,%d dbname=postgres user=features-app sslmode=disable "+
		"connect_timeout=5 application_name=pgentra-test work_mem=12345kB target_session_attrs=read-write load_balance_hosts=disable "+
		// pgentra's keys must not reach the server: it refuses unknown
		// run-time parameters, so the login itself proves they were removed.
		"azure_refresh_margin=1m azure_allow_insecure_tls=false azure_scope=https://ossrdbms-aad.database.windows.net/.default",
		closed, it.pg.Port)
	c, err := NewConnector(dsn, WithCredential(it.cred))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var app, workMem string
	if err := db.QueryRow("select current_setting('application_name'), current_setting('work_mem')").Scan(&app, &workMem); err != nil {
		t.Fatal(err)
	}
	if app != "pgentra-test" || workMem != "12345kB" {
		t.Errorf("application_name=%q work_mem=%q", app, workMem)
	}
	// load_balance_hosts=random still reaches the live host. The second pool
	// shares the first one's token cache: no second token request.
	c2, err := NewConnector(strings.Replace(dsn, "load_balance_hosts=disable", "load_balance_hosts=random", 1), WithTokenCache(c.cache))
	if err != nil {
		t.Fatal(err)
	}
	db2 := sql.OpenDB(c2)
	defer db2.Close()
	for range 4 {
		if err := db2.Ping(); err != nil {
			t.Fatal(err)
		}
		db2.SetMaxIdleConns(0)
	}
	if n := it.cred.calls.Load(); n != 1 {
		t.Errorf("GetToken calls = %d, want 1 for two pools sharing a cache", n)
	}
}

func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}
