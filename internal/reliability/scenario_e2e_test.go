package reliability_test

import (
	"context"
	"database/sql"
	"strings"
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
// a sleepClock). Afterwards 20 pgx connects (the README's BeforeConnect pattern: Token,
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

	// The README's pgx pattern (BeforeConnect: cache.Token as the password, no retry),
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
	c, err := driver.NewConnector(env.DSN(dp.Name), driver.WithCredential(dcred), driver.WithTokenOptions(token.WithClock(clock)))
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
// hangs for 10 s ignoring its context (a token file on a hung mount, a stuck
// ClientAssertionCredential callback). With 3 s tokens and a 500 ms fetch timeout, 4
// workers connecting with 2 s deadlines keep working: the hung refresh is abandoned
// after the fetch timeout and the next call succeeds, so at most the connects that
// meet the window between the token's guard and the abandonment fail, and none fails
// for want of a token in the last 3 s. Before the fix every connect failed from the guard until the hung call
// returned (here 10 s, on a real hung mount indefinitely).
func TestScenarioHungCredential(t *testing.T) {
	t.Parallel()
	const life = 3 * time.Second
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
			case <-time.After(10 * time.Second):
			}
		}
		tok, exp, err := env.Tenant.Mint(p, entra.DatabaseAudience, life)
		return azcore.AccessToken{Token: tok, ExpiresOn: exp}, err
	})}
	c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(cred),
		driver.WithTokenOptions(token.WithFetchTimeout(500*time.Millisecond), token.WithBackoff(100*time.Millisecond, 400*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(0)
	defer db.Close()
	if err := queryOnce(db, 10*time.Second)(context.Background()); err != nil {
		t.Fatal(err)
	}
	const run = 8 * time.Second
	start := time.Now()
	ctx, cancel := runFor(run)
	defer cancel()
	var l load
	var lateFails atomic.Int64 // token failures in the last 3 s
	l.runPaced(ctx, 4, 100*time.Millisecond, func(ctx context.Context) error {
		err := queryOnce(db, 2*time.Second)(ctx)
		if err != nil && time.Since(start) > run-3*time.Second && ctx.Err() == nil && strings.Contains(err.Error(), "token") {
			lateFails.Add(1)
		}
		return err
	})
	hung := active.Load()
	t.Logf("credential hung 10 s ignoring its context, 3 s tokens, fetch timeout 500 ms: operations=%d failures=%d (in the last 3 s: %d) GetToken calls=%d, hung call still running: %v",
		l.ops.Load(), l.fails.Load(), lateFails.Load(), cred.calls.Load(), hung == 1)
	if hung != 1 {
		t.Fatal("test premise: the hung call is not running")
	}
	if lateFails.Load() != 0 {
		t.Errorf("%d operations failed for want of a token in the last 3 s: fetching is still blocked:\n%s", lateFails.Load(), l.errors())
	}
	if l.fails.Load() > l.ops.Load()/4 {
		t.Errorf("%d of %d operations failed:\n%s", l.fails.Load(), l.ops.Load(), l.errors())
	}
	if calls := cred.calls.Load(); calls < 3 {
		t.Errorf("GetToken calls = %d: no call after the hung one", calls)
	}
}
