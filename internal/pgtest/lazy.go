package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds Lazy's Start (initdb + start take ~1.5 s here).
const startTimeout = 2 * time.Minute

// Lazy starts one cluster on first use and shares it across a test binary, so
// packages whose tests never need PostgreSQL (or run with -run filters) pay
// nothing. The zero value is ready; set Options before the first Get.
//
//	var pg pgtest.Lazy
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//	func TestSomething(t *testing.T) { c := pg.Get(t); ... }
type Lazy struct {
	// Options are passed to Start. Options.Logf is ignored: progress goes to
	// the Logf of the test that triggered the start.
	Options Options

	once    sync.Once
	mu      sync.Mutex
	cluster *Cluster
	err     error
}

// Get returns the shared cluster, starting it on the first call. When the
// PostgreSQL binaries are missing (ErrNoPostgres) it calls tb.Skip outside CI
// and tb.Fatal when the environment has CI=true, because a missing PostgreSQL
// must not silently skip the integration tests in CI. Any other start failure
// is always fatal. Every later Get reports the same outcome without retrying.
func (l *Lazy) Get(tb testing.TB) *Cluster {
	tb.Helper()
	l.once.Do(func() {
		opts := l.Options
		opts.Logf = tb.Logf
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		c, err := Start(ctx, opts)
		if c != nil {
			// The cluster outlives this test: never log to it again.
			c.mu.Lock()
			c.logf = func(string, ...any) {}
			c.mu.Unlock()
		}
		l.mu.Lock()
		l.cluster, l.err = c, err
		l.mu.Unlock()
	})
	l.mu.Lock()
	c, err := l.cluster, l.err
	l.mu.Unlock()
	if err == nil {
		return c
	}
	SkipOrFail(tb, err)
	return nil
}

// SkipOrFail ends a test whose cluster failed to start with err: a skip when
// the PostgreSQL binaries are missing outside CI, a failure in CI (CI=true)
// or for any other error. Tests that start a cluster of their own call it
// instead of deciding themselves.
func SkipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if skip, msg := verdict(err, inCI()); skip {
		tb.Skip(msg)
	} else {
		tb.Fatal(msg)
	}
}

// verdict decides how Get reports a failed start: skip only when PostgreSQL
// is unavailable and this is not CI.
func verdict(err error, ci bool) (skip bool, msg string) {
	switch {
	case !errors.Is(err, ErrNoPostgres):
		return false, fmt.Sprintf("starting throwaway PostgreSQL: %v", err)
	case ci:
		return false, fmt.Sprintf("PostgreSQL is required in CI (CI=true): %v", err)
	default:
		return true, fmt.Sprintf("skipping: PostgreSQL unavailable (set CI=true to make this a failure): %v", err)
	}
}

// Main runs the tests and benchmarks (m.Run), then closes the shared cluster
// if one was started, and returns the exit code for os.Exit. A failed Close
// turns a passing run into exit code 1, so leaked servers are noticed.
func (l *Lazy) Main(m *testing.M) int {
	code := m.Run()
	if err := l.close(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: closing the shared PostgreSQL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// close closes the cluster if Get started one.
func (l *Lazy) close() error {
	l.mu.Lock()
	c := l.cluster
	l.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

// inCI reports whether the environment declares a CI run (CI=true).
func inCI() bool { return os.Getenv("CI") == "true" }
