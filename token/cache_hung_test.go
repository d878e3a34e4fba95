package token

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// hungCred is a credential whose calls, while hang is set, block for 10 s ignoring their
// context (a token file on a hung mount, a ClientAssertionCredential callback stuck in a
// read) unless released. Each call's token lives lifetime(n) for the n-th call.
type hungCred struct {
	clock    Clock
	calls    atomic.Int32
	active   atomic.Int32 // calls inside GetToken
	hang     atomic.Bool
	release  chan struct{}
	once     sync.Once
	lifetime func(n int32) time.Duration
}

func newHungCred(clock Clock) *hungCred {
	h := &hungCred{clock: clock, release: make(chan struct{}), lifetime: func(int32) time.Duration { return time.Hour }}
	h.hang.Store(true)
	return h
}

func (h *hungCred) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := h.calls.Add(1)
	h.active.Add(1)
	defer h.active.Add(-1)
	if h.hang.Load() {
		select { // the context is ignored on purpose
		case <-h.release:
		case <-time.After(10 * time.Second):
		}
	}
	return azcore.AccessToken{Token: fmt.Sprintf("%s-%d", secretPrefix, n), ExpiresOn: h.clock.Now().Add(h.lifetime(n))}, nil
}

// unblock releases every blocked call, now and later.
func (h *hungCred) unblock() { h.once.Do(func() { close(h.release) }) }

// closeWithin fails the test if Close does not return within 5 s (a deadlock detector,
// not a timing assertion).
func closeWithin(t *testing.T, c *Cache) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}

// TestHungCredentialIsAbandoned: a GetToken call that outlives the fetch timeout no
// longer blocks fetching. Its waiters get the timeout error; the next caller (after the
// back-off) starts a new call while the hung one still runs; at most two calls run at
// once; Close returns at once and leaves only the hung calls themselves.
func TestHungCredentialIsAbandoned(t *testing.T) {
	before := runtime.NumGoroutine()
	clock := newFakeClock()
	cred := newHungCred(clock)
	defer cred.unblock()
	log := &eventLog{}
	c := NewCache(cred, ScopePublic, WithClock(clock), WithFetchTimeout(50*time.Millisecond), WithEventHandler(log.add))
	ctx := context.Background()

	// Call 1 hangs: its waiter gets the fetch timeout error.
	_, err := c.Token(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "fetch timeout of 50ms") {
		t.Fatalf("err = %v, want the fetch timeout", err)
	}
	if log.count(FetchFailed) != 1 {
		t.Fatalf("FetchFailed events = %d, want 1", log.count(FetchFailed))
	}
	// Call 2, started by the next caller after the back-off, hangs too.
	clock.Advance(DefaultBackoffInitial)
	if _, err := c.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second caller: err = %v, want the fetch timeout", err)
	}
	if n := cred.calls.Load(); n != 2 {
		t.Fatalf("GetToken calls = %d, want 2: the next caller starts a new call", n)
	}
	// Two calls hang: no third until one returns.
	clock.Advance(time.Hour)
	_, err = c.Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "2 calls to the credential have not returned") {
		t.Fatalf("third caller: err = %v, want the hung-calls error", err)
	}
	if n, a := cred.calls.Load(), cred.active.Load(); n != 2 || a != 2 {
		t.Fatalf("GetToken calls = %d (%d running), want 2: at most one extra call", n, a)
	}
	if strings.Contains(err.Error(), secretPrefix) {
		t.Fatal("error leaks a token")
	}

	closeWithin(t, c)
	// What is left is the two calls inside the credential, nothing else.
	waitGoroutines(t, before+2)
	if _, err := c.Token(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Token after Close: %v", err)
	}
	cred.unblock()
	waitGoroutines(t, before)
	if c.cur.Load() != nil {
		t.Fatal("a late token was stored after Close")
	}
}

// TestHungCredentialLateResult: a hung call that returns after a newer token was
// cached is dropped; one that returns a token expiring later than the cached one is
// used.
func TestHungCredentialLateResult(t *testing.T) {
	for _, newer := range []bool{false, true} {
		t.Run(fmt.Sprintf("late token newer=%v", newer), func(t *testing.T) {
			clock := newFakeClock()
			cred := newHungCred(clock)
			defer cred.unblock()
			cred.lifetime = func(n int32) time.Duration {
				if n == 1 && newer {
					return 2 * time.Hour
				}
				return time.Hour
			}
			c := NewCache(cred, ScopePublic, WithClock(clock), WithFetchTimeout(50*time.Millisecond))
			defer closeWithin(t, c)
			ctx := context.Background()
			if _, err := c.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want the fetch timeout", err)
			}
			// The next call answers at once.
			cred.hang.Store(false)
			clock.Advance(DefaultBackoffInitial)
			second, err := c.Token(ctx)
			if err != nil || second.Token != secretPrefix+"-2" {
				t.Fatalf("second fetch = (%q, %v)", second.Token, err)
			}
			cred.unblock() // call 1 returns late
			eventually(t, "the late call to return", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.hung == 0 && cred.active.Load() == 0
			})
			got, _ := c.Token(ctx)
			want := second.Token
			if newer {
				want = secretPrefix + "-1"
			}
			if got.Token != want {
				t.Fatalf("cached %q after the late result, want %q", got.Token, want)
			}
		})
	}
}

// TestHungBackgroundRefresh: a background refresh that hangs is abandoned by the next
// caller once past the fetch timeout; callers keep getting the valid token, and a new
// refresh starts after the back-off.
func TestHungBackgroundRefresh(t *testing.T) {
	clock := newFakeClock()
	cred := newHungCred(clock)
	defer cred.unblock()
	cred.hang.Store(false)
	c := NewCache(cred, ScopePublic, WithClock(clock), WithFetchTimeout(30*time.Millisecond))
	defer closeWithin(t, c)
	ctx := context.Background()
	good, _ := c.Token(ctx)
	cred.hang.Store(true)
	clock.Advance(56 * time.Minute) // refresh due
	if tok, err := c.Token(ctx); err != nil || tok.Token != good.Token {
		t.Fatalf("(%q, %v), want the valid token", tok.Token, err)
	}
	eventually(t, "the refresh to pass its fetch timeout", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.inflight != nil && c.inflight.ctx != nil && c.inflight.ctx.Err() != nil
	})
	if tok, err := c.Token(ctx); err != nil || tok.Token != good.Token { // reaps it
		t.Fatalf("(%q, %v), want the valid token", tok.Token, err)
	}
	cred.hang.Store(false)
	clock.Advance(DefaultBackoffInitial)
	c.Token(ctx) // starts a new refresh
	waitIdle(t, c)
	if tok, _ := c.Token(ctx); tok.Token != secretPrefix+"-3" || cred.calls.Load() != 3 {
		t.Fatalf("after the new refresh: %q after %d calls, want call 3's token", tok.Token, cred.calls.Load())
	}
}

// TestCloseWithUnabandonedHungCall: Close during a call that ignores its cancelled
// context (before the fetch timeout) waits only briefly, and its waiters get ErrClosed.
func TestCloseWithUnabandonedHungCall(t *testing.T) {
	clock := newFakeClock()
	cred := newHungCred(clock)
	defer cred.unblock()
	c := NewCache(cred, ScopePublic, WithClock(clock)) // default fetch timeout: 2 min
	errs := make(chan error, 1)
	go func() { _, err := c.Token(context.Background()); errs <- err }()
	eventually(t, "the call to start", func() bool { return cred.active.Load() == 1 })
	closeWithin(t, c)
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiter: %v, want ErrClosed", err)
	}
	if cred.active.Load() != 1 {
		t.Fatal("test set-up: the credential returned")
	}
}
