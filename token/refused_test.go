package token

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Issue 21 item 1: a refused token whose replacement cannot be fetched (the
// identity endpoint is down) stays cached and is served to every other
// caller until a replacement is stored; the Refresh caller gets an error,
// never the refused token.
func TestRefreshFailureKeepsServingRefusedToken(t *testing.T) {
	c, cred, clock, _ := newTestCache(t)
	ctx := context.Background()
	first, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	outage := errors.New("identity endpoint: 503 Service Unavailable")
	cred.setErr(outage)
	got, err := c.Refresh(ctx, first.Token)
	if !errors.Is(err, outage) || got.Token != "" {
		t.Fatalf("Refresh during the outage = (%q, %v); want no token and the credential's error", got.Token, err)
	}
	for i := range 3 {
		tok, src, err := c.acquire(ctx)
		if err != nil || tok.Token != first.Token || src != fromCache {
			t.Fatalf("Acquire %d after the failed refresh = (%q, %v, %v); want the still valid cached token", i, tok.Token, src, err)
		}
		clock.Advance(10 * time.Minute) // well inside its hour
	}
	// The endpoint recovers: once the back-off is over, a refresh replaces it.
	cred.setErr(nil)
	clock.Advance(DefaultBackoffMax)
	next, err := c.Refresh(ctx, first.Token)
	if err != nil || next.Token == first.Token {
		t.Fatalf("Refresh after recovery = (%q, %v); want a new token", next.Token, err)
	}
	if tok, _ := c.Token(ctx); tok.Token != next.Token {
		t.Fatalf("Token after the replacement = %q, want the new %q", tok.Token, next.Token)
	}
}

// While the replacement of a refused token is being fetched, other callers
// get the refused (still valid) token at once instead of waiting.
func TestRefreshInProgressServesCachedToken(t *testing.T) {
	c, cred, _, _ := newTestCache(t)
	ctx := context.Background()
	first, _ := c.Token(ctx)
	release := cred.block()
	defer release()
	done := make(chan error, 1)
	go func() {
		tok, err := c.Refresh(ctx, first.Token)
		if err == nil && tok.Token == first.Token {
			err = errors.New("Refresh returned the refused token")
		}
		done <- err
	}()
	eventually(t, "Refresh to wait for its fetch", func() bool { return c.waiting.Load() == 1 })
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	tok, src, err := c.acquire(actx)
	if err != nil || tok.Token != first.Token || src != fromCache {
		t.Fatalf("Acquire while the refresh runs = (%q, %v, %v); want the cached token at once", tok.Token, src, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The gap the remembered refusal closes: a token the credential hands back
// from its own cache after it was refused is not "fetched" (as fresh as it
// gets), so the driver may still ask past the credential's cache for it.
func TestRefusedTokenBroughtBackIsNotFetched(t *testing.T) {
	c, _, _, _ := newCachingCache(t)
	ctx := context.Background()
	first, _ := c.Token(ctx)
	invalidate(c, first.Token)
	tok, src, err := c.acquire(ctx) // the credential's cache hands first back
	if err != nil || tok.Token != first.Token {
		t.Fatalf("Acquire = (%q, %v); want the credential's cached token (test set-up)", tok.Token, err)
	}
	if src != fromCache {
		t.Fatalf("Source of a refused token brought back by a fetch = %v, want cache", src)
	}
}

// Issue 21 item 2: a server that refuses the current token again and again
// (one bad node behind a balancer, refusing every other login) costs at most
// one bypass request per back-off window, which doubles while refusals go
// on; limited refreshes fail with ErrRefreshLimited and leave the token
// served.
func TestRefreshRateLimited(t *testing.T) {
	c, cred, clock, _ := newTestCache(t)
	ctx := context.Background()
	tok, _ := c.Token(ctx)
	var bypassAt []time.Time
	limited := 0
	start := clock.Now()
	for clock.Now().Sub(start) < 10*time.Minute {
		before := cred.calls.Load()
		next, err := c.Refresh(ctx, tok.Token)
		switch {
		case errors.Is(err, ErrRefreshLimited):
			limited++
			if cur, _ := c.Token(ctx); cur.Token != tok.Token {
				t.Fatalf("a limited refresh changed the cached token")
			}
		case err != nil:
			t.Fatal(err)
		case cred.calls.Load() != before+1 || next.Token == tok.Token:
			t.Fatalf("Refresh = %q after %d calls; want one new token", next.Token, cred.calls.Load()-before)
		default:
			bypassAt = append(bypassAt, clock.Now())
			tok = next
		}
		clock.Advance(100 * time.Millisecond) // a refused login every 100 ms
	}
	if limited == 0 {
		t.Fatal("no refresh was limited")
	}
	// Windows: 1 s, 2 s, 4 s, … up to DefaultBackoffMax (60 s).
	want := DefaultBackoffInitial
	for i := 1; i < len(bypassAt); i++ {
		if gap := bypassAt[i].Sub(bypassAt[i-1]); gap < want {
			t.Errorf("bypass %d came %s after the previous one; want at least %s", i, gap, want)
		}
		want = min(2*want, DefaultBackoffMax)
	}
	// 1+2+4+8+16+32 s, then one a minute: 6 + about 9 in ten minutes, plus the first.
	if n := len(bypassAt); n > 17 {
		t.Errorf("%d bypass requests in 10 minutes of refusals; want at most 17", n)
	}
	t.Logf("10 min of refusals every 100 ms: %d bypass requests, %d refreshes limited", len(bypassAt), limited)
}

// The window resets after a quiet spell: a refusal after a long time
// without any is answered with a new token at once.
func TestRefreshLimitResetsAfterQuiet(t *testing.T) {
	c, _, clock, _ := newTestCache(t)
	ctx := context.Background()
	tok, _ := c.Token(ctx)
	for _, wait := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second} {
		clock.Advance(wait) // refusals keep coming: the window grows to 8 s
		next, err := c.Refresh(ctx, tok.Token)
		if err != nil {
			t.Fatalf("refusal after %s: %v", wait, err)
		}
		tok = next
	}
	clock.Advance(5 * time.Second)
	if _, err := c.Refresh(ctx, tok.Token); !errors.Is(err, ErrRefreshLimited) {
		t.Fatalf("refusal 5 s into an 8 s window: %v; want ErrRefreshLimited", err)
	}
	clock.Advance(2*DefaultBackoffMax + time.Second) // quiet
	next, err := c.Refresh(ctx, tok.Token)
	if err != nil || next.Token == tok.Token {
		t.Fatalf("Refresh after a quiet spell = (%q, %v); want a new token at once", next.Token, err)
	}
	clock.Advance(DefaultBackoffInitial / 2)
	if _, err := c.Refresh(ctx, next.Token); !errors.Is(err, ErrRefreshLimited) {
		t.Fatalf("a second refusal right after: %v; want ErrRefreshLimited", err)
	}
}

// Short-lived tokens are replaced after each refusal when refusals come no
// faster than every half lifetime: a server whose clock runs ahead refuses
// each token once it has lived that long, and a new token fixes it each
// time (the cache would fetch that often anyway).
func TestRefreshLimitCappedByTokenLifetime(t *testing.T) {
	c, cred, clock, _ := newTestCache(t)
	cred.mu.Lock()
	cred.lifetime = 2 * time.Second
	cred.mu.Unlock()
	ctx := context.Background()
	tok, _ := c.Token(ctx)
	for i := range 20 {
		clock.Advance(1200 * time.Millisecond) // refused before the cache's own refresh is due
		next, err := c.Refresh(ctx, tok.Token)
		if err != nil || next.Token == tok.Token {
			t.Fatalf("refusal %d: Refresh = (%q, %v); want a new token", i, next.Token, err)
		}
		tok = next
	}
}

// A retry after a refusal of an older token (one that expired while its
// login was in flight, say) gets the refreshed token when the cached one is
// past its refresh point, not one about to expire that a slow connect would
// outlive too; if that refresh fails, the cached token is still valid and
// returned.
func TestRefreshOfOlderTokenGetsRefreshedOne(t *testing.T) {
	c, cred, clock, _ := newTestCache(t)
	ctx := context.Background()
	old, _ := c.Token(ctx)
	clock.Advance(2 * time.Hour) // old has expired
	cur, _ := c.Token(ctx)
	clock.Advance(56 * time.Minute) // cur is past its refresh point, valid for 4 more minutes
	got, err := c.Refresh(ctx, old.Token)
	if err != nil || got.Token == cur.Token || got.Token == old.Token {
		t.Fatalf("Refresh(older token) past the refresh point = (%q, %v); want the refreshed token", got.Token, err)
	}
	if n := cred.calls.Load(); n != 3 || cred.opts[2].Claims != "" {
		t.Fatalf("%d GetToken calls (%+v); want the refresh that was due, without claims", n, cred.opts)
	}
	clock.Advance(56 * time.Minute)
	cred.setErr(errors.New("identity endpoint down"))
	again, err := c.Refresh(ctx, cur.Token)
	if err != nil || again.Token != got.Token {
		t.Fatalf("Refresh(older token) when the due refresh fails = (%q, %v); want the still valid cached token", again.Token, err)
	}
}
