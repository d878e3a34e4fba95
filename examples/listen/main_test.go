package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/internal/extest"
	"github.com/pgentra/pgentra/token"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestListenSurvivesKill(t *testing.T) {
	target := extest.WebApp(t, "app-listen")
	env := target.Env
	ctx := extest.Context(t, time.Minute)
	// Tokens that expire within seconds: the listening connection outlives
	// its token, and the reconnect needs a new one.
	// 4 s: short enough to expire during the test, long enough that a
	// reconnect on a busy machine gets its new token through in time.
	const lifetime = 4 * time.Second
	if err := env.Tenant.SetPrincipalLifetime(target.Principal, lifetime); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Tenant.SetPrincipalLifetime(target.Principal, 0) })
	env.Front.Reset()

	listening := make(chan struct{}, 4)
	out := &extest.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, out, target.DSN, config{Channel: "jobs", MinReconnect: 50 * time.Millisecond,
			MaxReconnect: time.Second, Ping: 50 * time.Millisecond,
			Listening: func() { listening <- struct{}{} }})
	}()
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in output:\n%s", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	notify := func(payload string) {
		t.Helper()
		if _, err := env.AdminDB.ExecContext(ctx, "select pg_notify('jobs', $1)", payload); err != nil {
			t.Fatal(err)
		}
	}
	nextListen := func() {
		t.Helper()
		select {
		case <-listening:
			return
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, out.String())
		case <-time.After(15 * time.Second):
			t.Fatalf("not listening:\n%s", out.String())
		}
	}

	nextListen()
	time.Sleep(lifetime + 500*time.Millisecond) // the first token has expired
	notify("before the kill")
	waitFor(`notification on "jobs": before the kill`)

	if n, err := env.PG.Terminate(ctx, target.Role); err != nil || n < 1 {
		t.Fatalf("terminate: %d, %v", n, err)
	}
	nextListen() // the Listener reconnected by itself, with a new token
	waitFor("listening again")
	notify("after the kill")
	waitFor(`notification on "jobs": after the kill`)
	notify("stop")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not stop:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "connection lost") || !strings.Contains(out.String(), "reconnected") {
		t.Errorf("output does not report the lost connection:\n%s", out.String())
	}

	// Two logins, the second with a newer token than the (expired) first.
	ok := 0
	for _, l := range env.Front.Logins() {
		if l.OK {
			ok++
		}
	}
	if ok < 2 {
		t.Fatalf("front saw %d successful logins, want >= 2: %+v", ok, env.Front.Logins())
	}
	pw := env.Front.Passwords()
	first, err1 := token.ParseClaims(pw[0])
	last, err2 := token.ParseClaims(pw[len(pw)-1])
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !last.ExpiresAt.After(first.ExpiresAt) {
		t.Errorf("the reconnect reused the first token (exp %v), want a fresh one", first.ExpiresAt)
	}
	t.Logf("output:\n%s", out.String())
}
