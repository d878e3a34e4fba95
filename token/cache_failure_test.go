package token

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// credError stands for a credential's typed error, to check errors.As through the cache.
type credError struct{ msg string }

func (e *credError) Error() string { return e.msg }

func TestCancelledCallerDoesNotFailOthers(t *testing.T) {
	c, cred, _, _ := newTestCache(t)
	release := cred.block()
	defer release()

	ctx1, cancel1 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel1()
	_, err1 := c.Token(ctx1) // starts the fetch, then gives up
	if !errors.Is(err1, context.DeadlineExceeded) {
		t.Fatalf("first caller: err = %v, want one wrapping context.DeadlineExceeded", err1)
	}
	if !strings.HasPrefix(err1.Error(), "pgentra: ") {
		t.Errorf("error lacks the pgentra prefix: %v", err1)
	}

	done := make(chan error, 1)
	go func() {
		_, err := c.Token(context.Background())
		done <- err
	}()
	eventually(t, "the second caller to wait", func() bool { return c.waiting.Load() == 1 })
	release()
	if err := <-done; err != nil {
		t.Fatalf("second caller: %v, want the token of the fetch the first caller started", err)
	}
	if n := cred.calls.Load(); n != 1 {
		t.Fatalf("GetToken calls = %d, want 1 (the first fetch goes on)", n)
	}
	if err := cred.lastCtxErr(); err != nil {
		t.Fatalf("the credential's context ended (%v): it must not be the caller's", err)
	}
}

func TestAlreadyCancelledCaller(t *testing.T) {
	c, cred, _, _ := newTestCache(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Token(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	if n := cred.calls.Load(); n != 0 {
		t.Fatalf("GetToken calls = %d for a cancelled caller, want 0", n)
	}
}

func TestFetchTimeout(t *testing.T) {
	c, cred, _, log := newTestCache(t, WithFetchTimeout(30*time.Millisecond))
	release := cred.block() // hangs until its context ends
	defer release()
	_, err := c.Token(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "fetch timeout of 30ms") {
		t.Fatalf("err = %v, want a fetch-timeout error wrapping context.DeadlineExceeded", err)
	}
	if got := log.count(FetchFailed); got != 1 {
		t.Fatalf("FetchFailed events = %d, want 1", got)
	}
}

// opaqueTimeoutCred issues a first token, then blocks until its context ends and fails
// with an error of its own that does not wrap the context's, as azidentity's managed
// identity credential does (its AuthenticationFailedError has no Unwrap).
type opaqueTimeoutCred struct {
	clock *fakeClock
	calls atomic.Int32
}

func (o *opaqueTimeoutCred) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if o.calls.Add(1) == 1 {
		return azcore.AccessToken{Token: secretPrefix + "-1", ExpiresOn: o.clock.Now().Add(time.Hour)}, nil
	}
	<-ctx.Done()
	return azcore.AccessToken{}, &credError{msg: "ManagedIdentityCredential: managed identity timed out"}
}

// TestFetchTimeoutWrapsDeadlineExceeded: WithFetchTimeout promises an error wrapping
// context.DeadlineExceeded at the timeout, also when the credential returns promptly
// on its context with an error that does not wrap it. The fetch is a background refresh
// (no waiter could abandon it first), whose error callers get during the back-off.
func TestFetchTimeoutWrapsDeadlineExceeded(t *testing.T) {
	clock := newFakeClock()
	cred := &opaqueTimeoutCred{clock: clock}
	c := NewCache(cred, ScopePublic, WithClock(clock), WithFetchTimeout(20*time.Millisecond), WithBackoff(10*time.Minute, 10*time.Minute))
	defer c.Close()
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(56 * time.Minute) // past the refresh point: a background refresh
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, c)
	clock.Advance(4 * time.Minute) // expired, inside the back-off pause
	_, err := c.Token(context.Background())
	var ce *credError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ce) || !strings.Contains(err.Error(), "fetch timeout of 20ms") {
		t.Fatalf("err = %v, want a fetch-timeout error wrapping context.DeadlineExceeded and the credential's error", err)
	}
}

func TestFailureSharedAndBackoff(t *testing.T) {
	const callers = 500
	c, cred, clock, log := newTestCache(t)
	base := &credError{msg: "IMDS said 500"}
	cred.setErr(base)

	var wg sync.WaitGroup
	errs := make([]error, callers)
	took := make([]time.Duration, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			_, errs[i] = c.Token(ctx)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	if n := cred.calls.Load(); n < 1 || n > 2 {
		t.Fatalf("GetToken calls = %d for %d callers, want 1 or 2", n, callers)
	}
	for i, err := range errs {
		var ce *credError
		if !errors.As(err, &ce) || ce != base {
			t.Fatalf("caller %d: err = %v, want the credential's error", i, err)
		}
		if !strings.HasPrefix(err.Error(), `pgentra: acquiring token for scope "`+ScopePublic+`": `) {
			t.Fatalf("caller %d: err = %q lacks the scope context", i, err)
		}
		if took[i] >= 2*time.Second {
			t.Fatalf("caller %d waited %v, past its context", i, took[i])
		}
	}
	// A caller inside the back-off window gets the shared error without a
	// fetch. (Callers of the burst may all have joined the one in-flight
	// fetch, so the burst alone need not produce a BackoffWait.)
	calls := cred.calls.Load()
	if _, err := c.Token(context.Background()); !errors.Is(err, base) {
		t.Fatalf("inside the back-off: err = %v, want the credential's error", err)
	}
	if n := cred.calls.Load(); n != calls {
		t.Fatalf("GetToken calls = %d inside the back-off, want %d", n, calls)
	}
	if log.count(BackoffWait) == 0 {
		t.Error("no BackoffWait event")
	}

	// After the back-off (at most the initial 1 s) the next call fetches again.
	clock.Advance(DefaultBackoffInitial)
	if _, err := c.Token(context.Background()); err == nil {
		t.Fatal("want the credential's error")
	}
	if n := cred.calls.Load(); n != calls+1 {
		t.Fatalf("GetToken calls = %d after the back-off, want %d", n, calls+1)
	}
}

func TestBackoffDoublesAndResets(t *testing.T) {
	c, cred, clock, _ := newTestCache(t, WithBackoff(time.Second, 4*time.Second))
	cred.setErr(errors.New("down"))
	ctx := context.Background()
	fail := func(wantCalls int32) {
		t.Helper()
		if _, err := c.Token(ctx); err == nil {
			t.Fatal("want an error")
		}
		if n := cred.calls.Load(); n != wantCalls {
			t.Fatalf("GetToken calls = %d, want %d", n, wantCalls)
		}
	}
	fail(1)
	fail(1) // inside the back-off: no call
	clock.Advance(time.Second)
	fail(2) // back-off now up to 2 s
	clock.Advance(999 * time.Millisecond)
	fail(2) // at least 1 s (jitter keeps >= half) has not passed
	clock.Advance(time.Second + time.Millisecond)
	fail(3) // 4 s now
	clock.Advance(4 * time.Second)
	fail(4) // capped at 4 s
	clock.Advance(4 * time.Second)
	fail(5)
	c.mu.Lock()
	next := c.nextBackoff
	c.mu.Unlock()
	if next != 4*time.Second {
		t.Fatalf("back-off grew to %v, want capped at 4s", next)
	}

	cred.setErr(nil)
	clock.Advance(4 * time.Second)
	if _, err := c.Token(ctx); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	c.mu.Lock()
	next, lastErr := c.nextBackoff, c.lastErr
	c.mu.Unlock()
	if next != time.Second || lastErr != nil {
		t.Fatalf("after a success: back-off %v, last error %v; want reset to 1s and nil", next, lastErr)
	}
}

func TestBackoffServesValidToken(t *testing.T) {
	c, cred, clock, log := newTestCache(t)
	ctx := context.Background()
	good, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cred.setErr(errors.New("refresh failed"))
	clock.Advance(56 * time.Minute) // refresh due
	for range 3 {
		tok, err := c.Token(ctx)
		if err != nil || tok.Token != good.Token {
			t.Fatalf("during failing refresh: (%q, %v), want the still-valid token", tok.Token, err)
		}
		waitIdle(t, c)
	}
	if n := cred.calls.Load(); n != 2 {
		t.Fatalf("GetToken calls = %d, want 2: no new refresh during the back-off", n)
	}
	var bgFail bool
	for _, e := range log.all() {
		bgFail = bgFail || (e.Kind == FetchFailed && e.Background && e.Err != nil)
	}
	if !bgFail {
		t.Error("no background FetchFailed event")
	}
	clock.Advance(time.Second) // back-off over: the next call refreshes again
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, c)
	if n := cred.calls.Load(); n != 3 {
		t.Fatalf("GetToken calls = %d after the back-off, want 3", n)
	}
}

// funcCred adapts a function to azcore.TokenCredential.
type funcCred func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error)

func (f funcCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return f(ctx, o)
}

func TestUnusableTokensAreNotCached(t *testing.T) {
	tests := []struct {
		name string
		tok  azcore.AccessToken
		want string
	}{
		{"empty", azcore.AccessToken{ExpiresOn: t0.Add(time.Hour)}, "empty token"},
		{"expired", azcore.AccessToken{Token: secretPrefix + "-old", ExpiresOn: t0.Add(-time.Second)}, "expired at 2025-11-28T11:59:59Z"},
		{"no expiry", azcore.AccessToken{Token: secretPrefix + "-zero"}, "expired at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := funcCred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
				return tt.tok, nil
			})
			c := NewCache(cred, ScopePublic, WithClock(newFakeClock()))
			defer c.Close()
			_, err := c.Token(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secretPrefix) {
				t.Fatalf("error contains the token: %v", err)
			}
			if c.cur.Load() != nil {
				t.Fatal("unusable token was cached")
			}
		})
	}
}

func TestCredentialPanicIsAnError(t *testing.T) {
	cred := funcCred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		panic("boom")
	})
	c := NewCache(cred, ScopePublic)
	defer c.Close()
	if _, err := c.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "credential panicked: boom") {
		t.Fatalf("err = %v, want a credential-panicked error", err)
	}
}
