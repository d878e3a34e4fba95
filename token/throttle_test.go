package token

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func TestParseRetryAfter(t *testing.T) {
	now := t0
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"seconds", map[string]string{"Retry-After": "60"}, time.Minute},
		{"milliseconds first", map[string]string{"Retry-After": "60", "retry-after-ms": "1500"}, 1500 * time.Millisecond},
		{"x-ms milliseconds", map[string]string{"x-ms-retry-after-ms": "2500"}, 2500 * time.Millisecond},
		{"HTTP date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, -time.Minute},
		{"capped", map[string]string{"Retry-After": "86400"}, MaxRetryAfter},
		{"capped ms", map[string]string{"retry-after-ms": "99999999999"}, MaxRetryAfter},
		{"zero", map[string]string{"Retry-After": "0"}, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"none", nil, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		if got := parseRetryAfter(h, now); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// throttledResponse is a credential error carrying a throttling answer, as azcore
// pipelines return it.
func throttledResponse(status int, retryAfter string) error {
	resp := &http.Response{StatusCode: status, Header: http.Header{}}
	if retryAfter != "" {
		resp.Header.Set("Retry-After", retryAfter)
	}
	return fmt.Errorf("ManagedIdentityCredential: %w", &azcore.ResponseError{StatusCode: status, RawResponse: resp})
}

// TestThrottlingHonoursRetryAfter: a 429 with Retry-After: 60 keeps the cache from
// calling the credential for at least 60 s (spread up to 75 s), with or without a
// valid token; callers get the throttling error with the wait in its message.
func TestThrottlingHonoursRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			c, cred, clock, _ := newTestCache(t)
			ctx := context.Background()
			cred.setErr(throttledResponse(status, "60"))
			_, err := c.Token(ctx)
			var te *ThrottledError
			if !errors.As(err, &te) || te.RetryAfter != time.Minute {
				t.Fatalf("err = %v, want a ThrottledError of 1m", err)
			}
			var re *azcore.ResponseError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), "Retry-After 1m0s") {
				t.Fatalf("err = %q, want the response inside and the wait in the message", err)
			}
			c.mu.Lock()
			pause := c.retryAt.Sub(clock.Now())
			c.mu.Unlock()
			if pause < time.Minute || pause > 75*time.Second {
				t.Fatalf("back-off %v, want within [60s, 75s]", pause)
			}
			// Hammer for 59 s of (fake) time: no call, every caller told the wait.
			for range 59 {
				clock.Advance(time.Second)
				_, err := c.Token(ctx)
				if !errors.As(err, &te) || !strings.Contains(err.Error(), "next attempt in") {
					t.Fatalf("during the pause: %v", err)
				}
			}
			if n := cred.calls.Load(); n != 1 {
				t.Fatalf("GetToken calls = %d during the pause, want 1", n)
			}
			clock.Advance(16 * time.Second)
			cred.setErr(nil)
			if _, err := c.Token(ctx); err != nil {
				t.Fatalf("after the pause: %v", err)
			}
		})
	}
}

// TestThrottlingSpreadsPods: caches throttled at the same instant (pods on one node)
// come back at different times, none before Retry-After.
func TestThrottlingSpreadsPods(t *testing.T) {
	clock := newFakeClock()
	seen := map[time.Time]bool{}
	for range 20 {
		cred := funcCred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
			return azcore.AccessToken{}, throttledResponse(http.StatusTooManyRequests, "60")
		})
		c := NewCache(cred, ScopePublic, WithClock(clock))
		c.Token(context.Background())
		c.mu.Lock()
		at := c.retryAt
		c.mu.Unlock()
		c.Close()
		if at.Sub(clock.Now()) < time.Minute {
			t.Fatalf("retry at +%v, before Retry-After", at.Sub(clock.Now()))
		}
		seen[at] = true
	}
	if len(seen) < 2 {
		t.Fatal("20 throttled caches all retry at the same instant")
	}
}

// TestThrottlingWithValidToken: a throttled background refresh keeps the valid token
// served and makes no further calls during the pause.
func TestThrottlingWithValidToken(t *testing.T) {
	c, cred, clock, _ := newTestCache(t)
	ctx := context.Background()
	good, _ := c.Token(ctx)
	cred.setErr(throttledResponse(http.StatusTooManyRequests, "120"))
	clock.Advance(56 * time.Minute)
	for range 50 {
		tok, err := c.Token(ctx)
		if err != nil || tok.Token != good.Token {
			t.Fatalf("(%q, %v), want the valid token", tok.Token, err)
		}
		waitIdle(t, c)
		clock.Advance(time.Second)
	}
	if n := cred.calls.Load(); n != 2 {
		t.Fatalf("GetToken calls = %d, want 2", n)
	}
}

// TestThrottlingShortRetryAfter: a Retry-After shorter than the cache's own back-off
// does not shorten it, and a 500 with Retry-After is not throttling.
func TestThrottlingShortRetryAfter(t *testing.T) {
	c, cred, clock, _ := newTestCache(t, WithBackoff(10*time.Second, time.Minute))
	cred.setErr(throttledResponse(http.StatusTooManyRequests, "1"))
	c.Token(context.Background())
	c.mu.Lock()
	pause := c.retryAt.Sub(clock.Now())
	c.mu.Unlock()
	if pause < 5*time.Second {
		t.Fatalf("back-off %v, want the own back-off (>= 5s)", pause)
	}
	if _, ok := throttled(throttledResponse(http.StatusInternalServerError, "60"), t0); ok {
		t.Fatal("a 500 was taken as throttling")
	}
	if _, ok := throttled(throttledResponse(http.StatusTooManyRequests, ""), t0); ok {
		t.Fatal("a 429 without Retry-After was taken as a Retry-After")
	}
}
