package token

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

type traceKey struct{}

// valueCred records the traceKey value of each GetToken context.
type valueCred struct {
	mu     sync.Mutex
	seen   []any
	n      int
	expiry time.Time
}

func (v *valueCred) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen = append(v.seen, ctx.Value(traceKey{}))
	v.n++
	return azcore.AccessToken{Token: secretPrefix + string(rune('a'+v.n)), ExpiresOn: v.expiry}, nil
}

// TestFetchContext: the context WithFetchContext returns reaches GetToken (its
// values; the cache keeps its own deadline), the fetch's events carry it, and
// Refresh's fetch says so.
func TestFetchContext(t *testing.T) {
	cred := &valueCred{expiry: time.Now().Add(time.Hour)}
	var mu sync.Mutex
	var evs []Event
	starts := 0
	c := NewCache(cred, ScopePublic,
		WithFetchContext(func(ctx context.Context, start Event) context.Context {
			mu.Lock()
			defer mu.Unlock()
			starts++
			if ctx.Value(traceKey{}) != "caller" {
				t.Errorf("fetch context function got the context %v, want the caller's", ctx)
			}
			return context.WithValue(ctx, traceKey{}, "span")
		}),
		WithEventHandler(func(e Event) {
			mu.Lock()
			evs = append(evs, e)
			mu.Unlock()
		}))
	defer c.Close()
	ctx := context.WithValue(context.Background(), traceKey{}, "caller")
	tok, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, tok.Token); err != nil {
		t.Fatal(err)
	}
	cred.mu.Lock()
	seen := cred.seen
	cred.mu.Unlock()
	if len(seen) != 2 || seen[0] != "span" || seen[1] != "span" {
		t.Fatalf("GetToken saw the values %v, want [span span]", seen)
	}
	mu.Lock()
	defer mu.Unlock()
	if starts != 2 {
		t.Fatalf("fetch context function called %d times, want 2", starts)
	}
	var ends []Event
	for _, e := range evs {
		if e.Kind == FetchStart || e.Kind == FetchEnd {
			if e.Context == nil || e.Context.Value(traceKey{}) != "span" {
				t.Errorf("%v event carries context %v, want the fetch's", e.Kind, e.Context)
			}
		}
		if e.Kind == FetchEnd {
			ends = append(ends, e)
		}
	}
	if len(ends) != 2 || ends[0].Refresh || !ends[1].Refresh {
		t.Fatalf("fetch end events %v: want a plain one, then one with Refresh", ends)
	}
	if exp, ok := c.ExpiresOn(); !ok || !exp.Equal(cred.expiry.Round(0)) {
		t.Fatalf("ExpiresOn() = %v, %v; want %v", exp, ok, cred.expiry)
	}
}

// TestExpiresOnEmpty: no token, no expiry.
func TestExpiresOnEmpty(t *testing.T) {
	c := NewCache(&valueCred{expiry: time.Now().Add(time.Hour)}, ScopePublic)
	if _, ok := c.ExpiresOn(); ok {
		t.Fatal("ExpiresOn reports a token before any fetch")
	}
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, ok := c.ExpiresOn(); ok {
		t.Fatal("ExpiresOn reports a token after Close")
	}
}

// TestAbandonedEvent: a fetch past its fetch timeout is reported as abandoned.
func TestAbandonedEvent(t *testing.T) {
	clock := newFakeClock()
	cred := newHungCred(clock)
	defer cred.unblock()
	got := make(chan Event, 4)
	c := NewCache(cred, ScopePublic, WithClock(clock), WithFetchTimeout(50*time.Millisecond), WithEventHandler(func(e Event) {
		if e.Kind == FetchFailed {
			got <- e
		}
	}))
	defer c.Close()
	if _, err := c.Token(context.Background()); err == nil {
		t.Fatal("a hung fetch returned a token")
	}
	select {
	case e := <-got:
		if !e.Abandoned {
			t.Fatalf("FetchFailed of a hung fetch: %v, want Abandoned", e)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no FetchFailed event")
	}
}
