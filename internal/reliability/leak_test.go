package reliability_test

import (
	"bytes"
	"context"
	"database/sql"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

// ownGoroutines returns the stacks of goroutines running code of pgentra's
// driver or token packages, or of lib/pq (test goroutines excluded).
func ownGoroutines() []string {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	var out []string
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "created by github.com/pgentra/pgentra/internal/reliability_test.") ||
			strings.Contains(g, "created by testing.") {
			continue // the test's own goroutines (e.g. a Connect it is waiting for)
		}
		if strings.Contains(g, "pgentra/pgentra/token.") || strings.Contains(g, "pgentra/pgentra/driver.") || strings.Contains(g, "github.com/lib/pq.") {
			out = append(out, g)
		}
	}
	return out
}

// settle polls until no goroutine of ours is left or 10 s have passed (a
// busy machine may be slow to run the last of them).
func settle(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := ownGoroutines()
		if len(g) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines left after %s:\n%s", len(g), what, strings.Join(g, "\n\n"))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoGoroutineLeak: after sql.DB.Close (which closes the Connector and its
// token cache), Connector.Close and Cache.Close, no goroutine of the driver,
// the token cache or pq is left — also when a token fetch was hanging at the
// time, and Close returns promptly then. (Idle HTTP connections of the
// credential's transport belong to azcore and are not counted.)
func TestNoGoroutineLeak(t *testing.T) {
	// 8 s tokens: a connect slowed by a busy machine cannot outlive one.
	env := startEnv(t, 8*time.Second)
	p := newIdentity(t, env, "id-leak-g")
	settle(t, "start") // nothing of ours before

	t.Run("db_close_after_load", func(t *testing.T) {
		c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(miCred(t, env, p)))
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(c)
		db.SetMaxIdleConns(4)
		ctx, cancel := runFor(5 * time.Second) // past one background refresh (at 4 s)
		var l load
		l.runPaced(ctx, 8, 10*time.Millisecond, queryOnce(db, 5*time.Second))
		cancel()
		if l.ops.Load() == 0 || l.fails.Load() != 0 {
			t.Fatalf("load: %d ops, %d failures: %s", l.ops.Load(), l.fails.Load(), l.errors())
		}
		db.Close()
		settle(t, "sql.DB.Close")
	})

	t.Run("connector_close_while_fetch_hangs", func(t *testing.T) {
		env.Identity.SetDefault(entra.Fault{Hang: true})
		defer env.Identity.SetDefault(entra.Fault{})
		c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(miCred(t, env, p)))
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := c.Connect(context.Background()) // no deadline: only Close can end it
			errc <- err
		}()
		waitFor(t, func() bool { return len(ownGoroutines()) > 0 }, "the hanging fetch to show up")
		start := time.Now()
		c.Close()
		// The fetch hangs for ever: any bound proves Close does not wait for it
		// (it waits 500 ms at most; the rest is room for a busy machine).
		if d := time.Since(start); !within(d, 3*time.Second) {
			t.Errorf("Connector.Close took %s with a hanging fetch", d)
		}
		select {
		case err := <-errc:
			if err == nil {
				t.Error("Connect succeeded")
			}
		case <-time.After(10 * time.Second):
			t.Error("Connect still blocked after Close")
		}
		settle(t, "Connector.Close with a hanging fetch")
	})

	t.Run("cache_close_while_fetch_hangs", func(t *testing.T) {
		cache := token.NewCache(hangingCred(), token.ScopePublic)
		errc := make(chan error, 1)
		go func() {
			_, err := cache.Token(context.Background())
			errc <- err
		}()
		waitFor(t, func() bool { return len(ownGoroutines()) > 0 }, "the hanging fetch to show up")
		cache.Close()
		if err := <-errc; err != token.ErrClosed {
			t.Errorf("waiter got %v; want token.ErrClosed", err)
		}
		settle(t, "Cache.Close with a hanging fetch")
	})
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
