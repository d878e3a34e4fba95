package driver

import (
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/token"
)

// recTracer records every call of a Tracer as text (%+v of its data).
type recTracer struct {
	mu    sync.Mutex
	calls []string
	ends  []ConnectEndData
	login []LoginEndData
	toks  []TokenEndData
}

type recKey struct{}

func (r *recTracer) add(s string) { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }

func (r *recTracer) TraceConnectStart(ctx context.Context, d ConnectStartData) context.Context {
	r.add(fmt.Sprintf("connect start %+v", d))
	return context.WithValue(ctx, recKey{}, "connect")
}

func (r *recTracer) TraceConnectEnd(ctx context.Context, d ConnectEndData) {
	if ctx.Value(recKey{}) != "connect" {
		r.add("connect end without the connect's context")
	}
	r.add(fmt.Sprintf("connect end %+v", d))
	r.mu.Lock()
	r.ends = append(r.ends, d)
	r.mu.Unlock()
}

func (r *recTracer) TraceLoginStart(ctx context.Context, d LoginStartData) context.Context {
	if ctx.Value(recKey{}) != "connect" {
		r.add("login start outside the connect's context")
	}
	r.add(fmt.Sprintf("login start %+v", d))
	return context.WithValue(ctx, recKey{}, "login")
}

func (r *recTracer) TraceLoginEnd(ctx context.Context, d LoginEndData) {
	if ctx.Value(recKey{}) != "login" {
		r.add("login end without the login's context")
	}
	r.add(fmt.Sprintf("login end %+v", d))
	r.mu.Lock()
	r.login = append(r.login, d)
	r.mu.Unlock()
}

func (r *recTracer) TraceTokenStart(ctx context.Context, d TokenStartData) context.Context {
	r.add(fmt.Sprintf("token start %+v parent=%v", d, ctx.Value(recKey{})))
	return context.WithValue(ctx, recKey{}, "token")
}

func (r *recTracer) TraceTokenEnd(ctx context.Context, d TokenEndData) {
	if ctx.Value(recKey{}) != "token" {
		r.add("token end without the fetch's context")
	}
	r.add(fmt.Sprintf("token end %+v", d))
	r.mu.Lock()
	r.toks = append(r.toks, d)
	r.mu.Unlock()
}

func (r *recTracer) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, "\n")
}

// TestTracerSeesConnectsLoginsAndFetches: a connect that fetches its token,
// one whose cached token is refused and retried with a new one, and one
// refused twice: each connect, login attempt and fetch reaches the Tracer
// with its outcome, SQLSTATE and reason, in the connect's context, and no
// token appears in anything it got.
func TestTracerSeesConnectsLoginsAndFetches(t *testing.T) {
	cred := &msalLike{honoursClaims: true, lifetime: time.Hour}
	rec := &recTracer{}
	// Refusal-driven refreshes are rate-limited; the cache's clock moves past
	// the window between this test's two refused connects.
	clock := &fakeClock{now: time.Now()}
	c := retryConnector(t, cred, WithTracer(rec), WithTokenCacheOptions(token.WithClock(clock)))
	ctx := context.Background()
	var sent []string
	run := func(script ...error) error {
		s := &scriptedLogins{script: script}
		err := c.withLogin(ctx, s.attempt)
		sent = append(sent, s.sent...)
		return err
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if err := run(errNoRole); err != nil {
		t.Fatalf("retry with a new token: %v", err)
	}
	clock.Add(3 * time.Minute)
	errAudience := &pq.Error{Severity: "FATAL", Code: "28000", Message: `The access token does not have a valid audience claim. Please acquire a new token for the resource "https://ossrdbms-aad.database.windows.net".`}
	if err := run(errAudience, errAudience); err == nil {
		t.Fatal("a login refused twice succeeded")
	}
	text := rec.text()
	for _, tok := range sent {
		if strings.Contains(text, tok) {
			t.Fatalf("the tracer was given a token:\n%s", text)
		}
	}
	if strings.Contains(text, "without") || strings.Contains(text, "outside") {
		t.Fatalf("a tracer call got the wrong context:\n%s", text)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []struct {
		outcome         Outcome
		retried, fetchd bool
		reason          Reason
	}{{OutcomeOK, false, true, ""}, {OutcomeOK, true, false, ""}, {OutcomeRefused, true, false, ReasonAudience}}
	if len(rec.ends) != len(want) {
		t.Fatalf("%d connect ends, want %d:\n%s", len(rec.ends), len(want), text)
	}
	for i, w := range want {
		e := rec.ends[i]
		if e.Outcome != w.outcome || e.Retried != w.retried || e.TokenFetched != w.fetchd || e.Reason != w.reason ||
			e.ServerAddress != "db.postgres.database.azure.com" || e.ServerPort != 5432 || e.Role != "orders-app" {
			t.Errorf("connect %d: %+v; want outcome %s retried %v fetched %v reason %q", i+1, e, w.outcome, w.retried, w.fetchd, w.reason)
		}
	}
	if e := rec.ends[2]; e.SQLSTATE != "28000" {
		t.Errorf("refused connect's SQLSTATE %q, want 28000", e.SQLSTATE)
	}
	// Logins: ok; refused no_role + ok (attempt 2); refused audience twice.
	var got []string
	for _, l := range rec.login {
		got = append(got, fmt.Sprintf("%d:%s:%s:%s", l.Attempt, l.Outcome, l.SQLSTATE, l.Reason))
	}
	if w := "1:ok::,1:refused:28P01:no_role,2:ok::,1:refused:28000:audience,2:refused:28000:audience"; strings.Join(got, ",") != w {
		t.Errorf("logins %s; want %s", strings.Join(got, ","), w)
	}
	// Fetches: the first connect's (blocking, a child of its context) and two retries.
	var kinds []string
	for _, d := range rec.toks {
		kinds = append(kinds, string(d.Kind)+":"+string(d.Outcome))
		if d.Cache != c.TokenCache() || d.ExpiresOn.IsZero() || d.Scope == "" {
			t.Errorf("token end %+v: want the cache, the expiry and the scope", d)
		}
	}
	if w := "blocking:ok,retry:ok,retry:ok"; strings.Join(kinds, ",") != w {
		t.Errorf("fetches %s; want %s\n%s", strings.Join(kinds, ","), w, text)
	}
	if !strings.Contains(text, "Kind:blocking Cache:") || !strings.Contains(text, "parent=connect") {
		t.Errorf("the fetch did not start in the connect's context:\n%s", text)
	}
}

// TestTracerTokenError: a credential that fails gives a token_error connect
// and an error fetch.
func TestTracerTokenError(t *testing.T) {
	rec := &recTracer{}
	c := retryConnector(t, &fakeCredential{claims: userClaims(), err: errors.New("identity endpoint down")}, WithTracer(rec))
	if err := c.withLogin(context.Background(), (&scriptedLogins{}).attempt); err == nil {
		t.Fatal("no error from a failing credential")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.ends) != 1 || rec.ends[0].Outcome != OutcomeTokenError || len(rec.login) != 0 {
		t.Fatalf("connect ends %+v, logins %d; want one token_error, no login", rec.ends, len(rec.login))
	}
	if len(rec.toks) != 1 || rec.toks[0].Outcome != FetchError || rec.toks[0].Kind != FetchBlocking {
		t.Fatalf("fetches %+v; want one blocking error", rec.toks)
	}
}

func TestClassify(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	for _, tc := range []struct {
		ctx    context.Context
		err    error
		want   Outcome
		reason Reason
	}{
		{bg, nil, OutcomeOK, ""},
		{bg, &LoginError{Err: errNoRole}, OutcomeRefused, ReasonNoRole},
		{bg, errExpired, OutcomeRefused, ReasonExpired},
		{bg, &pq.Error{Code: "28000", Message: "The access token has invalid format."}, OutcomeRefused, ReasonInvalidFormat},
		{bg, &pq.Error{Code: "28000", Message: "An error occurred while validating the access token. Please acquire a new token and retry."}, OutcomeRefused, ReasonValidation},
		{bg, &pq.Error{Code: "28000", Message: `no pg_hba.conf entry for host "10.0.0.4", user "a", database "b", no encryption`}, OutcomeRefused, ReasonTLSRequired},
		{bg, &pq.Error{Code: "28000", Message: `role "audience-api" is not permitted to log in`}, OutcomeRefused, ReasonOther},
		{bg, &pq.Error{Code: "3D000", Message: `database "x" does not exist`}, OutcomeRefused, ReasonOther},
		{bg, &TokenError{Err: errors.New("down")}, OutcomeTokenError, ""},
		{bg, fmt.Errorf("x: %w", ErrTokenTooLarge), OutcomeTokenError, ""},
		{bg, x509.UnknownAuthorityError{}, OutcomeTLSError, ""},
		{bg, errors.New("pq: SSL is not enabled on the server"), OutcomeTLSError, ""},
		{bg, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, OutcomeNetworkError, ""},
		{canceled, fmt.Errorf("connecting: %w", context.Canceled), OutcomeCanceled, ""},
		{bg, fmt.Errorf("waiting: %w", context.DeadlineExceeded), OutcomeCanceled, ""},
	} {
		got, _, reason := classify(tc.ctx, tc.err)
		if got != tc.want || reason != tc.reason {
			t.Errorf("classify(%v) = %s, %q; want %s, %q", tc.err, got, reason, tc.want, tc.reason)
		}
	}
}

// captureDefault makes slog.Default() write to a buffer for the test.
func captureDefault(t *testing.T) *syncBuf {
	t.Helper()
	b := &syncBuf{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return b
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestWarningsReachDefaultLogger: without WithLogger, the configuration
// warnings (once per Connector) and the refusal pattern reach slog.Default().
func TestWarningsReachDefaultLogger(t *testing.T) {
	buf := captureDefault(t)
	env := map[string]string{"PQGO_DEBUG": "1"}
	c, err := NewConnector("host=db.example.com user=orders-app dbname=d sslmode=require",
		WithCredential(&fakeCredential{claims: userClaims()}), withGetenv(func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := buf.String()
	if strings.Count(out, "PQGO_DEBUG=1") != 1 || strings.Count(out, "level=WARN") != 2 {
		t.Fatalf("default logger got %q; want one PQGO_DEBUG warning and one TLS warning", out)
	}
	// A fresh token refused: logged once, not per connect.
	for range 3 {
		if err := c.withLogin(context.Background(), (&scriptedLogins{script: []error{errNoRole}}).attempt); err == nil {
			t.Fatal("refused login succeeded")
		}
	}
	if n := strings.Count(buf.String(), "logins are refused"); n != 1 {
		t.Fatalf("refusal warnings: %d, want 1:\n%s", n, buf.String())
	}
	if strings.Contains(buf.String(), "login failed") {
		t.Errorf("every login failure reached the default logger (only WithLogger's gets them):\n%s", buf.String())
	}
}

// TestSlowFetchWarning: a fetch connects wait for that is still running
// after slowFetchAfter is reported to slog.Default(), once.
func TestSlowFetchWarning(t *testing.T) {
	buf := captureDefault(t)
	old := slowFetchAfter
	slowFetchAfter = 10 * time.Millisecond
	defer func() { slowFetchAfter = old }()
	c := retryConnector(t, &fakeCredential{claims: userClaims(), delay: 500 * time.Millisecond})
	if err := c.withLogin(context.Background(), (&scriptedLogins{}).attempt); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "still waiting for an access token"); n != 1 {
		t.Fatalf("slow-fetch warnings: %d, want 1:\n%s", n, buf.String())
	}
}

// TestPGENTRALOGDebug: PGENTRA_LOG=debug turns debug logging on without a
// logger; without it the default logger is slog.Default().
func TestPGENTRALOGDebug(t *testing.T) {
	l := defaultLogger(func(k string) string {
		if k == "PGENTRA_LOG" {
			return "debug"
		}
		return ""
	})
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("PGENTRA_LOG=debug: debug logs off")
	}
	if l := defaultLogger(func(string) string { return "" }); l != slog.Default() {
		t.Fatal("without PGENTRA_LOG the logger is not slog.Default()")
	}
	c, err := NewConnector("host=localhost user=u dbname=d", WithCredential(&fakeCredential{claims: userClaims()}),
		withGetenv(func(k string) string {
			if k == "PGENTRA_LOG" {
				return "DEBUG"
			}
			return ""
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.logger.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("a Connector with PGENTRA_LOG=DEBUG does not log debug")
	}
}

// TestListenerTraced: NewListener takes WithTracer, and its logins are
// connects to the Tracer (here a refused dial: network_error).
func TestListenerTraced(t *testing.T) {
	rec := &recTracer{}
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=orders-app dbname=d sslmode=disable", closedPort(t))
	l, err := NewListener(dsn, 10*time.Millisecond, 100*time.Millisecond, nil, WithCredential(&fakeCredential{claims: userClaims()}), WithTracer(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec.mu.Lock()
		var got *ConnectEndData
		if len(rec.ends) > 0 {
			got = &rec.ends[0]
		}
		rec.mu.Unlock()
		if got != nil {
			if got.Outcome != OutcomeNetworkError || got.ServerAddress != "127.0.0.1" {
				t.Fatalf("listener connect traced as %+v; want network_error to 127.0.0.1", *got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener's connect never reached the tracer")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSQLOpenWarns: a plain sql.Open("pgentra", dsn) user, who has no place
// for WithLogger, gets the configuration warnings on slog.Default().
func TestSQLOpenWarns(t *testing.T) {
	buf := captureDefault(t)
	t.Setenv("PQGO_DEBUG", "1")
	db, err := sql.Open(DriverName, "host=db.example.com user=u dbname=d sslmode=require azure_credential=azure_cli")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if out := buf.String(); !strings.Contains(out, "PQGO_DEBUG=1") || !strings.Contains(out, "host=db.example.com") {
		t.Fatalf("sql.Open's default logger got %q; want the PQGO_DEBUG and TLS warnings", out)
	}
}
