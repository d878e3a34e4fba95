package reliability_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
	"github.com/pgentra/pgentra/internal/pgtest"
	"github.com/pgentra/pgentra/token"
)

// faultRig is one identity, its counted credential and a pool without idle
// connections, so that every operation logs in with the current token.
type faultRig struct {
	env  *emulator.Env
	p    entra.Principal
	cred *countingCred
	c    *driver.Connector
	db   *sql.DB
}

// fastBackoff: compressed token lifetimes need a compressed back-off (the
// default pauses 1 s after a failure, a quarter of these tokens' lives).
var fastBackoff = token.WithBackoff(100*time.Millisecond, 400*time.Millisecond)

func newFaultRig(t *testing.T, lifetime time.Duration, extraDSN string, topts ...token.Option) *faultRig {
	t.Helper()
	env := startEnv(t, lifetime)
	return newFaultRigOn(t, env, extraDSN, topts...)
}

func newFaultRigOn(t *testing.T, env *emulator.Env, extraDSN string, topts ...token.Option) *faultRig {
	t.Helper()
	r := &faultRig{env: env, p: newIdentity(t, env, "id-fault")}
	r.cred = miCred(t, env, r.p)
	var err error
	r.c, err = driver.NewConnector(env.DSN(r.p.Name, extraDSN), driver.WithCredential(r.cred), driver.WithTokenCacheOptions(topts...))
	if err != nil {
		t.Fatal(err)
	}
	r.db = sql.OpenDB(r.c)
	r.db.SetMaxIdleConns(0)
	t.Cleanup(func() { _ = r.db.Close() })
	return r
}

// warm makes sure a token is cached.
func (r *faultRig) warm(t *testing.T) {
	t.Helper()
	if err := queryOnce(r.db, 10*time.Second)(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestFaultIdentityBursts: bursts of 429, 500 and 503 answers from IMDS while a
// token is cached and about to be refreshed are absorbed (azcore retries,
// then the cache's back-off, while the still-valid token is served): no
// operation fails, and every scripted fault was consumed.
func TestFaultIdentityBursts(t *testing.T) {
	t.Parallel()
	for _, status := range []int{429, 500, 503} {
		t.Run(strings.TrimSpace(http(status)), func(t *testing.T) {
			t.Parallel()
			// Long enough that a connect slowed by a busy machine cannot outlive a
			// served token (a quarter of the life is left at worst).
			const lifetime = 8 * time.Second
			r := newFaultRig(t, lifetime, "", fastBackoff)
			r.warm(t)
			burst := make([]entra.Fault, 6) // > 1+3 azcore tries: one GetToken fails outright
			for i := range burst {
				burst[i] = entra.Fault{Status: status, RetryAfter: 50 * time.Millisecond}
			}
			r.env.Identity.Script(burst...)
			ctx, cancel := runFor(lifetime)
			defer cancel()
			var l load
			l.runPaced(ctx, 8, 20*time.Millisecond, queryOnce(r.db, 10*time.Second))
			t.Logf("%d burst of %d: operations=%d failures=%d GetToken calls=%d (failed %d) IMDS requests=%d",
				status, len(burst), l.ops.Load(), l.fails.Load(), r.cred.calls.Load(), r.cred.fails.Load(), r.env.Identity.Requests())
			if n := l.fails.Load(); n != 0 {
				t.Errorf("%d operations failed:\n%s", n, l.errors())
			}
			if p := r.env.Identity.Pending(); p != 0 {
				t.Errorf("%d scripted faults never reached IMDS: the burst was not exercised", p)
			}
			if r.cred.fails.Load() == 0 {
				t.Errorf("no GetToken call failed: the burst was absorbed before the cache saw it")
			}
			if c := r.cred.calls.Load(); c > 8 {
				t.Errorf("GetToken called %d times for a burst of %d faults over a lifetime", c, len(burst))
			}
		})
	}
}

func http(status int) string {
	switch status {
	case 429:
		return "429_too_many_requests"
	case 500:
		return "500_internal_error"
	case 503:
		return "503_unavailable"
	}
	return "status"
}

// TestFaultIdentitySlow: an IMDS answer slower than the refresh margin
// (azure_refresh_margin=1s, answer after 3 s) makes callers wait for that one
// fetch once the token runs out (refresh at half-life, 4 s; guard at 6 s);
// nobody fails, nobody starts a second fetch.
func TestFaultIdentitySlow(t *testing.T) {
	t.Parallel()
	const lifetime = 8 * time.Second
	r := newFaultRig(t, lifetime, "azure_refresh_margin=1s")
	r.warm(t)
	r.env.Identity.Script(entra.Fault{Delay: 3 * time.Second})
	ctx, cancel := runFor(lifetime + time.Second)
	defer cancel()
	var l load
	l.runPaced(ctx, 8, 20*time.Millisecond, queryOnce(r.db, 10*time.Second))
	maxLat := time.Duration(l.maxLatency.Load())
	t.Logf("slow IMDS (3 s): operations=%d failures=%d max latency=%s GetToken calls=%d IMDS requests=%d",
		l.ops.Load(), l.fails.Load(), maxLat.Round(time.Millisecond), r.cred.calls.Load(), r.env.Identity.Requests())
	if n := l.fails.Load(); n != 0 {
		t.Errorf("%d operations failed:\n%s", n, l.errors())
	}
	if r.env.Identity.Pending() != 0 {
		t.Error("the slow answer was never requested")
	}
	// warm + the slow refresh + at most two more refreshes in 2 lifetimes.
	if c := r.cred.calls.Load(); c > 5 {
		t.Errorf("GetToken called %d times: callers did not share the slow fetch", c)
	}
}

// TestFaultIdentityHang: a refresh that never gets an answer is cut off by
// the fetch timeout (1 s here) and retried after the back-off, while the
// cached token is still served: no operation fails. Without a cached token,
// callers give up at their own deadline, not the fetch's.
func TestFaultIdentityHang(t *testing.T) {
	t.Parallel()
	t.Run("cached", func(t *testing.T) {
		const lifetime = 8 * time.Second // refresh at 4 s, abandoned at 4.5 s, guard at 6 s
		r := newFaultRig(t, lifetime, "", fastBackoff, token.WithFetchTimeout(500*time.Millisecond))
		r.warm(t)
		r.env.Identity.Script(entra.Fault{Hang: true})
		ctx, cancel := runFor(lifetime)
		defer cancel()
		var l load
		l.runPaced(ctx, 8, 20*time.Millisecond, queryOnce(r.db, 10*time.Second))
		t.Logf("hanging refresh: operations=%d failures=%d GetToken calls=%d (failed %d)",
			l.ops.Load(), l.fails.Load(), r.cred.calls.Load(), r.cred.fails.Load())
		if n := l.fails.Load(); n != 0 {
			t.Errorf("%d operations failed:\n%s", n, l.errors())
		}
		if r.cred.fails.Load() != 1 {
			t.Errorf("GetToken failed %d times; want exactly the hung one", r.cred.fails.Load())
		}
	})
	t.Run("cold", func(t *testing.T) {
		r := newFaultRig(t, 0, "", token.WithFetchTimeout(30*time.Second))
		r.env.Identity.SetDefault(entra.Fault{Hang: true})
		const deadline = 300 * time.Millisecond
		errs := make(chan error, 20)
		durs := make(chan time.Duration, 20)
		for range 20 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				start := time.Now()
				_, err := r.c.Connect(ctx)
				durs <- time.Since(start)
				errs <- err
			}()
		}
		for range 20 {
			err, d := <-errs, <-durs
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Connect = %v; want the caller's deadline", err)
			}
			// Its own deadline, not the 30 s fetch timeout; scheduling on a busy
			// machine may add seconds.
			if !within(d, deadline+5*time.Second) {
				t.Errorf("a caller waited %s with a %s deadline", d, deadline)
			}
		}
		if c := r.cred.calls.Load(); c != 1 {
			t.Errorf("GetToken called %d times; want one shared fetch", c)
		}
	})
}

// TestFaultEndpointDownAtStart: with IMDS unreachable (connections dropped)
// from the start, Connect fails with an error that names the credential and
// the scope, quickly and with few requests; once IMDS is back, the pool
// works after the back-off.
func TestFaultEndpointDownAtStart(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t, 0, "", fastBackoff)
	r.env.Identity.SetDefault(entra.Fault{Drop: true})
	var first error
	for i := range 50 {
		err := r.db.PingContext(context.Background())
		if err == nil {
			t.Fatal("Ping succeeded with IMDS down")
		}
		if i == 0 {
			first = err
		}
	}
	t.Logf("IMDS down: %v", first)
	// The message names the credential and the cause in brief; the token
	// cache's error it wraps says which scope the token was for.
	var te *driver.TokenError
	if !errors.As(first, &te) || !strings.Contains(first.Error(), "custom credential") {
		t.Errorf("error is no *driver.TokenError naming the custom credential: %v", first)
	} else {
		for _, want := range []string{"acquiring token", token.ScopePublic} {
			if !strings.Contains(te.Err.Error(), want) {
				t.Errorf("the wrapped error does not say %q: %v", want, te.Err)
			}
		}
	}
	if c := r.cred.calls.Load(); c > 3 {
		t.Errorf("50 pings made %d GetToken calls; the back-off should hold them", c)
	}
	r.env.Identity.SetDefault(entra.Fault{})
	deadline := time.Now().Add(20 * time.Second) // back-off at most 400 ms: generous for a busy machine
	for {
		err := r.db.PingContext(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("IMDS is back but Ping still fails: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFaultEndpointDownAfterCache: once a token is cached, IMDS going down
// changes nothing until that token runs out (it is served to the end of its
// validity, minus the cache's guard), then operations fail with a clear
// error — and no expired token is ever sent to the server.
func TestFaultEndpointDownAfterCache(t *testing.T) {
	t.Parallel()
	// The last token served has a quarter of its life (3 s) left: a connect
	// slowed by a busy machine cannot outlive it, so the server never sees it
	// expired.
	const lifetime = 12 * time.Second
	r := newFaultRig(t, lifetime, "", fastBackoff)
	r.warm(t)
	fetched := time.Now()
	r.env.Identity.SetDefault(entra.Fault{Drop: true})
	r.env.Front.Reset()
	ctx, cancel := runFor(lifetime + time.Second)
	defer cancel()
	var l load
	l.runPaced(ctx, 4, 20*time.Millisecond, queryOnce(r.db, 5*time.Second))
	lastOK := time.Unix(0, l.lastOK.Load()).Sub(fetched)
	firstFail := time.Unix(0, l.firstFail.Load()).Sub(fetched)
	t.Logf("IMDS down after caching: operations=%d (last success %s after the fetch) failures=%d (first %s after) GetToken calls=%d",
		l.ops.Load(), lastOK.Round(time.Millisecond), l.fails.Load(), firstFail.Round(time.Millisecond), r.cred.calls.Load())
	// The cache serves a token until 3/4 of its life for tokens this short.
	if lastOK < lifetime/2 {
		t.Errorf("the cached token stopped being served %s after the fetch, lifetime %s", lastOK, lifetime)
	}
	if l.fails.Load() == 0 {
		t.Fatal("no failure after the token ran out")
	}
	// A *driver.TokenError: it names the credential that gave no token.
	if !strings.Contains(l.errors(), "custom credential (given with WithCredential): ") {
		t.Errorf("failures don't say the token could not be acquired:\n%s", l.errors())
	}
	for _, lg := range r.env.Front.Logins() {
		if !lg.OK {
			t.Errorf("the server refused a login (%s %s): an unusable token was sent", lg.Code, lg.Message)
		}
	}
}

// TestBackendRestart: PostgreSQL (behind the front) stops mid-run and starts
// again. Operations fail while it is down (the front answers with an
// internal error, not a token refusal, so no token is thrown away), and the
// pool recovers by itself once it is back (within 5 s; 1.5 s after that
// must be free of failures). It uses a cluster of its own.
func TestBackendRestart(t *testing.T) {
	t.Parallel()
	c, err := pgtest.Start(context.Background(), pgtest.Options{Logf: t.Logf})
	if err != nil {
		pgtest.SkipOrFail(t, err) // a failure in CI, never a skip
	}
	t.Cleanup(func() { _ = c.Close() })
	env := startEnvOn(t, c, 0)
	r := newFaultRigOn(t, env, "")
	r.db.SetMaxIdleConns(8) // a pooled application this time
	r.warm(t)
	ctx, cancel := runFor(time.Minute) // ended below, once the phases are done
	defer cancel()
	var l load
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.runPaced(ctx, 8, 20*time.Millisecond, queryOnce(r.db, 3*time.Second))
	}()
	time.Sleep(500 * time.Millisecond)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := c.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	time.Sleep(5 * time.Second) // recovery: generous, a busy machine is slow to fork and log in
	before := l.fails.Load()
	time.Sleep(1500 * time.Millisecond) // must be clean
	after := l.fails.Load()
	cancel()
	<-done
	t.Logf("backend restart: operations=%d failures=%d (all while down or recovering) GetToken calls=%d",
		l.ops.Load(), l.fails.Load(), r.cred.calls.Load())
	if before == 0 {
		t.Error("no operation failed while PostgreSQL was down: the fault was not exercised")
	}
	if after != before {
		t.Errorf("%d operations failed more than 5 s after the restart:\n%s", after-before, l.errors())
	}
	if time.Unix(0, l.lastOK.Load()).Before(restarted) {
		t.Error("no operation succeeded after the restart")
	}
	if c := r.cred.calls.Load(); c > 3 {
		t.Errorf("GetToken called %d times: backend failures threw tokens away", c)
	}
}

// TestCachedTokenRefused: a server that refuses a cached token (here: the
// server's clock jumped past the token's expiry) gets exactly one retry with
// a new token, and the connect succeeds. A refusal that a new token cannot
// cure costs one retry, not a loop; a refused fresh token is not retried.
func TestCachedTokenRefused(t *testing.T) {
	t.Parallel()
	t.Run("cured", func(t *testing.T) {
		r := newFaultRig(t, 30*time.Second, "")
		r.warm(t)
		r.env.Front.Reset()
		r.env.Tenant.SetSkew(time.Minute) // the server now sees the cached token as expired
		if err := queryOnce(r.db, 10*time.Second)(context.Background()); err != nil {
			t.Fatal(err)
		}
		logins := r.env.Front.Logins()
		if len(logins) != 2 || logins[0].OK || logins[0].Message != pgfront.MsgTokenExpired || !logins[1].OK {
			t.Errorf("logins = %+v; want one refused as expired, then one OK", logins)
		}
		if pw := r.env.Front.Passwords(); len(pw) != 2 || pw[0] == pw[1] {
			t.Error("the retry did not use a new token")
		}
		if c := r.cred.calls.Load(); c != 2 {
			t.Errorf("GetToken called %d times; want 2", c)
		}
	})
	t.Run("not_cured", func(t *testing.T) {
		env := startEnv(t, 30*time.Second)
		good := newFaultRigOn(t, env, "")
		good.warm(t)
		// A pool for another role with the same token cache: its cached token is
		// valid, but maps to a different role, so every login is refused.
		cache := token.NewCache(good.cred, token.ScopePublic)
		defer cache.Close()
		other := newIdentity(t, env, "id-other")
		c, err := driver.NewConnector(env.DSN(other.Name), driver.WithTokenCache(cache))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Connect(context.Background()); err == nil {
			t.Fatal("login with another principal's token succeeded")
		} // fresh token: no retry
		env.Front.Reset()
		calls := good.cred.calls.Load()
		// The cached token was refused when it was fresh: a new one would
		// fare no better, so no retry and no token request.
		_, err = c.Connect(context.Background())
		var le *driver.LoginError
		if !errors.As(err, &le) || !strings.Contains(le.Hint, "pgaadauth_create_principal") {
			t.Errorf("Connect = %v; want a LoginError with a hint", err)
		}
		if n := len(env.Front.Logins()); n != 1 {
			t.Errorf("%d login attempts with a cached token refused when fresh; want 1", n)
		}
		if n := good.cred.calls.Load(); n != calls {
			t.Errorf("GetToken called %d more times; want 0", n-calls)
		}
	})
}

// TestClockSkew: the client's clock disagrees with Entra's and the server's.
//   - Entra ahead by 90 s (tokens' iat/nbf in the client's future, and tokens
//     that look 90 s longer-lived than they are): every operation succeeds; the
//     server's "expired" refusals are cured by the one retry.
//   - Entra behind by more than a token's life (exp already in the client's
//     past): Connect fails with an error that says the credential returned an
//     expired token, and nothing is sent to the server.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	t.Run("entra_ahead", func(t *testing.T) {
		// The retry's fresh token is good for 4 s at the server: room for a
		// connect slowed by a busy machine. The run outlasts two lifetimes, so
		// cached tokens do expire at the server.
		const lifetime = 4 * time.Second
		r := newFaultRig(t, lifetime, "")
		r.env.Tenant.SetSkew(90 * time.Second)
		ctx, cancel := runFor(9 * time.Second)
		defer cancel()
		var l load
		l.runPaced(ctx, 4, 50*time.Millisecond, queryOnce(r.db, 10*time.Second))
		refused := 0
		for _, lg := range r.env.Front.Logins() {
			if !lg.OK {
				refused++
			}
		}
		t.Logf("Entra 90 s ahead: operations=%d failures=%d logins refused and retried=%d GetToken calls=%d",
			l.ops.Load(), l.fails.Load(), refused, r.cred.calls.Load())
		if n := l.fails.Load(); n != 0 {
			t.Errorf("%d operations failed:\n%s", n, l.errors())
		}
		if refused == 0 {
			t.Error("no token was refused as expired: the skew was not exercised")
		}
	})
	t.Run("entra_behind", func(t *testing.T) {
		r := newFaultRig(t, 3*time.Second, "", fastBackoff)
		r.env.Tenant.SetSkew(-time.Minute)
		_, err := r.c.Connect(context.Background())
		t.Logf("Entra 1 min behind: %v", err)
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("Connect = %v; want an error about an expired token", err)
		}
		if n := len(r.env.Front.Passwords()); n != 0 {
			t.Errorf("%d tokens were sent to the server", n)
		}
	})
}
