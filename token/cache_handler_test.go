package token

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// within runs fn and fails the test if it has not returned after 5 s: a deadlock
// detector, not a timing assertion.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return: deadlock", what)
	}
}

// TestHandlerMayCloseTheCache: an event handler — on the fetching goroutine or a
// caller's — that calls Close does not deadlock the cache, its callers, or later Close
// calls, whichever event it reacts to.
func TestHandlerMayCloseTheCache(t *testing.T) {
	for _, kind := range []EventKind{CacheMiss, FetchStart, FetchEnd, FetchFailed, RefreshStart, CacheHit, BackoffWait} {
		t.Run(kind.String(), func(t *testing.T) {
			var c *Cache
			var once sync.Once
			closedBy := make(chan struct{})
			handler := func(e Event) {
				if e.Kind == kind {
					once.Do(func() { c.Close(); close(closedBy) })
				}
			}
			clock := newFakeClock()
			cred := newFakeCred(clock)
			c = NewCache(cred, ScopePublic, WithClock(clock), WithEventHandler(handler))
			ctx := context.Background()
			within(t, "driving the cache through every event", func() {
				tok, _ := c.Token(ctx) // miss, fetch start, fetch end
				c.Token(ctx)           // hit
				clock.Advance(56 * time.Minute)
				c.Token(ctx) // refresh start (background) and fetch end
				waitIdle(t, c)
				invalidate(c, tok.Token)
				if cur := c.cur.Load(); cur != nil {
					invalidate(c, cur.tok.Token)
				}
				cred.setErr(errors.New("down"))
				c.Token(ctx) // fetch failed
				c.Token(ctx) // back-off wait
			})
			select {
			case <-closedBy:
			default:
				t.Fatalf("no %v event reached the handler", kind)
			}
			within(t, "a later Close", func() { c.Close() })
			if _, err := c.Token(ctx); !errors.Is(err, ErrClosed) {
				t.Fatalf("Token after the handler's Close: %v", err)
			}
		})
	}
}

// TestHandlerMayCallAnyMethod: handlers that call Token, acquire and Refresh
// for every event — including FetchStart, whose fetch a nested Token waits
// for — neither deadlock nor make extra GetToken calls beyond the refreshes they ask
// for.
func TestHandlerMayCallAnyMethod(t *testing.T) {
	var c *Cache
	var mu sync.Mutex
	var nested []error
	depth := make(chan struct{}, 1) // one nested round at a time, no recursion
	handler := func(e Event) {
		select {
		case depth <- struct{}{}:
		default:
			return
		}
		defer func() { <-depth }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Token(ctx)
		_, _, err2 := c.acquire(ctx)
		if e.Kind == FetchEnd {
			_, err3 := c.Refresh(ctx, "some refused token")
			err2 = errors.Join(err2, err3)
		}
		mu.Lock()
		nested = append(nested, err, err2)
		mu.Unlock()
	}
	clock := newFakeClock()
	cred := newFakeCred(clock)
	c = NewCache(cred, ScopePublic, WithClock(clock), WithEventHandler(handler))
	within(t, "Token with nested calls", func() {
		if _, err := c.Token(context.Background()); err != nil {
			t.Error(err)
		}
		clock.Advance(56 * time.Minute)
		if _, err := c.Token(context.Background()); err != nil {
			t.Error(err)
		}
		waitIdle(t, c)
	})
	within(t, "Close", func() { c.Close() })
	mu.Lock()
	defer mu.Unlock()
	if len(nested) == 0 {
		t.Fatal("the handler made no nested calls")
	}
	for _, err := range nested {
		if err != nil {
			t.Errorf("nested call: %v", err)
		}
	}
	if n := cred.calls.Load(); n > 3 {
		t.Errorf("GetToken calls = %d, want at most 3", n)
	}
}
