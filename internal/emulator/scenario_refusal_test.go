package emulator_test

// Issue 21 items 1 and 2 against the emulator with the real managed
// identity credential (MSAL's cache included: tokens live an hour): a
// refused login during an identity outage must not empty the token cache,
// and a node that refuses at random must not cost an identity request per
// login.

import (
	"context"
	"crypto/rsa"
	"database/sql"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
	"github.com/pgentra/pgentra/token"
)

// badNode starts a second front for env's server whose signing keys are
// missing, so it refuses every token with Azure's generic "An error
// occurred while validating the access token": a node of the service that
// has not caught up, which the next login may not meet.
func badNode(t *testing.T, env *emulator.Env) *pgfront.Front {
	t.Helper()
	tlsConf, err := env.CA.ServerTLS(emulator.Host, "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	f, err := pgfront.Listen("127.0.0.1:0", pgfront.Config{
		BackendNetwork: "unix",
		BackendAddr:    filepath.Join(env.PG.SocketDir, ".s.PGSQL."+strconv.Itoa(env.PG.Port)),
		AdminDB:        env.AdminDB,
		TLS:            tlsConf,
		TenantID:       env.Tenant.ID(),
		Issuer:         env.Tenant.Issuer(),
		Audiences:      []string{entra.DatabaseAudience},
		Keys:           func(string) (*rsa.PublicKey, error) { return nil, errors.New("signing keys not loaded yet") },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// balancer relays each new TCP connection to the address route picks for
// it (n counts connections from 0): a load balancer in front of nodes.
type balancer struct {
	ln    net.Listener
	route func(n int) string
	delay func(n int) time.Duration // nil: none; else how long connection n waits before it is relayed
	n     atomic.Int32
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newBalancer(t *testing.T, route func(n int) string, delay func(n int) time.Duration) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, route: route, delay: delay}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *balancer) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *balancer) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		n := int(b.n.Add(1) - 1)
		if b.delay != nil {
			time.Sleep(b.delay(n))
		}
		up, err := net.DialTimeout("tcp", b.route(n), 10*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, c, up)
		b.mu.Unlock()
		b.wg.Add(2)
		go func() { defer b.wg.Done(); io.Copy(up, c); up.Close() }()
		go func() { defer b.wg.Done(); io.Copy(c, up); c.Close() }()
	}
}

func (b *balancer) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// viaBalancer is env's DSN for user with the balancer's port.
func viaBalancer(env *emulator.Env, b *balancer, user string, extra ...string) string {
	dsn := env.DSN(user, extra...)
	return strings.Replace(dsn, "port="+strconv.Itoa(env.Front.Port()), "port="+strconv.Itoa(b.port()), 1)
}

// miCache is a token cache for p's managed identity through IMDS, as
// WithTokenCache takes it.
func miCache(t *testing.T, env *emulator.Env, p entra.Principal, opts ...token.Option) *token.Cache {
	t.Helper()
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: env.ClientOptions(), ID: azidentity.ClientID(p.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	c := token.NewCache(mi, token.ScopePublic, opts...)
	t.Cleanup(func() { c.Close() })
	return c
}

func ping(t *testing.T, db *sql.DB) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// Issue 21 item 1, shared cache: two pools share one token cache
// (WithTokenCache). The identity endpoint goes down (503); then one pool's
// login is refused (its role is missing). The healthy pool still connects
// with the cached token, which has about an hour left, and cache.Token
// still returns it.
func TestScenarioSharedCacheOutagePlusRefusal(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	env.Tenant.SetTokenLifetime(time.Hour)
	p := e67Principal(t, env, "id-shared", true)
	cache := miCache(t, env, p)
	healthy := e67Open(t, env.DSN(p.Name), driver.WithTokenCache(cache))
	broken := e67Open(t, env.DSN(e67Name("no-such-role")), driver.WithTokenCache(cache))
	healthy.SetMaxIdleConns(0) // every ping logs in
	broken.SetMaxIdleConns(0)
	if err := ping(t, healthy); err != nil {
		t.Fatalf("first login: %v", err)
	}
	cached, err := cache.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	env.Identity.SetDefault(entra.Fault{Status: 503})
	err = ping(t, broken)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("broken pool: %v; want the server's 28P01", err)
	}
	for i := range 3 {
		if err := ping(t, healthy); err != nil {
			t.Fatalf("healthy pool, ping %d after the other pool's refusal during the outage: %v", i, err)
		}
	}
	tok, err := cache.Token(context.Background())
	if err != nil || tok.Token != cached.Token {
		t.Fatalf("cache.Token during the outage: err %v (same token: %v); want the cached token, valid for an hour", err, tok.Token == cached.Token)
	}
	if left := time.Until(tok.ExpiresOn); left < 50*time.Minute {
		t.Errorf("cached token has %s left; want about an hour (test set-up)", left)
	}
}

// Issue 21 item 1, one pool: Azure refuses one login with its transient
// "An error occurred while validating the access token" while the identity
// endpoint is down. The retry cannot get a new token, so that connect
// fails; later connects log in with the cached token.
func TestScenarioTransientRefusalDuringOutage(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	env.Tenant.SetTokenLifetime(time.Hour)
	p := e67Principal(t, env, "id-transient", true)
	bad := badNode(t, env)
	var toBad atomic.Bool
	lb := newBalancer(t, func(int) string {
		if toBad.Swap(false) {
			return bad.Addr()
		}
		return env.Front.Addr()
	}, nil)
	db := e67Open(t, viaBalancer(env, lb, p.Name, "azure_credential=managed_identity", "azure_client_id="+p.AppID), driver.WithClientOptions(env.ClientOptions()))
	db.SetMaxIdleConns(0)
	if err := ping(t, db); err != nil {
		t.Fatalf("first login: %v", err)
	}
	env.Identity.SetDefault(entra.Fault{Status: 503})
	toBad.Store(true)
	err := ping(t, db)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Message != pgfront.MsgValidationFailed {
		t.Fatalf("connect that met the bad node: %v; want Azure's validation failure", err)
	}
	if logins := bad.Logins(); len(logins) != 1 {
		t.Fatalf("bad node saw %d logins, want 1 (test set-up)", len(logins))
	}
	for i := range 3 {
		if err := ping(t, db); err != nil {
			t.Fatalf("ping %d after one transient refusal during the outage: %v", i, err)
		}
	}
}

// Issue 21 item 2: one node of two behind a balancer refuses every token.
// 40 connects, one every 250 ms by the token cache's clock, make at most 5
// identity requests (one per refusal before: 20); the refusal-driven
// refreshes are rate-limited rather than one per refused login.
func TestScenarioBadNodeBehindBalancer(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	env.Tenant.SetTokenLifetime(time.Hour)
	p := e67Principal(t, env, "id-balanced", true)
	bad := badNode(t, env)
	lb := newBalancer(t, func(n int) string {
		if n%2 == 1 {
			return bad.Addr()
		}
		return env.Front.Addr()
	}, nil)
	clock := &steppedClock{t: time.Now()}
	db := e67Open(t, viaBalancer(env, lb, p.Name, "azure_credential=managed_identity", "azure_client_id="+p.AppID), driver.WithClientOptions(env.ClientOptions()),
		driver.WithTokenCacheOptions(token.WithClock(clock)))
	db.SetMaxIdleConns(0)
	failed := 0
	for range 40 {
		if err := ping(t, db); err != nil {
			var pe *pq.Error
			if !errors.As(err, &pe) || pe.Message != pgfront.MsgValidationFailed {
				t.Fatalf("ping: %v; want only the bad node's refusals", err)
			}
			failed++
		}
		clock.step(250 * time.Millisecond)
	}
	n := env.Identity.RequestsFor(p)
	t.Logf("40 connects, one node of two refusing: %d identity requests, %d connects failed, %d logins at the bad node, %d at the good one",
		n, failed, len(bad.Logins()), len(env.Front.Logins()))
	if n > 5 {
		t.Errorf("identity requests = %d; want at most 5", n)
	}
	if len(bad.Logins()) == 0 {
		t.Fatal("the bad node saw no login (test set-up)")
	}
}

// steppedClock is a token.Clock the test moves forward.
type steppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *steppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *steppedClock) step(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Issue 21 item 5 against the emulator: tokens live 2 s and the first
// connect is slowed (a congested network) until its token has expired when
// the server checks it. The server refuses it as expired; pgentra sees that
// the token expired in flight (not clock skew) and retries once with a new
// token — although the first token was fetched for that very connect.
func TestScenarioTokenExpiresInFlight(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	const lifetime = 2 * time.Second
	env.Tenant.SetTokenLifetime(lifetime)
	p := e67Principal(t, env, "id-inflight", true)
	lb := newBalancer(t, func(int) string { return env.Front.Addr() }, func(n int) time.Duration {
		if n == 0 {
			return lifetime + time.Second
		}
		return 0
	})
	db := e67Open(t, viaBalancer(env, lb, p.Name, "azure_credential=managed_identity", "azure_client_id="+p.AppID),
		driver.WithClientOptions(env.ClientOptions()))
	db.SetMaxIdleConns(0)
	if err := ping(t, db); err != nil {
		t.Fatalf("connect whose token expired in flight: %v; want the retry with a new token to succeed", err)
	}
	logins, pws := env.Front.Logins(), env.Front.Passwords()
	if len(logins) != 2 || logins[0].OK || logins[0].Message != pgfront.MsgTokenExpired || !logins[1].OK {
		t.Fatalf("front saw %+v; want the expired token refused, then the retry accepted", logins)
	}
	if pws[0] == pws[1] {
		t.Error("the retry sent the expired token again")
	}
	if n := env.Identity.RequestsFor(p); n != 2 {
		t.Errorf("identity requests = %d, want 2 (the first token, the retry's)", n)
	}
}
