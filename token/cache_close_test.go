package token

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestZeroCacheDoesNotPanic: a Cache not made by NewCache (a zero value in a struct)
// fails every call with an error, and its Close, deferred by habit, must not panic.
func TestZeroCacheDoesNotPanic(t *testing.T) {
	var c Cache
	if _, err := c.Token(context.Background()); err == nil {
		t.Fatal("Token on a zero Cache: want an error")
	}
	if _, err := c.Refresh(context.Background(), "x"); err == nil {
		t.Fatal("Refresh on a zero Cache: want an error")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.Token(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Token after Close: err = %v, want ErrClosed", err)
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	c, _, _, _ := newTestCache(t)
	ctx := context.Background()
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := c.Token(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Token after Close: err = %v, want ErrClosed", err)
	}
}

func TestCloseWithHungCredentialLeavesNoGoroutine(t *testing.T) {
	for _, background := range []bool{false, true} {
		t.Run(fmt.Sprintf("background=%v", background), func(t *testing.T) {
			before := runtime.NumGoroutine()
			clock := newFakeClock()
			cred := newFakeCred(clock)
			c := NewCache(cred, ScopePublic, WithClock(clock))
			ctx := context.Background()
			const waiters = 10
			errs := make(chan error, waiters)
			if background {
				if _, err := c.Token(ctx); err != nil {
					t.Fatal(err)
				}
				clock.Advance(56 * time.Minute)
			}
			release := cred.block() // hangs until its context ends; never released
			defer release()
			if background {
				if _, err := c.Token(ctx); err != nil { // starts the hung refresh
					t.Fatal(err)
				}
				clock.Advance(4 * time.Minute) // now expired: callers wait
			}
			for range waiters {
				go func() {
					_, err := c.Token(ctx)
					errs <- err
				}()
			}
			eventually(t, "callers to wait", func() bool { return c.waiting.Load() == waiters })
			// The hung call itself must have started, or Close has no call to
			// cancel (on a busy machine the fetch goroutine may not have
			// reached the credential yet).
			calls := int32(1)
			if background {
				calls = 2
			}
			eventually(t, "the hung credential call", func() bool { return cred.calls.Load() == calls })

			closed := make(chan struct{})
			go func() { c.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return")
			}
			for range waiters {
				if err := <-errs; !errors.Is(err, ErrClosed) {
					t.Fatalf("waiter: err = %v, want ErrClosed", err)
				}
			}
			eventually(t, "the cancelled call to return", func() bool { return cred.lastCtxErr() != nil })
			if err := cred.lastCtxErr(); !errors.Is(err, context.Canceled) {
				t.Fatalf("credential context: %v, want canceled by Close", err)
			}
			waitGoroutines(t, before)
		})
	}
}

func TestNoSecretInEventsOrErrors(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	var mu sync.Mutex
	var rendered []string
	handler := func(e Event) {
		logger.Info("token event", "event", e)
		mu.Lock()
		defer mu.Unlock()
		rendered = append(rendered, fmt.Sprintf("%+v", e), fmt.Sprintf("%v", e), e.String(), e.LogValue().String())
	}
	c, cred, clock, _ := newTestCache(t, WithEventHandler(handler), WithFetchTimeout(50*time.Millisecond))
	ctx := context.Background()
	var errs []error
	collect := func(_ any, err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	tok, err := c.Token(ctx) // miss, fetch start/end
	collect(tok, err)
	collect(c.Token(ctx)) // hit
	clock.Advance(56 * time.Minute)
	collect(c.Token(ctx)) // background refresh
	waitIdle(t, c)
	cur, _ := c.Token(ctx)
	invalidate(c, cur.Token) // the next call fetches
	cred.setErr(fmt.Errorf("credential failed"))
	collect(c.Token(ctx)) // fetch failed
	collect(c.Token(ctx)) // back-off
	clock.Advance(time.Minute)
	cred.setErr(nil)
	release := cred.block()
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	collect(c.Token(short)) // caller's deadline
	cancel()
	collect(c.Token(ctx)) // fetch timeout
	release()
	c.Close()
	collect(c.Token(ctx)) // closed

	if len(errs) < 5 {
		t.Fatalf("only %d error paths exercised", len(errs))
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), secretPrefix) || strings.Contains(fmt.Sprintf("%+v", err), secretPrefix) {
			t.Errorf("error leaks the token: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rendered) < 8*4 {
		t.Fatalf("only %d renderings of events", len(rendered))
	}
	for _, s := range append(rendered, buf.String()) {
		if strings.Contains(s, secretPrefix) {
			t.Errorf("event rendering leaks the token: %s", s)
		}
	}
	if !strings.Contains(buf.String(), `"kind":"fetch_end"`) || !strings.Contains(buf.String(), `"latency"`) {
		t.Errorf("slog output lacks the event fields:\n%s", buf.String())
	}
}

func TestEventRendering(t *testing.T) {
	e := Event{Kind: FetchFailed, Scope: ScopeChina, Latency: 1500 * time.Millisecond,
		ExpiresOn: t0, Err: errors.New("nope"), Background: true}
	want := `fetch_failed scope="` + ScopeChina + `" latency=1.5s expires_on=2025-11-28T12:00:00Z background=true error="nope"`
	if got := e.String(); got != want {
		t.Errorf("String() = %s\nwant       %s", got, want)
	}
	if got := (Event{Kind: CacheHit, Scope: "s"}).String(); got != `cache_hit scope="s"` {
		t.Errorf("minimal String() = %s", got)
	}
	attrs := map[string]string{}
	for _, a := range e.LogValue().Group() {
		attrs[a.Key] = a.Value.String()
	}
	for _, k := range []string{"kind", "scope", "latency", "expires_on", "background", "error"} {
		if _, ok := attrs[k]; !ok {
			t.Errorf("LogValue lacks %q: %v", k, attrs)
		}
	}
}
