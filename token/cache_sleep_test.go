package token

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// afterSleep returns t as time.Now would report it after the machine slept for d: the
// wall clock moved on by d, the monotonic reading did not (Go's monotonic clock is
// CLOCK_MONOTONIC, which stops during suspend and hibernation). No public API builds
// such a time, so this edits time.Time's representation (Go 1.9+: wall carries the
// hasMonotonic flag in bit 63 and whole seconds since 1885 from bit 30; ext is the
// monotonic reading); checkAfterSleep verifies the result, so a change of that
// representation fails the test instead of weakening it.
func afterSleep(t time.Time, d time.Duration) time.Time {
	type rep struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	r := (*rep)(unsafe.Pointer(&t))
	r.wall += uint64(d/time.Second) << 30
	return t
}

func checkAfterSleep(t *testing.T) {
	t.Helper()
	now := time.Now()
	slept := afterSleep(now, time.Hour)
	if slept.Sub(now) != 0 || slept.Round(0).Sub(now.Round(0)) != time.Hour {
		t.Fatalf("afterSleep does not model a sleep on this Go version: monotonic difference %v, wall difference %v",
			slept.Sub(now), slept.Round(0).Sub(now.Round(0)))
	}
}

// sleepClock is the system clock of a machine that has slept for slept in total.
type sleepClock struct{ slept atomic.Int64 }

func (c *sleepClock) Now() time.Time { return afterSleep(time.Now(), time.Duration(c.slept.Load())) }

func (c *sleepClock) sleep(d time.Duration) { c.slept.Add(int64(d)) }

// TestSleepResume: a laptop or VM sleeps for longer than its token lives. The issue's
// case: 20 s tokens and an hour asleep — the cache must fetch, not serve a token that
// expired 59 minutes ago. Tokens carry ExpiresOn = Now()+life with a monotonic reading,
// as MSAL computes them. Also a 1 h token after 56 min asleep: the refresh is due and
// starts in the background while the still-valid token is served.
func TestSleepResume(t *testing.T) {
	checkAfterSleep(t)
	tests := []struct {
		name      string
		life      time.Duration
		sleep     time.Duration
		wantFetch bool // the caller waits for a new token (else: served, refresh in background)
	}{
		{"20s token, 1h asleep", 20 * time.Second, time.Hour, true},
		{"1h token, 56min asleep", time.Hour, 56 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &sleepClock{}
			var calls atomic.Int32
			cred := funcCred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
				n := calls.Add(1)
				return azcore.AccessToken{Token: secretPrefix + string(rune('A'+n)), ExpiresOn: clock.Now().Add(tt.life)}, nil
			})
			c := NewCache(cred, ScopePublic, WithClock(clock))
			defer c.Close()
			ctx := context.Background()
			first, err := c.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			clock.sleep(tt.sleep)

			got, src, err := c.acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			now := clock.Now()
			if tt.wantFetch {
				if got.Token == first.Token || src != fetched {
					t.Fatalf("after %v asleep: (%v, %s) — the token that expired %v ago, want a fetched one",
						tt.sleep, src, got.ExpiresOn.Round(0).Format(time.RFC3339), now.Round(0).Sub(got.ExpiresOn.Round(0)).Round(time.Second))
				}
			} else {
				if got.Token != first.Token {
					t.Fatalf("after %v asleep: got a new token at once, want the still-valid one served", tt.sleep)
				}
				waitIdle(t, c)
				if n := calls.Load(); n != 2 {
					t.Fatalf("GetToken calls = %d, want 2: the refresh due after the sleep did not start", n)
				}
				got, _ = c.Token(ctx)
			}
			if !got.ExpiresOn.After(now) {
				t.Fatalf("served a token that expired at %v, now %v", got.ExpiresOn, now.Round(0))
			}
			if got.ExpiresOn != got.ExpiresOn.Round(0) {
				t.Error("the served ExpiresOn carries a monotonic reading")
			}
		})
	}
}

// TestSleepDuringBackoff: a back-off pause is measured on the wall clock too, so that a
// machine that slept through it fetches at once on waking.
func TestSleepDuringBackoff(t *testing.T) {
	checkAfterSleep(t)
	clock := &sleepClock{}
	var fail atomic.Bool
	fail.Store(true)
	var calls atomic.Int32
	cred := funcCred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		calls.Add(1)
		if fail.Load() {
			return azcore.AccessToken{}, errors.New("IMDS unreachable")
		}
		return azcore.AccessToken{Token: secretPrefix, ExpiresOn: clock.Now().Add(time.Hour)}, nil
	})
	c := NewCache(cred, ScopePublic, WithClock(clock), WithBackoff(time.Hour, time.Hour))
	defer c.Close()
	if _, err := c.Token(context.Background()); err == nil {
		t.Fatal("want the credential's error")
	}
	fail.Store(false)
	clock.sleep(2 * time.Hour)
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatalf("after sleeping through the back-off: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("GetToken calls = %d, want 2", n)
	}
}
