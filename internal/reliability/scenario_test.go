package reliability_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

// stepClock is a token.Clock that moves only when told to, starting at the real now.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// throttledIMDS is an IMDS that answers every token request with 429 and
// "Retry-After: 60" only, and one user-assigned identity on it.
func throttledIMDS(t *testing.T) (*entra.IdentityServer, entra.Principal) {
	t.Helper()
	tn, err := entra.NewTenant(entra.TenantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tn.AddUserAssignedIdentity("id-throttled")
	if err != nil {
		t.Fatal(err)
	}
	srv := entra.NewIdentityServer(tn, entra.IdentityServerOptions{})
	t.Cleanup(srv.Close)
	srv.SetDefault(entra.Throttled(time.Minute))
	return srv, p
}

// realMICred is azidentity's ManagedIdentityCredential for p with its default retry
// policy (6 tries, 2 s → 25 s cap), reaching srv.
func realMICred(t *testing.T, srv *entra.IdentityServer, p entra.Principal) *azidentity.ManagedIdentityCredential {
	t.Helper()
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: srv.Transport()}, ID: azidentity.ClientID(p.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

var nextAttempt = regexp.MustCompile(`next attempt in ([0-9hms.]+)\)`)

// TestScenarioThrottledIMDS (issue 14, scenario 3): IMDS throttles with 429 and
// "Retry-After: 60". azcore gives up at once (60 s exceeds its 25 s cap), so the cache
// must honour the minute itself: at most 2 token requests in 40 s — before the fix, 6
// (its own 1 s → 30 s back-off). Through the real ManagedIdentityCredential.
//
// The 40 s are proven in less wall time, two ways. (1) Virtual time: the cache runs on
// a step clock that the test moves through 40 s in 1 s steps, calling Token from 5
// "pods" (each its own credential and cache, as pods on one node) 8 times per step; the
// cache decides when to ask again by that clock alone, so the IMDS request count over
// the virtual 40 s is what 40 real seconds would give. Moving on to 76 s (Retry-After
// plus the largest spread) lets each pod ask again: the control that requests do
// happen. (2) Wall time: a cache on the real clock is hammered for 3 s by 8 goroutines;
// it makes 1 request and every error announces a pause that ends no earlier than
// 60 s after the request.
func TestScenarioThrottledIMDS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("virtual 40s, 5 pods", func(t *testing.T) {
		srv, p := throttledIMDS(t)
		clock := &stepClock{now: time.Now()}
		const pods = 5
		caches := make([]*token.Cache, pods)
		for i := range caches {
			caches[i] = token.NewCache(realMICred(t, srv, p), token.ScopePublic, token.WithClock(clock))
			defer caches[i].Close()
		}
		var errs []error
		for s := 0; s <= 40; s++ {
			for _, c := range caches {
				for range 8 {
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := c.Token(cctx)
					cancel()
					errs = append(errs, err)
				}
			}
			if s < 40 {
				clock.advance(time.Second)
			}
		}
		in40 := srv.Requests()
		for _, err := range errs {
			var te *token.ThrottledError
			if !errors.As(err, &te) || te.RetryAfter != time.Minute || !strings.Contains(err.Error(), "Retry-After 1m0s") {
				t.Fatalf("caller error = %v, want the throttling error with the wait", err)
			}
		}
		clock.advance(36 * time.Second) // 76 s: past Retry-After and its spread
		for _, c := range caches {
			c.Token(ctx)
		}
		after := srv.Requests() - in40
		t.Logf("throttled IMDS (429, Retry-After: 60): %d pods, %d Token calls over 40 s: %d IMDS requests (%.1f per pod); at 76 s: %d more",
			pods, len(errs), in40, float64(in40)/pods, after)
		if in40 > 2*pods {
			t.Errorf("%d IMDS requests from %d pods in 40 s, want at most 2 per pod", in40, pods)
		}
		if after != pods {
			t.Errorf("%d requests after the pause, want %d (one per pod): the control failed", after, pods)
		}
	})

	t.Run("wall 3s", func(t *testing.T) {
		srv, p := throttledIMDS(t)
		c := token.NewCache(realMICred(t, srv, p), token.ScopePublic)
		defer c.Close()
		start := time.Now()
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < 3*time.Second {
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := c.Token(cctx)
					cancel()
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		minPause := time.Hour
		for _, err := range errs {
			var te *token.ThrottledError
			if !errors.As(err, &te) {
				t.Fatalf("caller error = %v, want a ThrottledError", err)
			}
			if m := nextAttempt.FindStringSubmatch(err.Error()); m != nil {
				d, perr := time.ParseDuration(m[1])
				if perr != nil {
					t.Fatal(perr)
				}
				minPause = min(minPause, d)
			}
		}
		t.Logf("wall clock: %d Token calls in %s: %d IMDS requests; shortest announced pause %s", len(errs), elapsed.Round(time.Millisecond), srv.Requests(), minPause)
		if n := srv.Requests(); n != 1 {
			t.Errorf("%d IMDS requests in 3 s, want 1", n)
		}
		if minPause < time.Minute-elapsed {
			t.Errorf("announced pause %s, want >= 60 s minus the %s elapsed", minPause, elapsed)
		}
	})
}

// TestScenarioRefreshBypassesMSAL: after a server refuses a cached token, a plain
// fetch gets the same token back from MSAL's cache (tokens living more than 5 min
// are cached by the managed identity and confidential-client credentials); Refresh
// gets a new one, with one more request to the identity endpoint. Through the real
// ManagedIdentityCredential (IMDS) and ClientSecretCredential (authority).
func TestScenarioRefreshBypassesMSAL(t *testing.T) {
	t.Parallel()
	tn, err := entra.NewTenant(entra.TenantOptions{TokenLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ua, err := tn.AddUserAssignedIdentity("id-refresh")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := tn.AddServicePrincipal("sp-refresh")
	if err != nil {
		t.Fatal(err)
	}
	imds := entra.NewIdentityServer(tn, entra.IdentityServerOptions{})
	t.Cleanup(imds.Close)
	auth := entra.NewAuthority(tn)
	t.Cleanup(auth.Close)
	secret, err := azidentity.NewClientSecretCredential(tn.ID(), sp.AppID, sp.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: auth.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		cred     azcore.TokenCredential
		requests func() int
	}{
		{"managed identity", realMICred(t, imds, ua), func() int { return imds.RequestsFor(ua) }},
		{"client secret", secret, func() int { return auth.RequestsFor(sp) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := token.NewCache(tc.cred, token.ScopePublic)
			defer c.Close()
			first, err := c.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			base := tc.requests()
			plain := token.NewCache(tc.cred, token.ScopePublic) // a plain fetch, as by a cache without the token
			defer plain.Close()
			again, err := plain.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if again.Token != first.Token || tc.requests() != base {
				t.Fatalf("test premise: a plain fetch made %d requests and changed the token: %v", tc.requests()-base, again.Token != first.Token)
			}
			fresh, err := c.Refresh(ctx, first.Token)
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if fresh.Token == first.Token {
				t.Fatal("Refresh returned the refused token: MSAL's cache was not bypassed")
			}
			if n := tc.requests() - base; n != 1 {
				t.Fatalf("Refresh made %d identity requests, want 1", n)
			}
			if cached, _ := c.Token(ctx); cached.Token != fresh.Token {
				t.Fatal("the refreshed token is not the cached one")
			}
			t.Logf("%s: plain fetch → same token, 0 requests; Refresh → new token, 1 request", tc.name)
		})
	}
}
