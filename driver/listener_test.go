package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

// tokenLifetime is what the emulator's tenant issues in these tests: the
// listening connection outlives its token within the test.
const tokenLifetime = 2 * time.Second

// events records a Listener's callbacks.
type events struct {
	mu  sync.Mutex
	got []listenerEvent
	ch  chan listenerEvent
}

type listenerEvent struct {
	kind pq.ListenerEventType
	err  error
}

func newEvents() *events { return &events{ch: make(chan listenerEvent, 256)} }

func (e *events) callback(kind pq.ListenerEventType, err error) {
	e.mu.Lock()
	e.got = append(e.got, listenerEvent{kind, err})
	e.mu.Unlock()
	select {
	case e.ch <- listenerEvent{kind, err}:
	default:
	}
}

func (e *events) count(kind pq.ListenerEventType) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.got {
		if ev.kind == kind {
			n++
		}
	}
	return n
}

// wait returns the next event of kind, failing the test after d.
func (e *events) wait(t *testing.T, kind pq.ListenerEventType, d time.Duration) listenerEvent {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-e.ch:
			if ev.kind == kind {
				return ev
			}
		case <-deadline:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("no %v event within %v; events: %v", kind, d, e.got)
		}
	}
}

// listenerEnv is the emulator (2 s tokens) with a managed identity that has
// a role.
type listenerEnv struct {
	env  *emulator.Env
	mi   entra.Principal
	cred *azidentity.ManagedIdentityCredential
}

func newListenerEnv(t *testing.T, withRole bool) *listenerEnv {
	t.Helper()
	env, err := emulator.Start(context.Background(), emulator.Options{PG: pg.Get(t), TokenLifetime: tokenLifetime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	mi, err := env.Tenant.AddUserAssignedIdentity(fmt.Sprintf("id-listen-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	if withRole {
		if _, err := env.CreatePrincipal(context.Background(), mi, false); err != nil {
			t.Fatal(err)
		}
	}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: env.ClientOptions(), ID: azidentity.ClientID(mi.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerEnv{env: env, mi: mi, cred: cred}
}

func (le *listenerEnv) listener(t *testing.T, ev *events, minInterval, maxInterval time.Duration) *Listener {
	t.Helper()
	l, err := NewListener(le.env.DSN(le.mi.Name), minInterval, maxInterval, ev.callback, WithCredential(le.cred))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (le *listenerEnv) notify(t *testing.T, channel, payload string) {
	t.Helper()
	if _, err := le.env.AdminDB.Exec("select pg_notify($1, $2)", channel, payload); err != nil {
		t.Fatal(err)
	}
}

// kill terminates the listener's backend and waits until it is gone.
func (le *listenerEnv) kill(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n, err := le.env.PG.Terminate(ctx, le.mi.Name); err != nil || n != 1 {
		t.Fatalf("pg_terminate_backend: %d backends, %v", n, err)
	}
}

// next returns the next value on Notify (nil included).
func next(t *testing.T, l *Listener) *pq.Notification {
	t.Helper()
	select {
	case n, ok := <-l.Notify:
		if !ok {
			t.Fatal("Notify closed")
		}
		return n
	case <-time.After(20 * time.Second):
		t.Fatal("nothing on Notify within 20s")
	}
	return nil
}

// expect reads Notify until a notification (not nil) arrives and checks it.
func expect(t *testing.T, l *Listener, channel, payload string) {
	t.Helper()
	n := next(t, l)
	if n == nil || n.Channel != channel || n.Extra != payload {
		t.Fatalf("got notification %+v, want %s: %s", n, channel, payload)
	}
}

// noListenerGoroutines fails if a goroutine of a Listener or of pq's
// ListenerConn is still running (pq's may need a moment to return after
// closing its channel).
func noListenerGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	for range 100 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "driver.(*Listener)") && !strings.Contains(stacks, "pq.(*ListenerConn)") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("a Listener goroutine outlived Close:\n%s", stacks)
}

// The scenario: the tokens expire, the server kills the listening
// connection, the Listener logs in with a new token, LISTENs again, sends a
// nil and then the next notification. Unlisten holds across the reconnect.
func TestListenerReconnectsWithNewToken(t *testing.T) {
	le := newListenerEnv(t, true)
	ev := newEvents()
	l := le.listener(t, ev, 50*time.Millisecond, time.Second)
	for _, ch := range []string{"jobs", "Other Channel", "gone"} {
		if err := l.Listen(ch); err != nil {
			t.Fatalf("Listen(%q): %v", ch, err)
		}
	}
	if err := l.Listen("jobs"); !errors.Is(err, pq.ErrChannelAlreadyOpen) {
		t.Errorf("second Listen: %v, want pq.ErrChannelAlreadyOpen", err)
	}
	ev.wait(t, pq.ListenerEventConnected, 10*time.Second)
	if err := l.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	le.notify(t, "jobs", "first")
	expect(t, l, "jobs", "first")
	if err := l.Unlisten("gone"); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlisten("gone"); !errors.Is(err, pq.ErrChannelNotOpen) {
		t.Errorf("second Unlisten: %v, want pq.ErrChannelNotOpen", err)
	}
	firstRequests := le.env.Identity.RequestsFor(le.mi)

	time.Sleep(tokenLifetime + 500*time.Millisecond) // every token issued so far has expired
	le.kill(t)
	if e := ev.wait(t, pq.ListenerEventDisconnected, 10*time.Second); e.err == nil {
		t.Error("Disconnected event without the cause")
	}
	ev.wait(t, pq.ListenerEventReconnected, 20*time.Second)
	if n := next(t, l); n != nil {
		t.Fatalf("first after the reconnect: %+v, want nil", n)
	}
	le.notify(t, "gone", "unlistened")
	le.notify(t, "Other Channel", "second")
	le.notify(t, "jobs", "third")
	expect(t, l, "Other Channel", "second")
	expect(t, l, "jobs", "third")

	if got := le.env.Identity.RequestsFor(le.mi); got <= firstRequests {
		t.Errorf("token requests %d after the reconnect, %d before: the reconnect used no new token", got, firstRequests)
	}
	var ok []string
	pw := le.env.Front.Passwords()
	for i, lg := range le.env.Front.Logins() {
		if lg.OK && i < len(pw) {
			ok = append(ok, pw[i])
		}
	}
	if len(ok) < 2 {
		t.Fatalf("front saw %d successful logins, want 2", len(ok))
	}
	first, err1 := token.ParseClaims(ok[0])
	last, err2 := token.ParseClaims(ok[len(ok)-1])
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !last.ExpiresAt.After(first.ExpiresAt) {
		t.Errorf("the reconnect logged in with the first token (exp %v)", first.ExpiresAt)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-l.Notify; ok {
		t.Error("Notify not closed by Close")
	}
	if n := ev.count(pq.ListenerEventDisconnected); n != 1 {
		t.Errorf("%d Disconnected events, want 1: Close reports none, as with pq", n)
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if err := l.Listen("x"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
	noListenerGoroutines(t)
}

// UnlistenAll holds across a reconnect: only channels LISTENed after it are
// LISTENed again.
func TestListenerUnlistenAllAcrossReconnect(t *testing.T) {
	le := newListenerEnv(t, true)
	ev := newEvents()
	l := le.listener(t, ev, 50*time.Millisecond, time.Second)
	for _, ch := range []string{"a", "b"} {
		if err := l.Listen(ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.UnlistenAll(); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen("c"); err != nil {
		t.Fatal(err)
	}
	le.kill(t)
	ev.wait(t, pq.ListenerEventReconnected, 20*time.Second)
	if n := next(t, l); n != nil {
		t.Fatalf("first after the reconnect: %+v, want nil", n)
	}
	le.notify(t, "a", "x")
	le.notify(t, "b", "x")
	le.notify(t, "c", "after")
	expect(t, l, "c", "after")
}

// A server restart: the Listener reports the loss and failed attempts,
// backs off, and reconnects once the server is back.
func TestListenerServerRestart(t *testing.T) {
	le := newListenerEnv(t, true)
	ev := newEvents()
	l := le.listener(t, ev, 50*time.Millisecond, 400*time.Millisecond)
	if err := l.Listen("jobs"); err != nil {
		t.Fatal(err)
	}
	cluster := le.env.PG
	t.Cleanup(func() { cluster.Restart(context.Background()) })
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, pq.ListenerEventDisconnected, 20*time.Second)
	fail := ev.wait(t, pq.ListenerEventConnectionAttemptFailed, 20*time.Second)
	if fail.err == nil || strings.Contains(fail.err.Error(), "eyJ") {
		t.Errorf("attempt failed with %v", fail.err)
	}
	if err := l.Ping(); err == nil {
		t.Error("Ping while the server is down succeeded")
	}
	if err := cluster.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, pq.ListenerEventReconnected, 30*time.Second)
	if n := next(t, l); n != nil {
		t.Fatalf("first after the restart: %+v, want nil", n)
	}
	le.notify(t, "jobs", "back")
	expect(t, l, "jobs", "back")
}

// A login the server refuses (no role for the identity) is reported through
// the callback with the hint, and the back-off makes at most one token
// request per attempt: a token refused when fresh is not fetched again.
func TestListenerRefusedLogin(t *testing.T) {
	le := newListenerEnv(t, false)
	ev := newEvents()
	l := le.listener(t, ev, 100*time.Millisecond, 400*time.Millisecond)
	var first listenerEvent
	for i := range 8 {
		e := ev.wait(t, pq.ListenerEventConnectionAttemptFailed, 20*time.Second)
		if i == 0 {
			first = e
		}
	}
	var le2 *LoginError
	if !errors.As(first.err, &le2) {
		t.Fatalf("attempt failed with %T %v, want a *LoginError", first.err, first.err)
	}
	if !strings.Contains(le2.Hint, "pgaadauth_create_principal") || !strings.Contains(first.err.Error(), "#user-is-not-the-tokens-role") {
		t.Errorf("no hint in %v (hint: %s)", first.err, le2.Hint)
	}
	l.Close()
	attempts := ev.count(pq.ListenerEventConnectionAttemptFailed)
	requests := le.env.Identity.RequestsFor(le.mi)
	if requests > attempts+1 {
		t.Errorf("%d token requests for %d refused attempts", requests, attempts)
	}
	if ev.count(pq.ListenerEventConnected) != 0 {
		t.Error("Connected without a role")
	}
	for _, pw := range le.env.Front.Passwords() {
		if strings.Contains(first.err.Error(), pw) {
			t.Error("the token is in the error")
		}
	}
	noListenerGoroutines(t)
}

// Close during a reconnect wait returns at once (not after the minute of
// back-off) and leaves no goroutine behind.
func TestListenerCloseDuringReconnectWait(t *testing.T) {
	cred := &fakeCredential{claims: spClaims()}
	ev := newEvents()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=postgres sslmode=disable", closedPort(t))
	l, err := NewListener(dsn, time.Minute, time.Hour, ev.callback, WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	listenErr := make(chan error, 1)
	go func() { listenErr <- l.Listen("jobs") }() // waits for a connection
	ev.wait(t, pq.ListenerEventConnectionAttemptFailed, 20*time.Second)
	began := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("Close took %v during a one-minute reconnect wait", d)
	}
	if err := <-listenErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen waiting for a connection returned %v, want net.ErrClosed", err)
	}
	if _, ok := <-l.Notify; ok {
		t.Error("Notify not closed")
	}
	noListenerGoroutines(t)
}

// Close from the event callback doesn't deadlock.
func TestListenerCloseFromCallback(t *testing.T) {
	cred := &fakeCredential{claims: spClaims()}
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=postgres sslmode=disable", closedPort(t))
	var l *Listener
	ready := make(chan struct{})
	closed := make(chan error, 1)
	cb := func(pq.ListenerEventType, error) {
		<-ready
		closed <- l.Close()
	}
	l, err := NewListener(dsn, time.Minute, time.Hour, cb, WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close from the callback hung")
	}
	if _, ok := <-l.Notify; ok {
		t.Error("Notify not closed")
	}
	noListenerGoroutines(t)
}

// No token in the Listener's printed forms, and none left in pq's
// connection once it logged in.
func TestListenerShowsNoToken(t *testing.T) {
	it := newITest(t, spClaims(), "listen-secret-app")
	it.setPassword(it.cred.peekNext())
	ev := newEvents()
	l, err := NewListener(it.dsn("user=listen-secret-app"), 50*time.Millisecond, time.Second, ev.callback, WithCredential(it.cred))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Listen("x"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, l); strings.Contains(s, secretMarker) {
			t.Errorf("%s of the Listener shows the token: %s", f, s)
		}
	}
	l.lock.Lock()
	cn := l.cn
	l.lock.Unlock()
	pw, ok := listenerConnPassword(cn)
	if !ok {
		t.Fatal("pq's ListenerConn no longer keeps its conn in field cn with a cfg: update forgetListenerPassword")
	}
	if pw != "" {
		t.Error("pq's ListenerConn still holds the token")
	}
}

// listenerConnPassword reads the password pq keeps in a ListenerConn.
func listenerConnPassword(lc *pq.ListenerConn) (string, bool) {
	f := reflect.ValueOf(lc).Elem().FieldByName("cn")
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() {
		return "", false
	}
	cfg := f.Elem().FieldByName("cfg")
	if !cfg.IsValid() || cfg.Type() != reflect.TypeFor[pq.Config]() {
		return "", false
	}
	return (*pq.Config)(unsafe.Pointer(cfg.UnsafeAddr())).Password, true
}

func TestNewListenerBadInput(t *testing.T) {
	cred := &fakeCredential{claims: spClaims()}
	const dsn = "host=db.example.com user=app sslmode=verify-full"
	for _, tc := range []struct{ min, max time.Duration }{{0, time.Second}, {-time.Second, time.Second}, {time.Minute, time.Second}} {
		_, err := NewListener(dsn, tc.min, tc.max, nil, WithCredential(cred))
		if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrListenerConfig) || !strings.Contains(err.Error(), "minReconnectInterval") {
			t.Errorf("intervals %v, %v: %v, want ErrInvalidConfig and ErrListenerConfig naming minReconnectInterval", tc.min, tc.max, err)
		}
		if err != nil && strings.Count(err.Error(), "pgentra:") != 1 {
			t.Errorf(`"pgentra:" is not said once: %v`, err)
		}
	}
	// pq prepends PGHOST's list to the DSN's each time it parses: the string
	// for pq's ListenerConn would name more hosts than the Connector's config.
	// NewConnector itself refuses that list beside the DSN's host.
	t.Setenv("PGHOST", "a.example.com,b.example.com")
	_, err := NewListener("host=db.example.com user=app sslmode=verify-full", time.Second, time.Second, nil, WithCredential(cred))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "PGHOST") {
		t.Errorf("PGHOST list: %v, want ErrInvalidConfig naming PGHOST", err)
	}
	if _, err := NewListener("password=hunter2 host=db.example.com", time.Second, time.Second, nil, WithCredential(cred)); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("DSN password: %v", err)
	}
}

// An attempt is bounded although pq's ListenerConn takes no context: by the
// DSN's connect_timeout, else by ListenerConnectTimeout. A server that
// accepts and then says nothing fails the attempt, and Close during such an
// attempt returns once it ended.
func TestListenerAttemptBounded(t *testing.T) {
	base, err := NewConnector("host=127.0.0.1 user=app sslmode=disable", WithCredential(&fakeCredential{claims: spClaims()}))
	if err != nil {
		t.Fatal(err)
	}
	if got := listenerConfig(base.base).ConnectTimeout; got != ListenerConnectTimeout {
		t.Errorf("no connect_timeout in the DSN: attempts bounded by %v, want %v", got, ListenerConnectTimeout)
	}
	if base.base.ConnectTimeout != 0 {
		t.Error("listenerConfig changed the Connector's config")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1)
	var held []net.Conn
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // held open, never answered
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	defer func() {
		ln.Close()
		<-acceptDone
		for _, c := range held {
			c.Close()
		}
	}()
	ev := newEvents()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=app sslmode=disable connect_timeout=1", ln.Addr().(*net.TCPAddr).Port)
	l, err := NewListener(dsn, 10*time.Millisecond, 10*time.Millisecond, ev.callback, WithCredential(&fakeCredential{claims: spClaims()}))
	if err != nil {
		t.Fatal(err)
	}
	e := ev.wait(t, pq.ListenerEventConnectionAttemptFailed, 20*time.Second)
	var ne net.Error
	if !errors.As(e.err, &ne) || !ne.Timeout() {
		t.Errorf("stalled attempt failed with %v, want a timeout", e.err)
	}
	<-accepted // the next attempt is in flight (or about to be)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	noListenerGoroutines(t)
}

// pq prepends comma lists in PGHOST and PGPORT to the string's own each time
// it parses, and indexes out of range when the host list then outnumbers a
// hostaddr list while the first host is empty. The string NewListener
// writes for pq's ListenerConn is parsed again: that parse must fail with
// an error, never crash the program.
func TestNewListenerEnvListsDoNotPanic(t *testing.T) {
	cleanPGEnv(t)
	t.Setenv("PGHOST", "x.example.invalid,y.example.invalid")
	t.Setenv("PGPORT", "1,2")
	const dsn = "host=,b.example.invalid hostaddr=127.0.0.1,127.0.0.2,127.0.0.3 port=5432,5433 user=app"
	var l *Listener
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("NewListener panicked: %v", r)
			}
		}()
		l, err = NewListener(dsn, time.Second, time.Second, nil, WithCredential(tokenFunc(func() string { return "t" })))
	}()
	if l != nil {
		l.Close()
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewListener = %v, want ErrInvalidConfig", err)
	}
}

// NewListener checks the string for pq's ListenerConn in the environment of
// that moment; every reconnect parses it again in the environment of its
// own moment. A PG* variable set in between must not add a host the
// Connector never checked (here a remote one, in clear: sslmode=disable was
// accepted because 127.0.0.1 is local), nor crash the listener's goroutine:
// the attempt fails with ErrListenerConfig and nothing else is dialed.
func TestListenerReconnectRechecksEnvironment(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // connections to it are refused
	for _, tc := range []struct {
		name, dsn string
		env       map[string]string
	}{
		{"remote host added", fmt.Sprintf("host=127.0.0.1 port=%d user=app sslmode=disable", port),
			map[string]string{"PGHOST": "x.example.invalid,evil.example.invalid"}},
		{"pq panics", fmt.Sprintf("host=,y.example.invalid,b.example.invalid hostaddr=127.0.0.1,127.0.0.2,127.0.0.3 port=%d,%d,%d user=app", port, port, port),
			map[string]string{"PGHOST": "x.example.invalid,y.example.invalid", "PGPORT": "1,2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanPGEnv(t)
			for k := range tc.env {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			var once sync.Once
			cred := tokenFunc(func() string {
				// The variables change after NewListener checked the
				// string, before the first attempt writes it.
				once.Do(func() {
					for k, v := range tc.env {
						os.Setenv(k, v)
					}
				})
				return "opaque-listener-token"
			})
			ev := newEvents()
			l, err := NewListener(tc.dsn, time.Hour, time.Hour, ev.callback, WithCredential(cred))
			if err != nil {
				t.Fatalf("NewListener: %v", err)
			}
			defer l.Close()
			fail := ev.wait(t, pq.ListenerEventConnectionAttemptFailed, 20*time.Second)
			if !errors.Is(fail.err, ErrListenerConfig) {
				t.Errorf("attempt failed with %v, want ErrListenerConfig", fail.err)
			}
			if fail.err != nil && strings.Contains(fail.err.Error(), "evil") {
				t.Errorf("the attempt dialed a host the Connector never checked: %v", fail.err)
			}
		})
	}
}

// FuzzListenerEnv: whatever the DSN and the PGHOST, PGHOSTADDR and PGPORT
// lists (which pq prepends to the string's own at every parse), NewConnector
// and the listener's string never panic, and a string the listener would
// hand pq means to pq exactly the config the Connector checked.
func FuzzListenerEnv(f *testing.F) {
	for _, s := range [][4]string{
		{"host=,b hostaddr=127.0.0.1,127.0.0.2,127.0.0.3 port=5432,5433 user=app", "x,y", "", "1,2"},
		{"host=,y,b hostaddr=127.0.0.1,127.0.0.2,127.0.0.3 port=1,2,3 user=app", "x,y", "", "1,2"},
		{"host=127.0.0.1 user=app sslmode=disable", "x,evil.example.invalid", "", ""},
		{"host=a,b port=1,2 user=app", "", "127.0.0.1,127.0.0.2", "5,6"},
		{"host='' hostaddr=127.0.0.1,::1 user=app", "h", "127.0.0.1,,::1", ""},
		{"postgres://app@h1,h2/db?port=1,2&sslmode=require", ",", ",", ","},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, in, pghost, pghostaddr, pgport string) {
		cleanPGEnv(t)
		for k, v := range map[string]string{"PGHOST": pghost, "PGHOSTADDR": pghostaddr, "PGPORT": pgport} {
			if strings.IndexByte(v, 0) >= 0 {
				return
			}
			t.Setenv(k, v)
			if v == "" {
				os.Unsetenv(k) // an empty PGHOST counts as set
			}
		}
		c, err := NewConnector(in, withGetenv(env(nil)), WithCredential(tokenFunc(func() string { return "t" })))
		if err != nil {
			return
		}
		defer c.Close()
		probe := listenerConfig(c.base)
		probe.Password = "opaque-token"
		s, err := listenerString(probe)
		if err != nil {
			if !errors.Is(err, ErrListenerConfig) || strings.Contains(err.Error(), "opaque-token") {
				t.Fatalf("listenerString: %v", err)
			}
			return
		}
		back, err := pq.NewConfig(s)
		if err != nil {
			t.Fatalf("listenerString returned a string pq refuses: %v", err)
		}
		if back.Password != "opaque-token" || back.Host != c.base.Host || len(back.Multi) != len(c.base.Multi) || back.SSLMode != c.base.SSLMode {
			t.Fatalf("pq reads the listener's string as host %q (+%d) sslmode %q, the Connector checked host %q (+%d) sslmode %q",
				back.Host, len(back.Multi), back.SSLMode, c.base.Host, len(c.base.Multi), c.base.SSLMode)
		}
	})
}

// TestListenerFirstLoginRefusedListenReturns: a Listener whose first login
// is refused for a reason a new token cannot fix (no role for the
// identity) makes Listen and Ping return that refusal with its hint instead
// of waiting for a connection that will not come.
func TestListenerFirstLoginRefusedListenReturns(t *testing.T) {
	le := newListenerEnv(t, false)
	ev := newEvents()
	l := le.listener(t, ev, 100*time.Millisecond, time.Second)
	done := make(chan error, 1)
	go func() { done <- l.Listen("orders") }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		l.Close() // unblocks Listen
		t.Fatal("Listen still waits a minute after the first login was refused")
	}
	var login *LoginError
	if !errors.As(err, &login) || !strings.Contains(login.Hint, "pgaadauth_create_principal") {
		t.Fatalf("Listen = %v, want the *LoginError with its hint", err)
	}
	if perr := l.Ping(); !errors.As(perr, &login) {
		t.Errorf("Ping = %v, want the *LoginError", perr)
	}
	// The channel was not kept: a Listen after the role exists starts anew.
	if err := l.Unlisten("orders"); !errors.Is(err, pq.ErrChannelNotOpen) {
		t.Errorf("Unlisten after a refused Listen = %v, want pq.ErrChannelNotOpen", err)
	}
}
