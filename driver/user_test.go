package driver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/dsn"
	"github.com/pgentra/pgentra/token"
)

// TestDeriveUser: the role name comes from the database-scope token when it
// names its principal, else from a management-scope token of the same
// credential (a managed identity's xms_mirid); a service principal's tokens
// name nobody and the error says to set user.
func TestDeriveUser(t *testing.T) {
	const (
		uami = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-orders"
		vm   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"
		site = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.Web/sites/orders-api"
	)
	tests := []struct {
		name      string
		db, mgmt  map[string]any
		want      string
		mgmtCalls int32
		wantErr   bool
	}{
		{name: "user with upn", db: userClaims(), want: "carol@contoso.com"},
		{name: "user-assigned identity via management scope", db: miDBClaims(), mgmt: miMgmtClaims(uami), want: "id-orders", mgmtCalls: 1},
		{name: "system-assigned VM identity via management scope", db: miDBClaims(), mgmt: miMgmtClaims(vm), want: "vm-web-01", mgmtCalls: 1},
		{name: "App Service identity", db: miDBClaims(), mgmt: miMgmtClaims(site), want: "orders-api", mgmtCalls: 1},
		{name: "database token that does carry xms_mirid", db: miMgmtClaims(uami), want: "id-orders"},
		{name: "service principal has no name", db: spClaims(), mgmt: spClaims(), mgmtCalls: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := &fakeCredential{claims: tt.db, mgmt: tt.mgmt}
			c := lookupConnector(t, cred)
			tok, _ := cred.GetToken(context.Background(), scopeOpts(token.ScopePublic))
			got, err := c.userFor(context.Background(), tok)
			if tt.wantErr {
				if !errors.Is(err, ErrNoUser) {
					t.Fatalf("err = %v, want ErrNoUser", err)
				}
				for _, must := range []string{"pgaadauth_create_principal", "appid=3f2e1d0c", "set user"} {
					if !strings.Contains(err.Error(), must) {
						t.Errorf("error %q does not mention %q", err, must)
					}
				}
				if strings.Contains(err.Error(), secretMarker) {
					t.Errorf("error leaks the token: %v", err)
				}
			} else if err != nil || got != tt.want {
				t.Fatalf("userFor = %q, %v; want %q", got, err, tt.want)
			}
			if n := cred.mgmtCalls.Load(); n != tt.mgmtCalls {
				t.Errorf("management-scope calls = %d, want %d", n, tt.mgmtCalls)
			}
		})
	}
}

func TestDeriveUserUnreadableToken(t *testing.T) {
	cred := &fakeCredential{claims: miDBClaims(), mgmt: miMgmtClaims(uamiID)}
	c := lookupConnector(t, cred)
	_, err := c.userFor(context.Background(), azcore.AccessToken{Token: "opaque-" + secretMarker})
	if !errors.Is(err, ErrNoUser) || strings.Contains(err.Error(), secretMarker) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), " (see "+anchorNoUser.url()+")") {
		t.Errorf("error does not link #%s: %v", anchorNoUser, err)
	}
	if n := cred.mgmtCalls.Load(); n != 0 {
		t.Errorf("management-scope calls = %d for an unreadable token, want 0", n)
	}
}

const uamiID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-orders"

// lookupConnector is a Connector with no user in the DSN, whose logins go to
// a closed port: a Connect that gets past the user name fails dialling.
func lookupConnector(t *testing.T, cred *fakeCredential) *Connector {
	t.Helper()
	t.Setenv("PGUSER", "")
	c, err := NewConnector(fmt.Sprintf("host=127.0.0.1 port=%d dbname=d sslmode=disable", closedPort(t)), WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	if !c.deriveUser {
		t.Fatal("the connector does not derive its user")
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connectAsync runs c.Connect(ctx) and delivers its error.
func connectAsync(c *Connector, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() {
		conn, err := c.Connect(ctx)
		if conn != nil {
			conn.Close()
		}
		ch <- err
	}()
	return ch
}

// wait returns the error from ch, or fails the test if none comes within
// 10 s (a safety bound: the callers return on their own much sooner).
func waitErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Connect did not return", what)
		return nil
	}
}

// Issue 10 item 4: every caller's ctx bounds its own wait for the
// management-scope lookup, which is one request for all of them and goes on
// when the caller that started it gives up.
func TestUserLookupHonoursEachCallersContext(t *testing.T) {
	cred := &fakeCredential{claims: miDBClaims(), mgmt: miMgmtClaims(uamiID), mgmtBlock: make(chan struct{})}
	c := lookupConnector(t, cred)

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	errA := connectAsync(c, ctxA)
	for cred.mgmtCalls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	errB := connectAsync(c, ctxB)
	cancelB()
	err := waitErr(t, errB, "B, cancelled while another caller's lookup runs")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("B: %v; want it to wrap context.Canceled", err)
	}
	select {
	case err := <-errA:
		t.Fatalf("A returned (%v) although the lookup is still blocked", err)
	default:
	}
	// A, who started the lookup, gives up too: the lookup goes on.
	cancelA()
	if err := waitErr(t, errA, "A"); !errors.Is(err, context.Canceled) {
		t.Errorf("A: %v; want it to wrap context.Canceled", err)
	}
	errC := connectAsync(c, context.Background())
	close(cred.mgmtBlock)
	err = waitErr(t, errC, "C")
	if errors.Is(err, ErrNoUser) || err == nil {
		t.Errorf("C: %v; want the user derived and the dial to a closed port to fail", err)
	}
	if u := c.user.Load(); u == nil || *u != "id-orders" {
		t.Errorf("derived user = %v, want id-orders", u)
	}
	if n := cred.mgmtCalls.Load(); n != 1 {
		t.Errorf("management-scope requests = %d, want 1 for three callers", n)
	}
}

// A failed lookup reports its cause (errors.Is works), not "set user", and
// is not repeated on every connect: the next attempt waits for a back-off.
func TestUserLookupFailureCauseAndBackoff(t *testing.T) {
	cred := &fakeCredential{claims: miDBClaims(), mgmt: miMgmtClaims(uamiID), mgmtErr: errCredential}
	c := lookupConnector(t, cred)
	clock := &fakeClock{now: time.Now()}
	c.lookup.opts = []token.Option{token.WithClock(clock)}
	for i := range 10 {
		_, err := c.Connect(context.Background())
		if !errors.Is(err, errCredential) || !errors.Is(err, ErrNoUser) {
			t.Fatalf("connect %d: %v; want the credential's error (and ErrNoUser)", i, err)
		}
		for _, must := range []string{errCredential.Error(), "management-scope", "oid=9c8d7e6f"} {
			if !strings.Contains(err.Error(), must) {
				t.Errorf("connect %d: error %q lacks %q", i, err, must)
			}
		}
		if strings.Contains(err.Error(), "set user") {
			t.Errorf("connect %d: error %q blames the DSN for a failed lookup", i, err)
		}
		if i > 0 && !strings.Contains(err.Error(), "next attempt in") {
			t.Errorf("connect %d: error %q does not say when the lookup is retried", i, err)
		}
	}
	if n := cred.mgmtCalls.Load(); n != 1 {
		t.Errorf("management-scope requests = %d for 10 connects within the back-off, want 1", n)
	}
	clock.Add(token.DefaultBackoffInitial + time.Millisecond) // past the first back-off
	if _, err := c.Connect(context.Background()); !errors.Is(err, errCredential) {
		t.Fatalf("after the back-off: %v", err)
	}
	if n := cred.mgmtCalls.Load(); n != 2 {
		t.Errorf("management-scope requests = %d after the back-off, want 2", n)
	}
	cred.mu.Lock()
	cred.mgmtErr = nil
	cred.mu.Unlock()
	clock.Add(2*token.DefaultBackoffInitial + time.Millisecond)
	if _, err := c.Connect(context.Background()); err == nil || errors.Is(err, ErrNoUser) {
		t.Fatalf("after the credential recovered: %v; want the user derived and the dial to fail", err)
	}
	if u := c.user.Load(); u == nil || *u != "id-orders" {
		t.Errorf("derived user = %v, want id-orders", u)
	}
	if n := cred.mgmtCalls.Load(); n != 3 {
		t.Errorf("management-scope requests = %d, want 3", n)
	}
}

// A token whose identity names no principal, even at management scope (a
// service principal), is remembered: 10 connects of a misconfigured pool
// make one management-scope request, and all say to set user.
func TestUserLookupRemembersNoPrincipal(t *testing.T) {
	cred := &fakeCredential{claims: spClaims(), mgmt: spClaims()}
	c := lookupConnector(t, cred)
	for i := range 10 {
		_, err := c.Connect(context.Background())
		if !errors.Is(err, ErrNoUser) || !strings.Contains(err.Error(), "set user") || !strings.Contains(err.Error(), "appid=3f2e1d0c") ||
			!strings.HasSuffix(err.Error(), " (see "+anchorNoUser.url()+")") {
			t.Fatalf("connect %d: %v; want ErrNoUser saying to set user, with a link to #%s", i, err, anchorNoUser)
		}
		if strings.Contains(err.Error(), secretMarker) {
			t.Fatalf("error leaks the token: %v", err)
		}
	}
	if n := cred.mgmtCalls.Load(); n != 1 {
		t.Errorf("management-scope requests = %d for 10 connects, want 1", n)
	}
}

// Close stops a lookup in flight (no goroutine outlives it) and its waiters
// return.
func TestUserLookupStoppedByClose(t *testing.T) {
	cred := &fakeCredential{claims: miDBClaims(), mgmt: miMgmtClaims(uamiID), mgmtBlock: make(chan struct{})}
	c := lookupConnector(t, cred)
	errA := connectAsync(c, context.Background())
	for cred.mgmtCalls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if err := waitErr(t, errA, "after Close"); err == nil || errors.Is(err, errCredential) {
		t.Errorf("waiter after Close: %v", err)
	}
}

// A Connector given only a shared token cache (WithTokenCache, as the
// examples and pools sharing one cache do) derives a managed identity's role
// name with the cache's own credential: the database-scope token names
// nobody, the management-scope one does.
func TestUserLookupWithSharedCache(t *testing.T) {
	t.Setenv("PGUSER", "")
	cred := &fakeCredential{claims: miDBClaims(), mgmt: miMgmtClaims("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-orders")}
	cache := token.NewCache(cred, token.ScopePublic)
	defer cache.Close()
	c, err := NewConnector(fmt.Sprintf("host=127.0.0.1 port=%d dbname=d sslmode=disable", closedPort(t)), WithTokenCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok, err := cache.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	user, err := c.userFor(context.Background(), tok)
	if err != nil || user != "id-orders" {
		t.Fatalf("userFor = %q, %v; want the identity's name from its management-scope token", user, err)
	}
	if n := cred.mgmtCalls.Load(); n != 1 {
		t.Errorf("management-scope requests = %d, want 1", n)
	}
}

// TestDerivedUserWithNULRefused: a role name derived from the token's claims
// is checked like the DSN's user: pq writes it as a C string, so a NUL byte
// would end the name there and start other startup parameters. Refused
// before any login, with a clear error — from the database token's own
// claims and from the management-scope token alike.
func TestDerivedUserWithNULRefused(t *testing.T) {
	user := userClaims()
	user["upn"] = "carol\x00database\x00postgres@contoso.com"
	user["unique_name"] = user["upn"]
	for _, tc := range []struct {
		name string
		cred *fakeCredential
	}{
		{"upn", &fakeCredential{claims: user}},
		{"xms_mirid via management scope", &fakeCredential{claims: miDBClaims(), mgmt: miMgmtClaims(uamiID + "\x00x")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := lookupConnector(t, tc.cred)
			_, err := c.Connect(context.Background())
			if !errors.Is(err, ErrNoUser) || !errors.Is(err, dsn.ErrNULByte) {
				t.Fatalf("err = %v; want ErrNoUser and dsn.ErrNULByte", err)
			}
			for _, must := range []string{"NUL", "set user"} {
				if !strings.Contains(err.Error(), must) {
					t.Errorf("error %q does not mention %q", err, must)
				}
			}
			if strings.ContainsRune(err.Error(), 0) || strings.Contains(err.Error(), secretMarker) {
				t.Errorf("error %q holds a raw NUL or the token", err)
			}
			if u := c.user.Load(); u != nil {
				t.Errorf("the Connector kept the name %q", *u)
			}
		})
	}
}

// TestUserLookupErrorNamesTheCredentialOnce: the failed lookup's error names
// a WithCredential credential as such, not "custom credential credential".
func TestUserLookupErrorNamesTheCredentialOnce(t *testing.T) {
	c := lookupConnector(t, &fakeCredential{claims: miDBClaims(), mgmt: miMgmtClaims(uamiID), mgmtErr: errCredential})
	_, err := c.Connect(context.Background())
	if !errors.Is(err, errCredential) {
		t.Fatalf("err = %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "credential credential") || !strings.Contains(msg, "asking the custom credential (given with WithCredential) for") {
		t.Errorf("error %q does not name the credential once, as given with WithCredential", msg)
	}
}

// TestClaimValuesQuotedInErrors: claim values are untrusted (the token is
// not verified here); wherever an error or a LoginError shows them, one
// holding quotes, a newline or a terminal escape sequence is quoted, never
// printed raw.
func TestClaimValuesQuotedInErrors(t *testing.T) {
	const hostile = "x\" upn=\"admin@contoso.com\nFAKE LOG LINE \x1b[31mred"
	sp := spClaims()
	sp["appid"] = hostile
	mi := miDBClaims()
	mi["oid"] = hostile
	for _, tc := range []struct {
		name string
		cred *fakeCredential
	}{
		{"no principal", &fakeCredential{claims: sp, mgmt: sp}},
		{"failed lookup", &fakeCredential{claims: mi, mgmt: mi, mgmtErr: errCredential}},
		{"NUL in the derived name", &fakeCredential{claims: mi, mgmt: miMgmtClaims(uamiID + "\x00x")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "NUL in the derived name" {
				tc.cred.mgmt["oid"] = hostile
			}
			c := lookupConnector(t, tc.cred)
			_, err := c.Connect(context.Background())
			if !errors.Is(err, ErrNoUser) {
				t.Fatalf("err = %v; want ErrNoUser", err)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\x1b") {
				t.Errorf("error shows a claim raw: %q", msg)
			}
			if !strings.Contains(msg, strconv.Quote(hostile)) {
				t.Errorf("error %q does not show the claim quoted", msg)
			}
		})
	}
	tok := fakeJWT(sp, 1)
	if p := principalOf(tok); strings.ContainsAny(p, "\n\x1b") || !strings.Contains(p, strconv.Quote(hostile)) {
		t.Errorf("LoginError.Principal = %q; want the claim quoted", p)
	}
	// The hint of a refused login names the role the token's claims suggest.
	user := userClaims()
	user["upn"] = hostile
	refused := &pq.Error{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "carol"`}
	hint := loginHint(refused, hintInput{User: "carol", Given: true, Scope: token.ScopePublic, Token: fakeJWT(user, 2), Port: 5432, Host: "h"})
	if strings.ContainsAny(hint, "\n\x1b") || !strings.Contains(hint, strconv.Quote(hostile)) {
		t.Errorf("hint shows a claim raw, or not at all: %q", hint)
	}
}

// TestUserLookupPerIdentity: the lookup that Connectors of one shared
// identity use remembers each identity's name apart and never reads one
// identity's name from a management-scope token fetched for another (a
// developer CLI's login switched accounts between two pools' first
// connects).
func TestUserLookupPerIdentity(t *testing.T) {
	a := miDBClaims()
	b := miDBClaims()
	b["oid"] = "1d2c3b4a-0000-0000-0000-5f6e7d8c9b0a"
	bMgmt := miMgmtClaims("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-billing")
	bMgmt["oid"] = b["oid"]
	cred := &fakeCredential{claims: a, mgmt: miMgmtClaims(uamiID)}
	l := &userLookup{}
	defer l.close()
	claims := func(m map[string]any) token.Claims {
		c, err := token.ParseClaims(fakeJWT(m, 1))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range 2 {
		if name, err := l.name(context.Background(), claims(a), cred, "custom credential", token.ScopeManagement); err != nil || name != "id-orders" {
			t.Fatalf("identity A, lookup %d: %q, %v; want id-orders", i, name, err)
		}
	}
	cred.mu.Lock()
	cred.claims, cred.mgmt = b, bMgmt
	cred.mu.Unlock()
	if name, err := l.name(context.Background(), claims(b), cred, "custom credential", token.ScopeManagement); err != nil || name != "id-billing" {
		t.Fatalf("identity B: %q, %v; want id-billing", name, err)
	}
	if name, err := l.name(context.Background(), claims(a), cred, "custom credential", token.ScopeManagement); err != nil || name != "id-orders" {
		t.Fatalf("identity A again: %q, %v; want id-orders, remembered", name, err)
	}
	if n := cred.mgmtCalls.Load(); n != 2 {
		t.Errorf("management-scope requests = %d, want one per identity (2)", n)
	}
}
