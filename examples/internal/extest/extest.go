// Package extest shares one emulator between the tests of an example's
// test binary. Each example's main_test.go does:
//
//	func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		target := extest.WebApp(t, "app-x") // App Service app, role created, env vars set
//		...
//	}
package extest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/internal/exenv"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/pgtest"
)

var (
	pg   pgtest.Lazy
	mu   sync.Mutex
	env  *emulator.Env
	fail error
)

// Main runs the tests, then stops the shared emulator and cluster.
func Main(m *testing.M) int {
	// Short tokens for every emulator of the binary, the programs' own too:
	// MSAL would hand one emulator's cached managed-identity token to another.
	exenv.EmulatorOptions.TokenLifetime = entra.ShortTestLifetime
	code := pg.Main(m)
	mu.Lock()
	defer mu.Unlock()
	if env != nil {
		env.Close()
		env = nil
	}
	return code
}

// Env returns the binary's emulator, starting it on first use. Without the
// PostgreSQL binaries the test is skipped (failed with CI=true).
func Env(t testing.TB) *emulator.Env {
	t.Helper()
	cluster := pg.Get(t)
	mu.Lock()
	defer mu.Unlock()
	if env == nil && fail == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		env, fail = emulator.Start(ctx, emulator.Options{PG: cluster, Logf: nil, TokenLifetime: entra.ShortTestLifetime})
	}
	if fail != nil {
		t.Fatalf("starting the emulator: %v", fail)
	}
	return env
}

// WebApp returns a target for the App Service app named app on the shared
// emulator (see exenv.WebApp), with IDENTITY_ENDPOINT and IDENTITY_HEADER set
// for the test (t.Setenv). Use one app name per test binary.
func WebApp(t *testing.T, app string) *exenv.Target {
	t.Helper()
	e := Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, err := exenv.WebApp(ctx, e, app, func(k, v string) error { t.Setenv(k, v); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// Context returns a context that ends with the test, bounded by d.
func Context(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
