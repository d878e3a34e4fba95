package reliability_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

const burstSize = 500

// burst runs burstSize concurrent PingContexts on db, each with its own
// deadline, and returns their errors and durations.
func burst(db *sql.DB, deadline time.Duration) ([]error, []time.Duration) {
	errs := make([]error, burstSize)
	durs := make([]time.Duration, burstSize)
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for i := range burstSize {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			errs[i] = db.PingContext(ctx)
			durs[i] = time.Since(start)
		}()
	}
	close(startGate)
	wg.Wait()
	return errs, durs
}

// TestBurstFailingCredential: 500 concurrent connects while IMDS answers 500
// to everything make a handful of GetToken calls (one shared fetch, then the
// back-off answers at once); every caller gets that error, none waits past
// its deadline.
func TestBurstFailingCredential(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 0)
	p := newIdentity(t, env, "id-burst")
	cred := miCred(t, env, p)
	env.Identity.SetDefault(entra.Fault{Status: 500})
	c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(burstSize)
	const deadline = 5 * time.Second
	start := time.Now()
	errs, durs := burst(db, deadline)
	elapsed := time.Since(start)
	var slowest time.Duration
	for i, err := range errs {
		slowest = max(slowest, durs[i])
		if err == nil {
			t.Fatalf("caller %d connected with IMDS failing", i)
		}
		if msg := err.Error(); !strings.Contains(msg, "acquiring token") || !strings.Contains(msg, "500") {
			t.Errorf("caller %d: %v; want the shared IMDS error", i, err)
			break
		}
	}
	t.Logf("burst of %d against a failing IMDS: GetToken calls=%d IMDS requests=%d, all failed in %s (slowest caller %s); e.g. %v",
		burstSize, cred.calls.Load(), env.Identity.Requests(), elapsed.Round(time.Millisecond), slowest.Round(time.Millisecond), errs[0])
	if n := cred.calls.Load(); n > 3 {
		t.Errorf("%d GetToken calls for a burst of %d; want a handful", n, burstSize)
	}
	// A caller that met its deadline would have said so instead of the IMDS
	// error; this only catches one that hung (scheduling 500 goroutines on a
	// busy machine may add seconds).
	if !within(slowest, deadline+5*time.Second) {
		t.Errorf("a caller waited %s, past its %s deadline", slowest, deadline)
	}
	if len(env.Front.Passwords()) != 0 {
		t.Error("something reached the server")
	}
}

// TestBurstHangingCredential: 500 concurrent connects against an IMDS that
// never answers all return at their own 500 ms deadline with
// context.DeadlineExceeded, and only one GetToken call is made.
func TestBurstHangingCredential(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 0)
	p := newIdentity(t, env, "id-burst-hang")
	cred := miCred(t, env, p)
	env.Identity.SetDefault(entra.Fault{Hang: true})
	c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(burstSize)
	const deadline = 500 * time.Millisecond
	errs, durs := burst(db, deadline)
	var slowest time.Duration
	for i, err := range errs {
		slowest = max(slowest, durs[i])
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller %d: %v; want its deadline", i, err)
			break
		}
	}
	t.Logf("burst of %d against a hanging IMDS: GetToken calls=%d, slowest caller %s (deadline %s)",
		burstSize, cred.calls.Load(), slowest.Round(time.Millisecond), deadline)
	if n := cred.calls.Load(); n != 1 {
		t.Errorf("%d GetToken calls; want 1", n)
	}
	if !within(slowest, deadline+5*time.Second) { // room for a busy machine
		t.Errorf("a caller waited %s with a %s deadline", slowest, deadline)
	}
}
