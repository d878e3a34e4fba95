package reliability_test

import (
	"database/sql"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
	"github.com/pgentra/pgentra/token"
)

// TestLoadAcrossRotations: 64 workers open, query and close physical
// connections (no idle pool) for 45 s while the token rotates (40 s tokens,
// refreshed at half-life: 3 tokens in the run). No operation may fail, the
// front refuses no token except as expired in flight (see below), and GetToken
// is called about once per refresh interval, not once per connection.
//
// The lifetime is chosen so that a connect slowed by a busy machine (CI beside
// a CPU hog slows connects down to seconds; 10 s were seen with a load average
// of 25 on 2 cores) cannot fail for want of a valid token. The cache serves a
// token with at least 10 s left (its guard); a connect slower than that meets
// a refusal as expired, and the driver retries once with a new token, which
// has the full 40 s — more than any operation is given (30 s). With 2 s tokens
// the new token itself could expire in flight, which tested the machine, not
// pgentra. Such refusals are counted; no operation may fail.
//
// PGENTRA_SOAK=10m (or 1) runs it for that long instead of 45 s.
func TestLoadAcrossRotations(t *testing.T) {
	const (
		lifetime = 40 * time.Second
		workers  = 64
		// opTimeout is below the lifetime, less a margin: a token fetched for
		// an operation's retry outlives the operation.
		opTimeout = lifetime - 10*time.Second
	)
	duration := 45 * time.Second
	if d := soakDuration(t); d > 0 {
		duration = d
	}
	env := startEnv(t, lifetime)
	p := newIdentity(t, env, "id-load")
	cred := miCred(t, env, p)
	var waited, refreshes atomic.Int64
	// The default refresh margin (5m) is longer than half of a 40 s lifetime, so
	// the cache refreshes at half-life and serves the current token meanwhile.
	c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(cred),
		driver.WithTokenCacheOptions(token.WithEventHandler(func(ev token.Event) {
			switch ev.Kind {
			case token.CacheMiss:
				waited.Add(1)
			case token.RefreshStart:
				refreshes.Add(1)
			}
		})))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxIdleConns(0) // every operation opens and closes a physical connection
	db.SetMaxOpenConns(workers)

	stats := newFrontStats()
	ctx, cancel := runFor(duration)
	defer cancel()
	stopPoll := stats.pollEvery(ctx, env, time.Second)
	// Each worker pauses a random 0–2×think between operations, so that 64
	// connects at once (TLS, RS256 check, a PostgreSQL fork each) do not turn
	// the test into a measure of how far the machine can be overloaded.
	think := 800 * time.Millisecond
	if raceEnabled {
		think = 1500 * time.Millisecond
	}
	var l load
	start := time.Now()
	l.runPaced(ctx, workers, think, queryOnce(db, opTimeout))
	elapsed := time.Since(start)
	stopPoll()

	lifetimes := float64(elapsed) / float64(lifetime)
	calls, fails := cred.calls.Load(), cred.fails.Load()
	t.Logf("load: %d workers (pause 0–%s between operations) for %s (%.1f token lifetimes of %s): operations=%d failures=%d (%.0f ops/s, max latency %s)",
		workers, 2*think, elapsed.Round(time.Millisecond), lifetimes, lifetime, l.ops.Load(), l.fails.Load(),
		float64(l.ops.Load())/elapsed.Seconds(), time.Duration(l.maxLatency.Load()).Round(time.Millisecond))
	t.Logf("load: rotations (distinct tokens at the server)=%d GetToken calls=%d (failed %d) IMDS requests=%d background refreshes=%d callers that waited for a token=%d logins=%d refused=%d",
		len(stats.tokens), calls, fails, env.Identity.Requests(), refreshes.Load(), waited.Load(), stats.logins, stats.refusals())

	if n := l.fails.Load(); n != 0 {
		t.Errorf("%d operations failed; first errors:\n%s", n, l.errors())
	}
	// The front may refuse a token only as expired during a connect slower than
	// the guard (the retry absorbs it: no operation failed). Logins abandoned
	// when the run ends show up as protocol errors (08P01).
	expiredInFlight := 0
	for what, n := range stats.refused {
		switch {
		case what == pgfront.CodeInvalidAuthorization+" "+pgfront.MsgTokenExpired:
			expiredInFlight += n
		case strings.HasPrefix(what, pgfront.CodeProtocolViolation+" "):
		default:
			t.Errorf("the front refused %d logins: %s", n, what)
		}
	}
	if n := stats.refusals(); n != 0 {
		t.Logf("front refusals (expired in flight and retried: %d): %v", expiredInFlight, stats.refused)
	}
	// A guard against a harness that did not run, not a throughput target: the
	// paced workers make about 1,500 operations in 45 s on an idle 2-core
	// machine with -race, and CPU taken by anything else lowers that without any
	// operation failing, which is what this test is about.
	if l.ops.Load() < workers {
		t.Errorf("only %d operations in %s: the load did not run", l.ops.Load(), elapsed)
	}
	if int64(stats.logins) < l.ops.Load() {
		t.Errorf("front saw %d logins for %d operations: connections were reused, not opened", stats.logins, l.ops.Load())
	}
	// Tokens rotate: a new one reaches the server every half-life (the first
	// refresh starts when a caller meets the cache past half-life)...
	halfLife := lifetime / 2
	if got, want := len(stats.tokens), 1+int((elapsed-2*time.Second)/halfLife); got < want {
		t.Errorf("the server saw %d distinct tokens in %s; want at least %d (one per %s)", got, elapsed, want, halfLife)
	}
	// ...and GetToken ran about once per refresh interval, not per connection.
	if max := 1 + int64(elapsed/halfLife) + 2; calls > max {
		t.Errorf("GetToken called %d times in %s; want at most %d", calls, elapsed, max)
	}
	if fails != 0 {
		t.Errorf("%d GetToken calls failed", fails)
	}
	if r := int64(env.Identity.Requests()); r != calls {
		t.Errorf("IMDS saw %d requests for %d GetToken calls", r, calls)
	}
}
