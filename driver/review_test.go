package driver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/token"
)

// refusingServer answers every startup message with an ErrorResponse made
// of the given fields (type byte → value) and hangs up. It returns the
// server's port.
func refusingServer(t *testing.T, fields [][2]string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			var n uint32
			if binary.Read(r, binary.BigEndian, &n) == nil && n >= 4 {
				_, _ = io.CopyN(io.Discard, r, int64(n-4)) // the startup message
			}
			var body []byte
			for _, f := range fields {
				body = append(body, f[0][0])
				body = append(body, f[1]...)
				body = append(body, 0)
			}
			body = append(body, 0)
			msg := []byte{'E', 0, 0, 0, 0}
			binary.BigEndian.PutUint32(msg[1:], uint32(4+len(body)))
			_, _ = c.Write(append(msg, body...))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

// A server (or a pooler in front of it) whose refusal carries no SQLSTATE
// — a protocol violation, but one pq itself survives — must give an error,
// not a panic in pgentra's hint and retry logic (pq's Code.Class slices
// the code's first two bytes).
func TestLoginErrorWithoutSQLState(t *testing.T) {
	for _, code := range []string{"", "2"} {
		t.Run("code="+strconv.Quote(code), func(t *testing.T) {
			fields := [][2]string{{"S", "FATAL"}, {"M", "refused by a pooler that sends no code"}}
			if code != "" {
				fields = append(fields, [2]string{"C", code})
			}
			port := refusingServer(t, fields)
			c, err := NewConnector("host=127.0.0.1 port="+strconv.Itoa(port)+" user=app dbname=d sslmode=disable", WithCredential(&fakeCredential{claims: spClaims()}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var connErr error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Connect panicked on a refusal without SQLSTATE: %v", p)
					}
				}()
				_, connErr = c.Connect(context.Background())
			}()
			var pe *pq.Error
			if !errors.As(connErr, &pe) || pe.Message != "refused by a pooler that sends no code" {
				t.Fatalf("Connect: %v; want the server's error reachable as *pq.Error", connErr)
			}
		})
	}
}

// hungMgmtCredential issues database-scope tokens at once and blocks every
// management-scope request until release is closed, ignoring its context:
// a token file on a hung mount, a client-assertion callback, a custom
// credential (issue 14's hung credential, here in the user-name lookup).
type hungMgmtCredential struct {
	fakeCredential
	release chan struct{}
	started chan struct{}
}

func (h *hungMgmtCredential) GetToken(ctx context.Context, o policyOpts) (azcore.AccessToken, error) {
	if len(o.Scopes) == 1 && o.Scopes[0] == token.ScopeManagement {
		h.mgmtCalls.Add(1)
		select {
		case h.started <- struct{}{}:
		default:
		}
		<-h.release
		return azcore.AccessToken{}, errors.New("released")
	}
	return h.fakeCredential.GetToken(ctx, o)
}

// A management-scope lookup stuck in a credential that ignores its context
// must neither hang Connector.Close (sql.DB.Close, Listener.Close) nor hold
// callers without a deadline (a Listener's reconnect, db.Ping) past the
// lookup's timeout: they get an error, as the token cache's callers do.
func TestUserLookupHungCredential(t *testing.T) {
	cred := &hungMgmtCredential{fakeCredential: fakeCredential{claims: miDBClaims()}, release: make(chan struct{}), started: make(chan struct{}, 1)}
	defer close(cred.release)
	t.Setenv("PGUSER", "")
	c, err := NewConnector("host=127.0.0.1 port="+strconv.Itoa(closedPort(t))+" dbname=d sslmode=disable", WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	c.lookup.opts = []token.Option{token.WithFetchTimeout(100 * time.Millisecond)}
	errA := connectAsync(c, context.Background())
	<-cred.started
	err = waitErr(t, errA, "a Connect without deadline whose lookup hangs")
	if err == nil || !errors.Is(err, ErrNoUser) || !strings.Contains(err.Error(), "management-scope") {
		t.Errorf("Connect: %v; want ErrNoUser naming the management-scope lookup that did not return", err)
	}
	closeWithin(t, c, "after the lookup was abandoned")

	// Close while the hung call is still the lookup in flight (a caller
	// with a deadline gave up on it; the lookup's timeout is far off).
	c2, err := NewConnector("host=127.0.0.1 port="+strconv.Itoa(closedPort(t))+" dbname=d sslmode=disable", WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errB := connectAsync(c2, ctx)
	<-cred.started
	cancel()
	if err := waitErr(t, errB, "a Connect cancelled during the lookup"); !errors.Is(err, context.Canceled) {
		t.Errorf("Connect: %v; want context.Canceled", err)
	}
	closeWithin(t, c2, "with the hung lookup in flight")
}

// closeWithin fails the test if c.Close does not return within 10 s (a
// safety bound: it returns at once or after the token cache's close grace).
func closeWithin(t *testing.T, c *Connector, what string) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("Connector.Close hangs %s while the credential's management-scope call hangs", what)
	}
}

// Pools (and Listeners) sharing one token cache through WithTokenCache, each
// refused by the server whatever the token (no role for the identity): the
// refused-when-newest marker must keep them from refreshing, bypassing the
// credential's cache, the token the other one has just fetched — which
// would be one identity-endpoint request per connect. A healthy pool on the
// same cache changes nothing for the refused one.
func TestSharedCacheRefusedPoolsDoNotSpinCredential(t *testing.T) {
	for _, tc := range []struct {
		name      string
		bRefused  bool
		wantMaxRq int
	}{
		// The first token, then at most one refresh per connector.
		{"two refused pools", true, 3},
		{"a refused pool and a healthy one", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred := &msalLike{honoursClaims: true, lifetime: time.Hour}
			cache := token.NewCache(cred, token.ScopePublic)
			defer cache.Close()
			a := cacheConnector(t, cache)
			b := cacheConnector(t, cache)
			ctx := context.Background()
			for i := range 10 {
				la := &scriptedLogins{script: []error{errNoRole, errNoRole}}
				if err := a.withLogin(ctx, la.attempt); !errors.As(err, new(*pq.Error)) {
					t.Fatalf("round %d: pool a: %v, want the server's refusal", i, err)
				}
				lb := &scriptedLogins{}
				if tc.bRefused {
					lb.script = []error{errNoRole, errNoRole}
				}
				_ = b.withLogin(ctx, lb.attempt)
			}
			if n := len(cred.requests()); n > tc.wantMaxRq {
				t.Errorf("%d credential requests for 20 connects of pools on one cache, want at most %d", n, tc.wantMaxRq)
			}
		})
	}
}
