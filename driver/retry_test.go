package driver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/token"
)

// msalLike is a credential that caches its token the way MSAL does for
// managed identity and service principals: GetToken hands the cached token
// back until it expires, unless the request carries Claims (a claims
// challenge makes MSAL skip its cache) and honoursClaims is set.
type msalLike struct {
	honoursClaims bool
	lifetime      time.Duration

	mu     sync.Mutex
	serial int
	cached azcore.AccessToken
	claims []string // the Claims of every request
}

func (m *msalLike) GetToken(_ context.Context, o policyOpts) (azcore.AccessToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims = append(m.claims, o.Claims)
	if m.cached.Token != "" && time.Now().Before(m.cached.ExpiresOn) && !(m.honoursClaims && o.Claims != "") {
		return m.cached, nil
	}
	m.serial++
	c := spClaims()
	exp := time.Now().Add(m.lifetime)
	c["exp"] = exp.Unix()
	m.cached = azcore.AccessToken{Token: fakeJWT(c, m.serial), ExpiresOn: exp}
	return m.cached, nil
}

func (m *msalLike) requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.claims...)
}

// scriptedLogins is a withLogin attempt that records every token sent and
// answers with the next scripted error (nil: login accepted).
type scriptedLogins struct {
	sent   []string
	script []error
}

func (s *scriptedLogins) attempt(_ context.Context, e *pqEntry) error {
	s.sent = append(s.sent, e.token)
	if len(s.script) == 0 {
		return nil
	}
	err := s.script[0]
	s.script = s.script[1:]
	return err
}

var (
	errNoRole  = &pq.Error{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "orders-app"`}
	errExpired = &pq.Error{Severity: "FATAL", Code: "28000", Message: "The access token has expired. Please acquire a new token and retry."}
)

func retryConnector(t *testing.T, cred azcore.TokenCredential, opts ...Option) *Connector {
	t.Helper()
	c, err := NewConnector("host=db.postgres.database.azure.com user=orders-app dbname=d", append([]Option{WithCredential(cred)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cacheConnector is retryConnector's twin for a Connector that takes its
// tokens (and credential) from cache.
func cacheConnector(t *testing.T, cache *token.Cache) *Connector {
	t.Helper()
	c, err := NewConnector("host=db.postgres.database.azure.com user=orders-app dbname=d", WithTokenCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Issue 10 item 5: after the server refuses a cached token, the retry uses
// a token that is really new — asked for with Claims so MSAL skips its
// cache — and when the credential can only hand the refused token back,
// there is no second login with it.
func TestRetryNeverSendsOneTokenTwice(t *testing.T) {
	for _, honours := range []bool{true, false} {
		name := "credential honours claims"
		if !honours {
			name = "credential returns its cached token regardless"
		}
		t.Run(name, func(t *testing.T) {
			cred := &msalLike{honoursClaims: honours, lifetime: time.Hour}
			c := retryConnector(t, cred)
			ctx := context.Background()
			if err := c.withLogin(ctx, (&scriptedLogins{}).attempt); err != nil {
				t.Fatal(err) // the first token, now cached
			}
			logins := &scriptedLogins{script: []error{errNoRole}} // revoked: refused once
			err := c.withLogin(ctx, logins.attempt)
			reqs := cred.requests()
			if len(reqs) != 2 || reqs[0] != "" || reqs[1] == "" {
				t.Errorf("credential requests' claims = %q; want none for the first token, a claims challenge for the retry", reqs)
			}
			if honours {
				if err != nil {
					t.Fatalf("retry with a new token: %v", err)
				}
				if len(logins.sent) != 2 || logins.sent[0] == logins.sent[1] {
					t.Fatalf("logins sent %d tokens (distinct: %v); want the refused one, then a new one", len(logins.sent), len(logins.sent) == 2 && logins.sent[0] != logins.sent[1])
				}
				return
			}
			if len(logins.sent) != 1 {
				t.Fatalf("logins = %d; want 1: the credential gave the refused token back, which must not be sent again", len(logins.sent))
			}
			var pe *pq.Error
			var le *LoginError
			if !errors.As(err, &pe) || pe.Code != "28P01" || !errors.As(err, &le) || !strings.Contains(le.Hint, "pgaadauth_create_principal") {
				t.Fatalf("error %v; want the server's refusal with its hint", err)
			}
			// The refused token is remembered: the next connect logs in once, asks
			// the credential for nothing.
			again := &scriptedLogins{script: []error{errNoRole}}
			if err := c.withLogin(ctx, again.attempt); !errors.As(err, &pe) {
				t.Fatalf("next connect: %v", err)
			}
			if n := len(cred.requests()); n != 2 || len(again.sent) != 1 {
				t.Errorf("next connect: %d credential requests in all (want 2), %d logins (want 1)", n, len(again.sent))
			}
		})
	}
}

// Issue 10 item 6: a cached token refused while the cache backs off after a
// failed refresh returns the server's refusal (with the hint) joined with
// the credential's error, not the credential's error alone.
func TestRefusalDuringBackoffKeepsServerError(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cred := &fakeCredential{claims: spClaims(), now: clock.Now, lifetime: time.Hour}
	failed := make(chan struct{}, 1)
	c := retryConnector(t, cred, WithTokenCacheOptions(token.WithClock(clock), token.WithEventHandler(func(ev token.Event) {
		if ev.Kind == token.FetchFailed {
			select {
			case failed <- struct{}{}:
			default:
			}
		}
	})))
	ctx := context.Background()
	if err := c.withLogin(ctx, (&scriptedLogins{}).attempt); err != nil {
		t.Fatal(err)
	}
	// Past the refresh point the background refresh fails: the cache serves
	// its still valid token and backs off.
	cred.mu.Lock()
	cred.err = errCredential
	cred.mu.Unlock()
	clock.Add(56 * time.Minute) // past the refresh point (55 min)
	if err := c.withLogin(ctx, (&scriptedLogins{}).attempt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the background refresh did not fail")
	}
	// Now the server refuses that token.
	logins := &scriptedLogins{script: []error{errNoRole}}
	err := c.withLogin(ctx, logins.attempt)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("error %v; want the server's refusal reachable as *pq.Error", err)
	}
	var le *LoginError
	if !errors.As(err, &le) || !strings.Contains(le.Hint, "pgaadauth_create_principal") {
		t.Errorf("error %v; want a *LoginError with the hint", err)
	}
	if !errors.Is(err, errCredential) || !strings.Contains(err.Error(), errCredential.Error()) {
		t.Errorf("error %v; want the credential's error joined", err)
	}
	if len(logins.sent) != 1 {
		t.Errorf("logins = %d, want 1", len(logins.sent))
	}
	if strings.Contains(err.Error(), secretMarker) {
		t.Errorf("error leaks the token: %v", err)
	}
}

// Issue 14 item 4: the server says a token has expired whose exp is still
// ahead here. pgentra asks for a token bypassing the credential's cache;
// if the same one comes back it fails at once with a hint naming clock skew
// and the measured difference, never sends that token again, and never
// suggests azure_refresh_margin.
func TestExpiredByServerClockSkew(t *testing.T) {
	for _, honours := range []bool{true, false} {
		name := "new token available"
		if !honours {
			name = "credential returns the same token"
		}
		t.Run(name, func(t *testing.T) {
			cred := &msalLike{honoursClaims: honours, lifetime: time.Hour}
			c := retryConnector(t, cred)
			ctx := context.Background()
			if err := c.withLogin(ctx, (&scriptedLogins{}).attempt); err != nil {
				t.Fatal(err)
			}
			logins := &scriptedLogins{script: []error{errExpired}}
			err := c.withLogin(ctx, logins.attempt)
			if honours {
				if err != nil || len(logins.sent) != 2 || logins.sent[0] == logins.sent[1] {
					t.Fatalf("err %v, %d logins; want the retry with a new token to succeed", err, len(logins.sent))
				}
				return
			}
			if len(logins.sent) != 1 {
				t.Fatalf("logins = %d, want 1 (the same token must not be sent twice)", len(logins.sent))
			}
			var le *LoginError
			if !errors.As(err, &le) {
				t.Fatalf("error %T %v; want a *LoginError", err, err)
			}
			for _, must := range []string{"clock skew", "behind"} {
				if !strings.Contains(le.Hint, must) {
					t.Errorf("hint %q lacks %q", le.Hint, must)
				}
			}
			if strings.Contains(le.Hint, "azure_refresh_margin") || !strings.Contains(le.Hint, "valid for another 59m") && !strings.Contains(le.Hint, "valid for another 1h0m0s") {
				t.Errorf("hint %q: want the measured difference (~1h) and no azure_refresh_margin advice", le.Hint)
			}
			var pe *pq.Error
			if !errors.As(err, &pe) || pe.Message != errExpired.Message {
				t.Errorf("error %v; want the server's refusal", err)
			}
			// Fail fast: the next connect sends nothing and asks nothing.
			again := &scriptedLogins{}
			if err := c.withLogin(ctx, again.attempt); !errors.As(err, &le) || !strings.Contains(le.Hint, "clock skew") {
				t.Errorf("next connect: %v; want the clock-skew refusal again", err)
			}
			if len(again.sent) != 0 || len(cred.requests()) != 2 {
				t.Errorf("next connect: %d logins (want 0), %d credential requests in all (want 2)", len(again.sent), len(cred.requests()))
			}
		})
	}
}

// Only Azure's fixed message counts as "expired": not a role whose name
// holds the words, and not a token that is expired here too.
func TestRefusedAsExpiredMatching(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{errExpired, true},
		{&pq.Error{Code: "28000", Message: "The access token has expired. Acquire a new token and retry."}, true},
		{&pq.Error{Code: "28000", Message: "the  ACCESS token\thas expired"}, true},
		{&pq.Error{Code: "28P01", Message: `password authentication failed for user "the access token has expired"`}, false},
		{&pq.Error{Code: "57P01", Message: "The access token has expired."}, false},
		{errors.New("The access token has expired."), false},
	}
	for _, tt := range tests {
		if got := refusedAsExpired(tt.err); got != tt.want {
			t.Errorf("refusedAsExpired(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	c := spClaims()
	c["exp"] = time.Now().Add(-time.Minute).Unix()
	if h := skewHint(errExpired, fakeJWT(c, 1), time.Now()); h != "" {
		t.Errorf("a token expired here too got a skew hint: %q", h)
	}
}

// A token fetched for this very login may still come from the credential's
// own cache: when the server refuses it as expired, the one retry asks past
// that cache too (or, with the same token back, reports the clock skew).
func TestExpiredFetchedTokenRetriedPastCredentialCache(t *testing.T) {
	for _, honours := range []bool{true, false} {
		t.Run(map[bool]string{true: "new token available", false: "credential returns the same token"}[honours], func(t *testing.T) {
			cred := &msalLike{honoursClaims: honours, lifetime: time.Hour}
			if _, err := cred.GetToken(context.Background(), scopeOpts(token.ScopePublic)); err != nil {
				t.Fatal(err) // another pool of the process filled the credential's cache
			}
			c := retryConnector(t, cred)
			logins := &scriptedLogins{script: []error{errExpired}}
			err := c.withLogin(context.Background(), logins.attempt)
			if reqs := cred.requests(); len(reqs) != 3 || reqs[2] == "" {
				t.Errorf("credential requests' claims = %q; want the retry's with a claims challenge", reqs)
			}
			if honours {
				if err != nil || len(logins.sent) != 2 || logins.sent[0] == logins.sent[1] {
					t.Fatalf("err %v, %d logins; want one retry with a new token", err, len(logins.sent))
				}
				return
			}
			var le *LoginError
			if len(logins.sent) != 1 || !errors.As(err, &le) || !strings.Contains(le.Hint, "clock skew") {
				t.Fatalf("%d logins, err %v; want one login and the clock-skew hint", len(logins.sent), err)
			}
		})
	}
}

// A retry whose new token is too large for a password still reports the
// server's refusal of the first one (errors.As *pq.Error) with
// ErrTokenTooLarge, and never the oversized token.
func TestRetryTokenTooLargeKeepsServerError(t *testing.T) {
	cred := &fakeCredential{claims: spClaims(), lifetime: time.Hour}
	c := retryConnector(t, cred)
	ctx := context.Background()
	if err := c.withLogin(ctx, (&scriptedLogins{}).attempt); err != nil {
		t.Fatal(err)
	}
	big := spClaims()
	big["pad"] = strings.Repeat("x", maxPasswordLen)
	cred.mu.Lock()
	cred.claims = big
	cred.mu.Unlock()
	logins := &scriptedLogins{script: []error{errNoRole}}
	err := c.withLogin(ctx, logins.attempt) // the cached token is refused; its replacement is too large
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("error %v; want the server's refusal reachable as *pq.Error", err)
	}
	if !errors.Is(err, ErrTokenTooLarge) {
		t.Errorf("error %v; want ErrTokenTooLarge", err)
	}
	if len(logins.sent) != 1 {
		t.Errorf("logins = %d, want 1 (no login with an oversized token)", len(logins.sent))
	}
	if strings.Contains(err.Error(), "xxxxxxxxxx") || strings.Contains(err.Error(), secretMarker) {
		t.Errorf("error shows a token: %.300s", err)
	}
}

// A token larger than Entra's usual but within PostgreSQL's password limit
// (token.MaxTokenSize, the one limit both layers use) is sent as it is and
// still names its user: the user is derived from it, not refused.
func TestTokenWithinPasswordLimitDerivesUser(t *testing.T) {
	claims := userClaims()
	claims["pad"] = strings.Repeat("x", 20<<10)
	cred := &fakeCredential{claims: claims, lifetime: time.Hour}
	c, err := NewConnector("host=db.postgres.database.azure.com dbname=d", WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var users []string
	logins := &scriptedLogins{}
	err = c.withLogin(context.Background(), func(ctx context.Context, e *pqEntry) error {
		users = append(users, e.user)
		return logins.attempt(ctx, e)
	})
	if err != nil {
		t.Fatalf("login with a %d-byte token: %v", len(cred.lastToken()), err)
	}
	if len(logins.sent) != 1 || len(logins.sent[0]) <= 20<<10 || users[0] != "carol@contoso.com" {
		t.Fatalf("logins %d (users %q); want one as carol@contoso.com with the large token", len(logins.sent), users)
	}
}
