package token

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// t0 is the fake clock's start.
var t0 = time.Date(2025, 11, 28, 12, 0, 0, 0, time.UTC)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// secretPrefix marks every token the fake credential issues, so tests can look for
// leaks.
const secretPrefix = "SECRET-TOKEN-eyJ"

// fakeCred is an azcore.TokenCredential that counts calls, records what it was asked
// and how its context ended, and can block (gate) or fail on command.
type fakeCred struct {
	clock *fakeClock
	calls atomic.Int32

	mu       sync.Mutex
	gate     chan struct{} // non-nil: calls block until it is closed or ctx ends
	lifetime time.Duration // of issued tokens; default 1h
	err      error         // non-nil: calls fail with it
	opts     []policy.TokenRequestOptions
	ctxErrs  []error // ctx.Err() of each call when it returned
}

func newFakeCred(clock *fakeClock) *fakeCred { return &fakeCred{clock: clock, lifetime: time.Hour} }

func (f *fakeCred) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := f.calls.Add(1)
	f.mu.Lock()
	f.opts = append(f.opts, opts)
	gate, lifetime, err := f.gate, f.lifetime, f.err
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.ctxErrs = append(f.ctxErrs, ctx.Err())
		f.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	}
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{
		Token:     fmt.Sprintf("%s-%d", secretPrefix, n),
		ExpiresOn: f.clock.Now().Add(lifetime),
	}, nil
}

// block makes later calls wait; the returned func releases them.
func (f *fakeCred) block() (release func()) {
	g := make(chan struct{})
	f.mu.Lock()
	f.gate = g
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.gate == g {
				f.gate = nil
			}
			f.mu.Unlock()
			close(g)
		})
	}
}

func (f *fakeCred) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeCred) lastCtxErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ctxErrs) == 0 {
		return nil
	}
	return f.ctxErrs[len(f.ctxErrs)-1]
}

// eventLog collects events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

func (l *eventLog) count(k EventKind) int {
	n := 0
	for _, e := range l.all() {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// newTestCache returns a cache on a fake clock and credential, closed at test end.
func newTestCache(t *testing.T, opts ...Option) (*Cache, *fakeCred, *fakeClock, *eventLog) {
	t.Helper()
	clock := newFakeClock()
	cred := newFakeCred(clock)
	log := &eventLog{}
	// A short fetch timeout turns a regression that blocks callers into a quick failure.
	all := append([]Option{WithClock(clock), WithEventHandler(log.add), WithFetchTimeout(10 * time.Second)}, opts...)
	c := NewCache(cred, ScopePublic, all...)
	t.Cleanup(func() { c.Close() })
	return c, cred, clock, log
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdle waits until no fetch is in flight.
func waitIdle(t *testing.T, c *Cache) {
	t.Helper()
	eventually(t, "the fetch to finish", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.inflight == nil
	})
}

// waitGoroutines waits until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines remain, want <= %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// invalidate drops the cached token if it is still tok and remembers tok as
// refused, as a login refused with it whose replacement is not yet stored
// leaves the cache: tests use it to make the next call fetch.
func invalidate(c *Cache, tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.cur.Load(); e != nil && tok != "" && e.tok.Token == tok && !c.closed {
		c.cur.Store(nil)
		c.refusedTok = tok
	}
}
