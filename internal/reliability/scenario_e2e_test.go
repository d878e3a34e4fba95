package reliability_test

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/dsn"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

// afterSleep returns t as time.Now would report it after the machine slept for d: the
// wall clock moved on by d, the monotonic reading did not (Go's monotonic clock stops
// during suspend and hibernation). It edits time.Time's representation (wall: bit 63
// hasMonotonic, whole seconds since 1885 from bit 30); checkAfterSleep verifies it.
func afterSleep(t time.Time, d time.Duration) time.Time {
	type rep struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	(*rep)(unsafe.Pointer(&t)).wall += uint64(d/time.Second) << 30
	return t
}

func checkAfterSleep(t *testing.T) {
	t.Helper()
	now := time.Now()
	slept := afterSleep(now, time.Hour)
	if slept.Sub(now) != 0 || slept.Round(0).Sub(now.Round(0)) != time.Hour {
		t.Fatalf("afterSleep does not model a sleep on this Go version")
	}
}

// sleepClock is the system clock of a machine that has slept for slept in total.
type sleepClock struct{ slept atomic.Int64 }

func (c *sleepClock) Now() time.Time { return afterSleep(time.Now(), time.Duration(c.slept.Load())) }

// mintingCred issues the tenant's tokens for p with ExpiresOn = clock.Now()+life, a
// time with a monotonic reading, as MSAL computes it from expires_in.
func mintingCred(env *emulator.Env, p entra.Principal, clock token.Clock, life time.Duration) *countingCred {
	return &countingCred{inner: credFunc(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		tok, _, err := env.Tenant.Mint(p, entra.DatabaseAudience, life)
		if err != nil {
			return azcore.AccessToken{}, err
		}
		return azcore.AccessToken{Token: tok, ExpiresOn: clock.Now().Add(life)}, nil
	})}
}

func refusedLogins(env *emulator.Env, user string) (n int, last string) {
	for _, lg := range env.Front.Logins() {
		if lg.User == user && !lg.OK {
			n++
			last = lg.Message
		}
	}
	return n, last
}

// TestScenarioSleepResume (issue 14, scenario 1): a laptop or VM sleeps for an hour
// with 20 s tokens. The whole world's wall clock moves on by an hour (the tenant and
// the server: Tenant.SetSkew), the client's monotonic clock does not (its cache runs on
// a sleepClock). Afterwards 20 pgx connects (the documented BeforeConnect pattern: Token,
// no retry) and 20 database/sql connects through pgentra all log in, and the server
// refuses no login: the first caller after the wake fetches. Before the fix, the cache
// kept serving the token that had expired 59 min earlier.
func TestScenarioSleepResume(t *testing.T) {
	t.Parallel()
	checkAfterSleep(t)
	const life = 20 * time.Second
	env := startEnv(t, life)
	clock := &sleepClock{}
	ctx := context.Background()

	// The documented pgx pattern (BeforeConnect: cache.Token as the password, no retry),
	// with lib/pq as the client to keep pgx out of the library's go.mod.
	pp := newIdentity(t, env, "id-sleep-pgx")
	pcred := mintingCred(env, pp, clock, life)
	cache := token.NewCache(pcred, token.ScopePublic, token.WithClock(clock))
	defer cache.Close()
	pgxConnect := func() error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		tok, err := cache.Token(cctx)
		if err != nil {
			return err
		}
		pc, err := pq.NewConnector(env.DSN(pp.Name) + " password=" + dsn.QuoteValue(tok.Token))
		if err != nil {
			return err
		}
		conn, err := pc.Connect(cctx)
		if err != nil {
			return err
		}
		return conn.Close()
	}

	// database/sql through pgentra.
	dp := newIdentity(t, env, "id-sleep-sql")
	dcred := mintingCred(env, dp, clock, life)
	c, err := driver.NewConnector(env.DSN(dp.Name), driver.WithCredential(dcred), driver.WithTokenCacheOptions(token.WithClock(clock)))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(0)
	defer db.Close()

	if err := pgxConnect(); err != nil {
		t.Fatal(err)
	}
	if err := queryOnce(db, 10*time.Second)(ctx); err != nil {
		t.Fatal(err)
	}

	clock.slept.Add(int64(time.Hour))
	env.Tenant.SetSkew(time.Hour)

	var pgxFails, sqlFails int
	var lastErr error
	for range 20 {
		if err := pgxConnect(); err != nil {
			pgxFails++
			lastErr = err
		}
		if err := queryOnce(db, 10*time.Second)(ctx); err != nil {
			sqlFails++
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	pRefused, pMsg := refusedLogins(env, pp.Name)
	dRefused, dMsg := refusedLogins(env, dp.Name)
	t.Logf("1 h asleep, 20 s tokens: pgx 20 connects, %d failed, %d refused by the server; database/sql 20 connects, %d failed, %d refused; GetToken calls %d (pgx), %d (sql)",
		pgxFails, pRefused, sqlFails, dRefused, pcred.calls.Load(), dcred.calls.Load())
	if pgxFails+sqlFails != 0 || pRefused+dRefused != 0 {
		t.Errorf("after the sleep: %d pgx and %d database/sql connects failed (last: %v); refused logins %d (%s) and %d (%s), want none",
			pgxFails, sqlFails, lastErr, pRefused, pMsg, dRefused, dMsg)
	}
	if pcred.calls.Load() < 2 || dcred.calls.Load() < 2 {
		t.Error("no token was fetched after the sleep")
	}
}

// TestScenarioHungCredential (issue 14, scenario 2): the credential's second call
// hangs for 20 s ignoring its context (a token file on a hung mount, a stuck
// ClientAssertionCredential callback). With 12 s tokens and a 500 ms fetch timeout, 4
// workers connecting with 2 s deadlines keep working: the refresh at half-life (6 s)
// hangs, is abandoned after the fetch timeout, and the next call succeeds long before
// the token's guard (9 s), so no operation fails, and operations keep succeeding
// past the guard while the hung call still runs. Before the fix every connect failed
// from the guard until the hung call returned (on a real hung mount, indefinitely).
//
// The token is long enough that a connect slowed by a busy machine cannot outlive
// it, and the 3 s between abandonment and guard leave room for a slow fetch.
func TestScenarioHungCredential(t *testing.T) {
	t.Parallel()
	const life = 12 * time.Second
	env := startEnv(t, life)
	p := newIdentity(t, env, "id-hung")
	release := make(chan struct{})
	defer close(release)
	var n, active atomic.Int32
	cred := &countingCred{inner: credFunc(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		if n.Add(1) == 2 {
			active.Add(1)
			defer active.Add(-1)
			select { // ignores its context
			case <-release:
			case <-time.After(20 * time.Second):
			}
		}
		tok, exp, err := env.Tenant.Mint(p, entra.DatabaseAudience, life)
		return azcore.AccessToken{Token: tok, ExpiresOn: exp}, err
	})}
	c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(cred),
		driver.WithTokenCacheOptions(token.WithFetchTimeout(500*time.Millisecond), token.WithBackoff(100*time.Millisecond, 400*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(0)
	defer db.Close()
	if err := queryOnce(db, 10*time.Second)(context.Background()); err != nil {
		t.Fatal(err)
	}
	fetched := time.Now() // at most this; the guard is 3/4 of the life later
	// Past the guard by 3 s; the hung call (from half-life, 20 s) still runs.
	const run = 12 * time.Second
	ctx, cancel := runFor(run)
	defer cancel()
	var l load
	l.runPaced(ctx, 4, 100*time.Millisecond, queryOnce(db, 2*time.Second))
	hung := active.Load()
	lastOK := time.Unix(0, l.lastOK.Load()).Sub(fetched)
	t.Logf("credential hung 20 s ignoring its context, 12 s tokens, fetch timeout 500 ms: operations=%d failures=%d (last success %s after the first fetch) GetToken calls=%d, hung call still running: %v",
		l.ops.Load(), l.fails.Load(), lastOK.Round(time.Millisecond), cred.calls.Load(), hung == 1)
	if hung != 1 {
		t.Fatal("test premise: the hung call is not running")
	}
	if n := l.fails.Load(); n != 0 {
		t.Errorf("%d of %d operations failed:\n%s", n, l.ops.Load()+n, l.errors())
	}
	if guard := life * 3 / 4; lastOK < guard+time.Second {
		t.Errorf("last success %s after the first fetch: fetching stayed blocked past the guard (%s)", lastOK, guard)
	}
	if calls := cred.calls.Load(); calls < 3 {
		t.Errorf("GetToken calls = %d: no call after the hung one", calls)
	}
}
