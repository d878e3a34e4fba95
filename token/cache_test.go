package token

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func TestAcquireFetchesThenServesFromCache(t *testing.T) {
	c, cred, _, log := newTestCache(t)
	ctx := context.Background()

	tok1, src1, err := c.acquire(ctx)
	if err != nil {
		t.Fatalf("first Acquire: %v", err)
	}
	if src1 != fetched || !strings.HasPrefix(tok1.Token, secretPrefix) {
		t.Fatalf("first Acquire = (%q, %v), want a fetched token", tok1.Token, src1)
	}
	tok2, src2, err := c.acquire(ctx)
	if err != nil || src2 != fromCache || tok2.Token != tok1.Token {
		t.Fatalf("second Acquire = (%q, %v, %v), want the same token from the cache", tok2.Token, src2, err)
	}
	if n := cred.calls.Load(); n != 1 {
		t.Fatalf("GetToken calls = %d, want 1", n)
	}
	for kind, want := range map[EventKind]int{CacheMiss: 1, FetchStart: 1, FetchEnd: 1, CacheHit: 1} {
		if got := log.count(kind); got != want {
			t.Errorf("%v events = %d, want %d", kind, got, want)
		}
	}
	for _, e := range log.all() {
		if e.Scope != ScopePublic {
			t.Errorf("event %v has scope %q", e.Kind, e.Scope)
		}
		if e.Kind == FetchEnd && !e.ExpiresOn.Equal(tok1.ExpiresOn) {
			t.Errorf("FetchEnd ExpiresOn = %v, want %v", e.ExpiresOn, tok1.ExpiresOn)
		}
	}
}

func TestTokenRequestOptions(t *testing.T) {
	c, cred, _, _ := newTestCache(t, WithTokenRequestOptions(policy.TokenRequestOptions{
		TenantID:  "tenant-1",
		EnableCAE: true,
		Scopes:    []string{"https://ignored/.default"},
	}))
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := cred.opts[0]
	if len(got.Scopes) != 1 || got.Scopes[0] != ScopePublic || got.TenantID != "tenant-1" || !got.EnableCAE {
		t.Fatalf("GetToken options = %+v, want scope %q, tenant-1, CAE", got, ScopePublic)
	}
	if c.Scope() != ScopePublic {
		t.Fatalf("Scope() = %q", c.Scope())
	}
}

func TestNewCacheDefaults(t *testing.T) {
	c := NewCache(nil, "", nil, WithClock(nil), WithEventHandler(nil), WithRefreshMargin(-1),
		WithFetchTimeout(0), WithBackoff(-1, -1))
	defer c.Close()
	if c.Scope() != ScopePublic {
		t.Errorf("Scope() = %q, want ScopePublic for an empty scope", c.Scope())
	}
	o := c.opts
	if o.margin != DefaultRefreshMargin || o.fetchTimeout != DefaultFetchTimeout ||
		o.backoffInitial != DefaultBackoffInitial || o.backoffMax != DefaultBackoffMax || o.clock == nil {
		t.Errorf("invalid options were not ignored: %+v", o)
	}
	// nil credential and nil context: an error, not a panic.
	var nilCtx context.Context
	if _, err := c.Token(nilCtx); err == nil || !strings.Contains(err.Error(), "no credential") {
		t.Errorf("Token with nil credential: err = %v, want a no-credential error", err)
	}
	c2 := NewCache(nil, ScopeChina, WithBackoff(time.Minute, time.Second))
	defer c2.Close()
	if c2.opts.backoffMax != time.Minute {
		t.Errorf("backoff max below initial: got %v, want raised to 1m", c2.opts.backoffMax)
	}
}

func TestFastPathZeroAllocs(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(newFakeCred(clock), ScopePublic, WithClock(clock))
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	allocs := testing.AllocsPerRun(1000, func() { _, err = c.Token(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("warm Token allocates %v times per call, want 0", allocs)
	}
	// Also with the real clock.
	real := NewCache(newFakeCred(&fakeClock{now: time.Now()}), ScopePublic)
	defer real.Close()
	if _, err := real.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(1000, func() { _, _, err = real.acquire(ctx) }); allocs != 0 {
		t.Fatalf("warm Acquire with the system clock allocates %v times per call, want 0", allocs)
	}
}

func TestSingleFlightColdCache(t *testing.T) {
	const callers = 1000
	c, cred, _, log := newTestCache(t)
	release := cred.block()
	defer release()

	var wg sync.WaitGroup
	toks := make([]azcore.AccessToken, callers)
	srcs := make([]source, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], srcs[i], errs[i] = c.acquire(context.Background())
		}()
	}
	eventually(t, "all callers to wait", func() bool { return c.waiting.Load() == callers })
	release()
	wg.Wait()

	if n := cred.calls.Load(); n != 1 {
		t.Fatalf("GetToken calls = %d, want 1", n)
	}
	for i := range callers {
		if errs[i] != nil || toks[i].Token != toks[0].Token || srcs[i] != fetched {
			t.Fatalf("caller %d: (%q, %v, %v), want the one fetched token", i, toks[i].Token, srcs[i], errs[i])
		}
	}
	if got := log.count(CacheMiss); got != callers {
		t.Errorf("CacheMiss events = %d, want %d (one per waiting caller)", got, callers)
	}
	if got := log.count(FetchStart); got != 1 {
		t.Errorf("FetchStart events = %d, want 1", got)
	}
}

func TestRefreshPoint(t *testing.T) {
	const margin = 5 * time.Minute
	tests := []struct {
		name                 string
		lifetime             time.Duration
		refreshOn            time.Duration // from now; 0: unset
		wantRefresh, wantExp time.Duration // from now
	}{
		{"one hour: expiry minus margin", time.Hour, 0, 55 * time.Minute, time.Hour - 10*time.Second},
		{"24 h with RefreshOn", 24 * time.Hour, 12 * time.Hour, 12 * time.Hour, 24*time.Hour - 10*time.Second},
		{"RefreshOn in the past is ignored", time.Hour, -time.Minute, 55 * time.Minute, time.Hour - 10*time.Second},
		{"RefreshOn after expiry is ignored", time.Hour, 2 * time.Hour, 55 * time.Minute, time.Hour - 10*time.Second},
		{"short-lived: half the lifetime", 6 * time.Minute, 0, 3 * time.Minute, 6*time.Minute - 10*time.Second},
		{"shorter than the margin: half the lifetime", 2 * time.Minute, 0, time.Minute, 2*time.Minute - 10*time.Second},
		{"tiny: expired a quarter early", 20 * time.Second, 0, 10 * time.Second, 15 * time.Second},
		{"RefreshOn past the hard expiry is clamped", time.Minute, 59 * time.Second, 50 * time.Second, 50 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := azcore.AccessToken{Token: "x", ExpiresOn: t0.Add(tt.lifetime)}
			if tt.refreshOn != 0 {
				tok.RefreshOn = t0.Add(tt.refreshOn)
			}
			e := newEntry(tok, t0, margin)
			if got := e.refreshAt.Sub(t0); got != tt.wantRefresh {
				t.Errorf("refresh after %v, want %v", got, tt.wantRefresh)
			}
			if got := e.expireAt.Sub(t0); got != tt.wantExp {
				t.Errorf("expired after %v, want %v", got, tt.wantExp)
			}
		})
	}
}

func TestRefreshMarginOption(t *testing.T) {
	c, cred, clock, _ := newTestCache(t, WithRefreshMargin(20*time.Minute))
	ctx := context.Background()
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(39 * time.Minute) // 1h token, refresh at 40 min
	c.Token(ctx)
	if n := cred.calls.Load(); n != 1 {
		t.Fatalf("refreshed before the margin: %d calls", n)
	}
	clock.Advance(time.Minute)
	c.Token(ctx)
	waitIdle(t, c)
	if n := cred.calls.Load(); n != 2 {
		t.Fatalf("GetToken calls = %d after the refresh point, want 2", n)
	}
}

func TestStaleWhileValid(t *testing.T) {
	c, cred, clock, log := newTestCache(t)
	ctx := context.Background()
	old, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release := cred.block()
	defer release()
	clock.Advance(56 * time.Minute) // past the refresh point (55 min), before expiry

	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, src, err := c.acquire(ctx)
			if err != nil || tok.Token != old.Token || src != fromCache {
				t.Errorf("during refresh: (%q, %v, %v), want the cached token", tok.Token, src, err)
			}
		}()
	}
	wg.Wait() // all returned while the refresh is still blocked
	eventually(t, "the background refresh to call GetToken", func() bool { return cred.calls.Load() >= 2 })
	if n := cred.calls.Load(); n != 2 {
		t.Fatalf("GetToken calls = %d, want 2 (one background refresh)", n)
	}
	if got := log.count(RefreshStart); got != 1 {
		t.Fatalf("RefreshStart events = %d, want 1", got)
	}
	release()
	waitIdle(t, c)
	tok, src, err := c.acquire(ctx)
	if err != nil || tok.Token == old.Token || src != fromCache {
		t.Fatalf("after refresh: (%q, %v, %v), want the new token from the cache", tok.Token, src, err)
	}
	var bgEnd bool
	for _, e := range log.all() {
		bgEnd = bgEnd || (e.Kind == FetchEnd && e.Background)
	}
	if !bgEnd {
		t.Error("no background FetchEnd event")
	}
}

func TestExpiredTokenMakesCallersWait(t *testing.T) {
	c, cred, clock, _ := newTestCache(t)
	ctx := context.Background()
	old, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour - 10*time.Second) // the hard expiry
	release := cred.block()
	done := make(chan struct{})
	var got azcore.AccessToken
	var src source
	go func() {
		defer close(done)
		got, src, err = c.acquire(ctx)
	}()
	eventually(t, "the caller to wait", func() bool { return c.waiting.Load() == 1 })
	select {
	case <-done:
		t.Fatal("Acquire returned an expired token instead of waiting")
	default:
	}
	release()
	<-done
	if err != nil || got.Token == old.Token || src != fetched {
		t.Fatalf("after expiry: (%q, %v, %v), want a new fetched token", got.Token, src, err)
	}
}

func TestSourceAndKindStrings(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		fromCache: "cache", fetched: "fetched", source(7): "source(7)",
		CacheHit: "cache_hit", CacheMiss: "cache_miss", FetchStart: "fetch_start", FetchEnd: "fetch_end",
		FetchFailed: "fetch_failed", RefreshStart: "refresh_start",
		BackoffWait: "backoff_wait", EventKind(0): "EventKind(0)", EventKind(99): "EventKind(99)",
	} {
		if got := v.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}
