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

// errValidation is Azure's generic refusal, which a node may answer at
// random (issue 21).
var errValidation = &pq.Error{Severity: "FATAL", Code: "28000", Message: "An error occurred while validating the access token. Please acquire a new token and retry."}

// alternatingServer refuses every other login, whatever the token: one bad
// node behind a balancer.
type alternatingServer struct {
	mu     sync.Mutex
	logins int
	sent   []string
}

func (s *alternatingServer) attempt(_ context.Context, e *pqEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins++
	s.sent = append(s.sent, e.token)
	if s.logins%2 == 0 {
		return errValidation
	}
	return nil
}

// Issue 21 item 2: 40 connects, one every 250 ms, against a server that
// refuses every other login make at most 5 requests to the credential
// (before: one per refusal, 20), and no login sends a token that the same
// connect saw refused.
func TestIntermittentRefusalsBounded(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cred := &fakeCredential{claims: spClaims(), lifetime: time.Hour, now: clock.Now}
	c := retryConnector(t, cred, WithTokenCacheOptions(token.WithClock(clock)))
	srv := &alternatingServer{}
	ctx := context.Background()
	failed := 0
	for range 40 {
		before := len(srv.sent)
		err := c.withLogin(ctx, srv.attempt)
		if err != nil {
			failed++
			var pe *pq.Error
			if !errors.As(err, &pe) || pe.Message != errValidation.Message {
				t.Fatalf("connect: %v; want the server's refusal", err)
			}
		}
		if sent := srv.sent[before:]; len(sent) == 2 && sent[0] == sent[1] {
			t.Fatal("a retry sent the token just refused")
		}
		clock.Add(250 * time.Millisecond)
	}
	n := cred.calls.Load()
	t.Logf("40 connects, every other login refused: %d credential requests, %d connects failed, %d logins", n, failed, len(srv.sent))
	if n > 5 {
		t.Errorf("credential requests = %d; want at most 5", n)
	}
}

// expiringCred issues JWTs with an exp claim: the first one lives first,
// later ones an hour; err, once set, fails later requests.
type expiringCred struct {
	first time.Duration

	mu     sync.Mutex
	serial int
	err    error
}

func (e *expiringCred) GetToken(_ context.Context, _ policyOpts) (azcore.AccessToken, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return azcore.AccessToken{}, e.err
	}
	e.serial++
	life := time.Hour
	if e.serial == 1 {
		life = e.first
	}
	now := time.Now()
	exp := now.Add(life)
	c := spClaims()
	c["iat"], c["exp"] = now.Unix(), exp.Unix()
	return azcore.AccessToken{Token: fakeJWT(c, e.serial), ExpiresOn: exp}, nil
}

// slowExpiry is a login that takes until the token it carries has expired
// (by its exp claim), then is refused as expired, the first time only.
func slowExpiry(t *testing.T, sent *[]string) func(context.Context, *pqEntry) error {
	return func(_ context.Context, e *pqEntry) error {
		*sent = append(*sent, e.token)
		if len(*sent) > 1 {
			return nil
		}
		claims, err := token.ParseClaims(e.token)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(claims.ExpiresAt) + 50*time.Millisecond)
		return errExpired
	}
}

// Issue 21 item 5: a token that expires while its login is in flight (the
// connect takes longer than the time left) is not a clock problem: the
// login is retried with a new token, even though the token was fetched for
// this very connect.
func TestExpiredInFlightRetried(t *testing.T) {
	cred := &expiringCred{first: 2 * time.Second}
	c := retryConnector(t, cred)
	var sent []string
	if err := c.withLogin(context.Background(), slowExpiry(t, &sent)); err != nil {
		t.Fatalf("connect: %v; want the retry with a new token to succeed", err)
	}
	if len(sent) != 2 || sent[0] == sent[1] {
		t.Fatalf("%d logins (distinct: %v); want the expired token, then a new one", len(sent), len(sent) == 2 && sent[0] != sent[1])
	}
}

// When the retry cannot be made, the hint says the token expired in flight,
// with the time it had left and how long the connect took — not clock skew
// or NTP.
func TestExpiredInFlightHint(t *testing.T) {
	cred := &expiringCred{first: 2 * time.Second}
	c := retryConnector(t, cred)
	var sent []string
	attempt := slowExpiry(t, &sent)
	err := c.withLogin(context.Background(), func(ctx context.Context, e *pqEntry) error {
		err := attempt(ctx, e)
		cred.mu.Lock()
		cred.err = errCredential // no new token to retry with
		cred.mu.Unlock()
		return err
	})
	var le *LoginError
	if !errors.As(err, &le) {
		t.Fatalf("error %T %v; want a *LoginError", err, err)
	}
	if !errors.Is(err, errCredential) || len(sent) != 1 {
		t.Errorf("error %v after %d logins; want one login and the credential's failure joined", err, len(sent))
	}
	for _, must := range []string{"expired while the login was in flight", "left when the login started", "the connect took"} {
		if !strings.Contains(le.Hint, must) {
			t.Errorf("hint %q lacks %q", le.Hint, must)
		}
	}
	for _, mustNot := range []string{"NTP", "clock skew", "clocks disagree"} {
		if strings.Contains(le.Hint, mustNot) {
			t.Errorf("hint %q names %q", le.Hint, mustNot)
		}
	}
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Message != errExpired.Message {
		t.Errorf("error %v; want the server's refusal reachable", err)
	}
	t.Logf("error: %v", err)
	if strings.Contains(err.Error(), secretMarker) {
		t.Errorf("error leaks the token: %v", err)
	}
}
