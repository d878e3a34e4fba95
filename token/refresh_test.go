package token

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// cachingCred behaves like an MSAL-backed credential: it hands back the token it issued
// last while that is valid, unless the request carries Claims. Every call is recorded by
// the fakeCred it wraps only when it reaches the "identity endpoint"; all options are
// recorded in opts.
type cachingCred struct {
	*fakeCred
	mu       sync.Mutex
	last     azcore.AccessToken
	all      []policy.TokenRequestOptions
	requests int // calls that reached fakeCred
}

func (c *cachingCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	c.all = append(c.all, o)
	if o.Claims == "" && c.last.ExpiresOn.After(c.clock.Now()) {
		tok := c.last
		c.mu.Unlock()
		return tok, nil
	}
	c.requests++
	c.mu.Unlock()
	tok, err := c.fakeCred.GetToken(ctx, o)
	if err == nil {
		c.mu.Lock()
		c.last = tok
		c.mu.Unlock()
	}
	return tok, err
}

func (c *cachingCred) options() []policy.TokenRequestOptions {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]policy.TokenRequestOptions(nil), c.all...)
}

func newCachingCache(t *testing.T, opts ...Option) (*Cache, *cachingCred, *fakeClock, *eventLog) {
	t.Helper()
	clock := newFakeClock()
	cred := &cachingCred{fakeCred: newFakeCred(clock)}
	log := &eventLog{}
	c := NewCache(cred, ScopePublic, append([]Option{WithClock(clock), WithEventHandler(log.add)}, opts...)...)
	t.Cleanup(func() { c.Close() })
	return c, cred, clock, log
}

func TestRefreshBypassesCredentialCache(t *testing.T) {
	c, cred, clock, log := newCachingCache(t)
	ctx := context.Background()
	first, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Dropping the refused token and calling Token, as before Refresh existed: the credential's cache
	// hands the refused token back.
	invalidate(c, first.Token)
	again, err := c.Token(ctx)
	if err != nil || again.Token != first.Token {
		t.Fatalf("Token after dropping it = (%q, %v), want the credential's cached %q", again.Token, err, first.Token)
	}

	got, err := c.Refresh(ctx, first.Token)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got.Token == first.Token {
		t.Fatalf("Refresh returned the refused token")
	}
	if cred.requests != 2 {
		t.Fatalf("identity endpoint requests = %d, want 2", cred.requests)
	}
	opts := cred.options()
	last := opts[len(opts)-1]
	var challenge struct {
		AccessToken struct {
			Nbf struct {
				Essential bool   `json:"essential"`
				Value     string `json:"value"`
			} `json:"nbf"`
		} `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(last.Claims), &challenge); err != nil {
		t.Fatalf("Claims %q are not JSON: %v", last.Claims, err)
	}
	if want := strconv.FormatInt(clock.Now().Unix(), 10); !challenge.AccessToken.Nbf.Essential || challenge.AccessToken.Nbf.Value != want {
		t.Fatalf("Claims = %s, want an essential nbf of %s", last.Claims, want)
	}
	if len(last.Scopes) != 1 || last.Scopes[0] != ScopePublic {
		t.Fatalf("Scopes = %v", last.Scopes)
	}
	// The new token is cached, and plain fetches carry no claims.
	cached, src, err := c.acquire(ctx)
	if err != nil || cached.Token != got.Token || src != fromCache {
		t.Fatalf("Acquire after Refresh = (%q, %v, %v), want the refreshed token from the cache", cached.Token, src, err)
	}
	for i, o := range opts[:len(opts)-1] {
		if o.Claims != "" {
			t.Errorf("plain fetch %d carried Claims %q", i, o.Claims)
		}
	}
	if n := log.count(FetchEnd); n != 3 {
		t.Errorf("FetchEnd events = %d, want 3", n)
	}
}

func TestRefreshReturnsNewerTokenWithoutRequest(t *testing.T) {
	c, cred, _, _ := newCachingCache(t)
	ctx := context.Background()
	first, _ := c.Token(ctx)
	second, err := c.Refresh(ctx, first.Token) // this one asks
	if err != nil || second.Token == first.Token {
		t.Fatalf("Refresh = (%q, %v)", second.Token, err)
	}
	// Another connection refused with the first token reports late.
	third, err := c.Refresh(ctx, first.Token)
	if err != nil || third.Token != second.Token {
		t.Fatalf("late Refresh = (%q, %v), want the current %q", third.Token, err, second.Token)
	}
	if n := len(cred.options()); n != 2 {
		t.Fatalf("GetToken calls = %d, want 2", n)
	}
}

func TestRefreshKeepsCallerClaims(t *testing.T) {
	const mine = `{"access_token":{"xms_cc":{"values":["cp1"]}}}`
	c, cred, _, _ := newCachingCache(t, WithTokenRequestOptions(policy.TokenRequestOptions{Claims: mine, TenantID: "t1"}))
	ctx := context.Background()
	first, _ := c.Token(ctx)
	if _, err := c.Refresh(ctx, first.Token); err != nil {
		t.Fatal(err)
	}
	for i, o := range cred.options() {
		if o.Claims != mine || o.TenantID != "t1" {
			t.Errorf("call %d: Claims %q TenantID %q, want the configured ones", i, o.Claims, o.TenantID)
		}
	}
}

// sameTokenCred always returns one token, whatever it is asked (a tool's own cache, or a
// credential that ignores Claims).
type sameTokenCred struct{ *fakeCred }

func (s sameTokenCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.fakeCred.GetToken(ctx, o)
	return azcore.AccessToken{Token: secretPrefix + "-same", ExpiresOn: s.clock.Now().Add(s.lifetime)}, nil
}

func TestRefreshReturnsRefusedTokenAgain(t *testing.T) {
	clock := newFakeClock()
	cred := sameTokenCred{newFakeCred(clock)}
	c := NewCache(cred, ScopePublic, WithClock(clock))
	defer c.Close()
	ctx := context.Background()
	first, _ := c.Token(ctx)
	got, err := c.Refresh(ctx, first.Token)
	if err != nil || got.Token != first.Token {
		t.Fatalf("Refresh = (%q, %v), want the same token back for the caller to judge", got.Token, err)
	}
	if n := cred.calls.Load(); n != 2 {
		t.Fatalf("GetToken calls = %d, want 2", n)
	}
	if cred.opts[1].Claims == "" {
		t.Fatal("Refresh did not ask to bypass the cache")
	}
}

func TestRefreshSingleFlight(t *testing.T) {
	c, cred, _, _ := newTestCache(t)
	ctx := context.Background()
	first, _ := c.Token(ctx)
	release := cred.block()
	const n = 20
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := c.Refresh(ctx, first.Token)
			if err != nil {
				t.Error(err)
			}
			results <- tok.Token
		}()
	}
	eventually(t, "the refreshers to wait", func() bool { return c.waiting.Load() == n })
	// A plain caller arriving meanwhile gets the refused token, still valid, at once:
	// it is served to everyone else until its replacement is stored.
	if tok, src, err := c.acquire(ctx); err != nil || tok.Token != first.Token || src != fromCache {
		t.Fatalf("Acquire during the refresh = (%q, %v, %v); want the cached token", tok.Token, src, err)
	}
	release()
	wg.Wait()
	close(results)
	var seen string
	for tok := range results {
		if tok == first.Token || (seen != "" && tok != seen) {
			t.Fatalf("callers got %q and %q, want one new token", seen, tok)
		}
		seen = tok
	}
	if tok, _ := c.Token(ctx); tok.Token != seen {
		t.Fatalf("Token after the refresh = %q, want the new %q", tok.Token, seen)
	}
	if got := cred.calls.Load(); got != 2 {
		t.Fatalf("GetToken calls = %d, want 2 (one fetch, one refresh)", got)
	}
}

// scriptCred returns the tokens named by next, in order, blocking calls while gate is
// set; it records the options of each call.
type scriptCred struct {
	*fakeCred
	next []string
}

func (s *scriptCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := int(s.fakeCred.calls.Load()) // before fakeCred counts this call
	if _, err := s.fakeCred.GetToken(ctx, o); err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: s.next[n], ExpiresOn: s.clock.Now().Add(s.lifetime)}, nil
}

func TestRefreshWaitsForPlainFetchThenBypasses(t *testing.T) {
	clock := newFakeClock()
	cred := &scriptCred{fakeCred: newFakeCred(clock), next: []string{"tok-A", "tok-A", "tok-B"}}
	c := NewCache(cred, ScopePublic, WithClock(clock))
	defer c.Close()
	ctx := context.Background()
	first, _ := c.Token(ctx)
	invalidate(c, first.Token)
	release := cred.block()
	plain := make(chan string, 1)
	go func() {
		tok, _ := c.Token(ctx)
		plain <- tok.Token
	}()
	eventually(t, "the plain fetch to block", func() bool { return c.waiting.Load() == 1 })
	done := make(chan struct{})
	var got azcore.AccessToken
	var err error
	go func() {
		got, err = c.Refresh(ctx, first.Token)
		close(done)
	}()
	eventually(t, "Refresh to wait", func() bool { return c.waiting.Load() == 2 })
	release()
	<-done
	if p := <-plain; p != "tok-A" {
		t.Fatalf("plain fetch got %q, want the refused tok-A (test set-up)", p)
	}
	if err != nil || got.Token != "tok-B" {
		t.Fatalf("Refresh = (%q, %v), want tok-B", got.Token, err)
	}
	if n := cred.calls.Load(); n != 3 || cred.opts[1].Claims != "" || cred.opts[2].Claims == "" {
		t.Fatalf("%d calls (%+v), want plain, plain, with claims", n, cred.opts)
	}
}

// claimsRefusingCred fails any request with Claims the way azidentity's CLI credentials
// do, as DefaultAzureCredential does once it settled on one of them.
type claimsRefusingCred struct{ *fakeCred }

func (r claimsRefusingCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if o.Claims != "" {
		r.fakeCred.mu.Lock()
		r.fakeCred.opts = append(r.fakeCred.opts, o)
		r.fakeCred.mu.Unlock()
		return azcore.AccessToken{}, errors.New("DefaultAzureCredential: AzureCLICredential.GetToken(): Azure CLI requires multifactor authentication or additional claims. Run this command then retry the operation: az login --claims-challenge e30=")
	}
	return r.fakeCred.GetToken(ctx, o)
}

func TestRefreshFallsBackWithoutClaims(t *testing.T) {
	clock := newFakeClock()
	cred := claimsRefusingCred{newFakeCred(clock)}
	c := NewCache(cred, ScopePublic, WithClock(clock))
	defer c.Close()
	ctx := context.Background()
	first, _ := c.Token(ctx)
	got, err := c.Refresh(ctx, first.Token)
	if err != nil || got.Token == first.Token {
		t.Fatalf("Refresh = (%q, %v), want a new token fetched without claims", got.Token, err)
	}
	if n := len(cred.opts); n != 3 || cred.opts[1].Claims == "" || cred.opts[2].Claims != "" {
		t.Fatalf("requests = %d (%+v), want plain, with claims, plain", n, cred.opts)
	}
}

func TestHonoursClaims(t *testing.T) {
	for _, tt := range []struct {
		cred azcore.TokenCredential
		want bool
	}{
		{&azidentity.AzureCLICredential{}, false},
		{&azidentity.AzureDeveloperCLICredential{}, false},
		{&azidentity.AzurePowerShellCredential{}, false},
		{&azidentity.ManagedIdentityCredential{}, true},
		{&azidentity.ClientSecretCredential{}, true},
		{&azidentity.DefaultAzureCredential{}, true},
		{newFakeCred(newFakeClock()), true},
	} {
		if got := honoursClaims(tt.cred); got != tt.want {
			t.Errorf("honoursClaims(%T) = %v, want %v", tt.cred, got, tt.want)
		}
	}
}

func TestRefreshErrors(t *testing.T) {
	c, cred, clock, _ := newTestCache(t)
	ctx := context.Background()
	first, _ := c.Token(ctx)
	boom := errors.New("identity endpoint down")
	cred.setErr(boom)
	if _, err := c.Refresh(ctx, first.Token); !errors.Is(err, boom) {
		t.Fatalf("Refresh with failing credential: %v, want %v", err, boom)
	}
	calls := cred.calls.Load()
	if _, err := c.Refresh(ctx, first.Token); !errors.Is(err, boom) || cred.calls.Load() != calls {
		t.Fatalf("Refresh during back-off: %v after %d calls, want the last error without a call", err, cred.calls.Load()-calls)
	}
	clock.Advance(DefaultBackoffMax)
	cred.setErr(nil)
	if tok, err := c.Refresh(ctx, first.Token); err != nil || tok.Token == first.Token {
		t.Fatalf("Refresh after back-off = (%q, %v)", tok.Token, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Refresh(cctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh with cancelled ctx: %v", err)
	}
	c.Close()
	if _, err := c.Refresh(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Refresh after Close: %v", err)
	}
	if _, err := NewCache(nil, "").Refresh(ctx, "x"); err == nil {
		t.Fatal("Refresh without credential: no error")
	}
}
