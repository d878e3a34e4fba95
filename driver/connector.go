package driver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/clouds"
	"github.com/pgentra/pgentra/internal/dsn"
	"github.com/pgentra/pgentra/internal/pqinternal"
	"github.com/pgentra/pgentra/internal/tokenx"
	"github.com/pgentra/pgentra/token"
)

// Connector opens connections to one server with Entra tokens. It is safe
// for concurrent use; use it with sql.OpenDB, or let sql.Open("pgentra", dsn)
// make one. Closing the sql.DB closes the Connector, which stops its token
// cache.
type Connector struct {
	base      pq.Config // parsed once; cloned per token, never per connect
	redacted  string
	scope     string
	credKind  string
	cache     *token.Cache
	ownsCache bool
	cred      azcore.TokenCredential // for the management-scope user lookup; nil if unknown
	logger    *slog.Logger           // never nil: WithLogger's, or the default logger (see defaultLogger)
	explicit  bool                   // logger came from WithLogger: login failures are logged too
	tracer    Tracer                 // nil: no tracing
	trace     fetchTracer            // a cache of its own's fetches, to tracer
	slow      slowFetch              // a cache of its own's slow-fetch warning

	deriveUser bool
	mgmtScope  string
	lookup     *userLookup            // the management-scope lookup of a derived user name
	user       atomic.Pointer[string] // the derived user name, once known

	// shared: the credential, cache and lookup come from the registry (see
	// shared.go); sub is this Connector's subscription to the cache's
	// events; closed makes Close release them once.
	shared *sharedIdentity
	sub    *eventSub
	closed atomic.Bool

	current atomic.Pointer[pqEntry]

	refused atomic.Pointer[refusal] // see refusal

	tls tlsUpgrade // a require or verify-ca verified as verify-full, for the hint
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
)

// pqEntry is a pq connector configured with one token. Connects share it
// until the token changes, so the per-connect work is a struct copy.
type pqEntry struct {
	token, user string
	cfg         pq.Config // what pqc was built from: the token as Password, the role as User
	pqc         *pq.Connector
}

// NewConnector parses dsn — a postgres:// URL or a key=value string, with
// pgentra's azure_* keys (see the package documentation) — and builds the
// credential and the token cache its connections will use. Nothing is
// dialed and no token is fetched until the first Connect.
//
// Connectors whose credential settings are the same (the azure_* keys, the
// scope, the environment variables the credential reads, and options
// WithClientOptions — its Transport the very same value; of its
// TracingProvider only whether one is set, and the first Connector's is
// used — and WithDisableInstanceDiscovery) share one credential and token
// cache in the process, so N pools of one identity make one token request per token
// lifetime, not N; the last of them to Close closes the cache. A Connector
// given WithCredential, WithTokenCache or WithTokenCacheOptions gets no shared
// one: it keeps what it was given. WithTracer does not keep Connectors
// apart (see WithTracer).
//
// An empty dsn uses Azure Service Connector's AZURE_POSTGRESQL_* variables,
// or else pq's PG* variables. Service Connector always writes
// sslmode=require, which checks no certificate; from that variable require
// and verify-ca are verified as verify-full (Azure's certificates chain to
// public roots and name the server). So are they for a host in Azure's
// database domains (*.postgres.database.azure.com, the China and US Gov
// clouds', *.postgres.cosmos.azure.com), unless azure_allow_insecure_tls=true.
// Elsewhere the sslmode is kept; require or verify-ca to a non-local host,
// and PQGO_DEBUG=1 (pq then prints the token to stderr), are logged once as
// warnings (to WithLogger's logger, else slog.Default()). sslmode=pqgo-<key> (a tls.Config registered with
// pq.RegisterTLSConfig) is refused for a host that is not local, like
// disable, allow and prefer, unless azure_allow_insecure_tls=true.
//
// The DSN is parsed once, by pq.NewConfig; what pq reads is what is dialed.
// See the package documentation for pgentra's keys and for pq's quirks.
func NewConnector(dsnString string, opts ...Option) (*Connector, error) {
	o := options{getenv: os.Getenv}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.checkConflicts(); err != nil {
		return nil, err
	}
	p, err := parseDSN(dsnString, o.getenv)
	if err != nil {
		return nil, err
	}
	cfg := p.cfg
	tlsd, err := applyTLSPolicy(&cfg, p.settings.allowInsecureTLS, p.serviceConnector)
	if err != nil {
		return nil, err
	}
	s := p.settings
	scope := s.scope
	if scope == "" {
		scope = token.ScopeForHost(cfg.Host)
	}
	mgmtScope := clouds.ForScope(scope).ManagementScope
	c := &Connector{
		redacted:   dsn.Describe(cfg, p.userGiven),
		scope:      scope,
		credKind:   s.credential,
		logger:     o.logger,
		explicit:   o.logger != nil,
		tracer:     o.tracer,
		deriveUser: !p.userGiven,
		mgmtScope:  mgmtScope,
		lookup:     &userLookup{},
		tls:        tlsd.upgrade,
	}
	if c.logger == nil {
		c.logger = defaultLogger(o.getenv)
	}
	c.warnConfig(&cfg, tlsd.warning, o.getenv)
	cfg.Password = ""
	c.base = cfg
	switch {
	case o.cache != nil:
		c.cache, c.scope, c.cred, c.credKind = o.cache, o.cache.Scope(), o.credential, "custom token cache"
		if c.cred == nil {
			c.cred = tokenx.Credential(o.cache) // for the user-name lookup: a shared cache's credential is the one to ask
		}
	default:
		cred := o.credential
		if cred != nil {
			c.credKind = "custom credential"
		} else if key, ok := identityKey(s, scope, &o, o.getenv); ok {
			if err := c.useShared(key, s, scope, &o); err != nil {
				return nil, err
			}
			return c, nil
		} else if cred, err = newCredential(s, scope, &o, o.getenv); err != nil {
			return nil, err
		}
		c.cred = cred
		c.slow = slowFetch{cred: cred, credKind: c.credKind, warn: c.warnSlow}
		topts := []token.Option{token.WithRefreshMargin(s.refreshMargin), token.WithEventHandler(c.logEvent)}
		if c.tracer != nil {
			topts = append(topts, token.WithFetchContext(c.traceTokenStart))
		}
		c.cache, c.ownsCache = token.NewCache(cred, scope, append(topts, o.tokenOptions...)...), true
		c.trace = fetchTracer{scope: scope, credKind: c.credKind, cache: c.cache}
	}
	return c, nil
}

// Connect opens one physical connection: a token from the cache (usually no
// I/O), pq's login with it as the password, and one retry with a new token
// if the server refuses a cached one (not while the last refusal this
// Connector met was of the newest token and no login has worked since: a
// new one would not fare better). The retry never sends
// the refused token again: when the credential hands it back from its own
// cache, the server's refusal is returned instead. It returns pq's own
// connection, so pq.ConnectorWithNotificationHandler, notices, COPY and
// *pq.Error work as with pq alone; the token pq kept in it as the password
// is blanked once the login is done. ctx bounds the whole attempt: token,
// user name, dial, TLS and login.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	var conn driver.Conn
	err := c.withLogin(ctx, func(ctx context.Context, e *pqEntry) error {
		cn, err := c.dial(ctx, e)
		if err == nil {
			pqinternal.ForgetPassword(cn)
			conn = cn
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// withLogin runs the Connector's login policy around attempt, which performs
// one login with e (the base config with a token as the password and the role
// as the user) and returns the server's error unchanged. The policy: a token
// from the cache, the role (given or derived), one retry with a new token when
// the server refuses a cached one, or refuses as expired one just fetched
// whose exp is still ahead here (the credential's own cache may have served
// it: clock skew) — unless the last refusal was of the newest token and no
// login has worked since (the refused-token marker: a misconfigured pool, or
// pools sharing a token cache, must not refresh each other's new tokens on
// every connect) — and the hints. Connect and Listener both log in through it, so they behave alike.
//
// The retry's token comes from token.Cache.Refresh, which asks the
// credential to bypass its own cache (MSAL keeps managed-identity and
// service-principal tokens for hours). One token is never sent twice: if
// the credential hands the refused token back, there is no second login and
// the server's refusal is returned (with a clock-skew hint when the server
// said "expired" of a token whose exp is still ahead here). If no new token
// can be had, the server's refusal is returned joined with the credential's
// error (or with token.ErrRefreshLimited while the cache rate-limits
// refusal-driven refreshes). A token refused as expired that expired while
// its login was in flight (it had time left when the login started) is
// always retried once with a new token and never marked refused: the
// connect was slow, nothing is misconfigured.
func (c *Connector) withLogin(ctx context.Context, attempt func(ctx context.Context, e *pqEntry) error) (err error) {
	if c.tracer != nil {
		var tr *connectTrace
		ctx, tr = c.traceConnectStart(ctx)
		defer func() { c.traceConnectEnd(ctx, tr, err) }()
	}
	tok, fetched, err := tokenx.Acquire(ctx, c.cache)
	if err != nil {
		return c.tokenError(ctx, err)
	}
	if fetched && c.tracer != nil {
		traceOf(ctx).fetched = true
	}
	if len(tok.Token) > maxPasswordLen {
		return c.tooLarge(tok)
	}
	if r := c.refused.Load(); r != nil && r.expired != nil && r.token == tok.Token {
		// The server said this very token has expired: it never becomes
		// valid again, so don't send it; the cache moves on by itself.
		return c.connectError(ctx, tok, r.user, r.expired)
	}
	user, err := c.login(ctx, tok, attempt)
	if err == nil {
		if r := c.refused.Load(); r != nil {
			c.refused.CompareAndSwap(r, nil) // the role was fixed: retries are useful again
		}
		return nil
	}
	if !isAuthFailure(err) || ctx.Err() != nil {
		return c.connectError(ctx, tok, user, err)
	}
	// A token that expired while its login was in flight says nothing about the
	// role or the credential: always worth one retry with a new token.
	inFlight := expiredWhileInFlight(err)
	if !inFlight && (c.refused.Load() != nil || fetched && !c.skewed(err, tok)) {
		c.markRefused(tok, user, err)
		return c.connectError(ctx, tok, user, err)
	}
	// The server refused a token we had cached: it may have been revoked, or
	// the server's clock may disagree. Or it refused as expired a token just
	// fetched whose exp is still ahead here: the credential may have served
	// it from its own cache (MSAL's managed-identity cache is process-wide),
	// judging expiry by this machine's clock. Replace it (only if
	// no newer one replaced it meanwhile) and try once with a new one.
	c.debug(ctx, "pgentra: login refused with a cached token; retrying once with a new token", slog.String("user", user), slog.String("error", errorText(err)))
	next, rerr := c.refreshFor(ctx, tok.Token)
	if rerr != nil {
		return c.connectError(ctx, tok, user, retryFailed(err, c.refreshError(ctx, rerr)))
	}
	if next.Token == tok.Token {
		c.debug(ctx, "pgentra: the credential handed back the refused token; not retrying with it", slog.String("user", user))
		c.markRefused(tok, user, err)
		return c.connectError(ctx, tok, user, err)
	}
	if len(next.Token) > maxPasswordLen {
		// Keep the server's refusal reachable (errors.As *pq.Error), as for any
		// other retry that could not be made.
		return c.connectError(ctx, tok, user, retryFailed(err, c.tooLarge(next)))
	}
	tok = next
	if c.tracer != nil {
		traceOf(ctx).retried = true
	}
	if user, err = c.login(ctx, tok, attempt); err == nil {
		return nil
	}
	if isAuthFailure(err) && ctx.Err() == nil && !expiredWhileInFlight(err) {
		c.markRefused(tok, user, err) // the newest token there is
	}
	return c.connectError(ctx, tok, user, err)
}

func (c *Connector) tooLarge(tok azcore.AccessToken) error {
	return fmt.Errorf("%w: %s returned %d bytes, PostgreSQL accepts at most %d (scope %q)",
		ErrTokenTooLarge, credentialName(c.cred, c.credKind), len(tok.Token), maxPasswordLen, c.scope)
}

// login makes one attempt with tok as the role it maps to, and returns that
// role for the error message.
func (c *Connector) login(ctx context.Context, tok azcore.AccessToken, attempt func(context.Context, *pqEntry) error) (string, error) {
	user, err := c.userFor(ctx, tok)
	if err != nil {
		return "", err
	}
	e := c.entry(tok.Token, user)
	start := time.Now()
	if c.tracer != nil {
		err = c.traceLogin(ctx, traceOf(ctx), user, func(ctx context.Context) error { return attempt(ctx, e) })
	} else {
		err = attempt(ctx, e)
	}
	if err != nil {
		err = checkInFlight(err, tok, start, time.Now())
	}
	return user, err
}

// dial is Connect's attempt: pq's login with e, bounded as a whole by ctx.
func (c *Connector) dial(ctx context.Context, e *pqEntry) (driver.Conn, error) {
	pqc := *e.pqc // a copy: the dialer below is this attempt's own
	if ctx.Done() == nil {
		conn, err := pqc.Connect(ctx)
		if err != nil {
			return nil, err // not pq's typed nil
		}
		return conn, nil
	}
	d := &connectDialer{ctx: ctx}
	pqc.Dialer(d)
	conn, err := pqc.Connect(ctx)
	if err != nil {
		conn = nil
	}
	if d.finish() {
		// pq returns a typed nil on failure: test err, not conn.
		if err == nil {
			_ = conn.Close() // its socket is already closed
			err = ctx.Err()
		}
		return nil, fmt.Errorf("pgentra: connecting to %s: %w (%w)", c.base.Host, ctx.Err(), err)
	}
	return conn, err
}

func (c *Connector) entry(tok, user string) *pqEntry {
	if e := c.current.Load(); e != nil && e.token == tok && e.user == user {
		return e
	}
	cfg := c.base.Clone()
	cfg.Password, cfg.User = tok, user
	pqc, _ := pq.NewConnectorConfig(cfg) // never fails for a parsed config
	e := &pqEntry{token: tok, user: user, cfg: cfg, pqc: pqc}
	c.current.Store(e)
	return e
}

// userFor returns the role to log in as: the DSN's user, or the one derived
// from the token (once per Connector). A token that names no principal is
// looked up with a management-scope token of the same credential through
// c.lookup: single-flight, bounded by ctx for this caller only, remembered
// per identity when it names nobody either, backed off after a failure.
func (c *Connector) userFor(ctx context.Context, tok azcore.AccessToken) (string, error) {
	if !c.deriveUser {
		return c.base.User, nil
	}
	if u := c.user.Load(); u != nil {
		return *u, nil
	}
	claims, u, err := nameInToken(tok)
	if err != nil {
		return "", err
	}
	if u == "" {
		if c.cred == nil {
			return "", noPrincipalError(claims)
		}
		if u, err = c.lookup.name(ctx, claims, c.cred, c.credKind, c.mgmtScope); err != nil {
			return "", err
		}
	}
	if c.user.CompareAndSwap(nil, &u) {
		c.debug(ctx, "pgentra: user derived from the access token", slog.String("user", u))
	}
	return *c.user.Load(), nil
}

// tokenError explains a failure to get a token. When the caller's context
// ended the wait, the cache's error says so already; for a credential
// pgentra built, the identity endpoint's last answer to a failed request
// (if any) is added, with its hint.
func (c *Connector) tokenError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		n, ok := c.cred.(*namedCredential)
		if !ok {
			return err
		}
		last := n.last.get()
		if last == nil {
			return err
		}
		return newTokenError(c.cred, c.credKind, &waitError{err: err, last: *last})
	}
	return newTokenError(c.cred, c.credKind, err)
}

func (c *Connector) connectError(ctx context.Context, tok azcore.AccessToken, user string, err error) error {
	if user == "" || ctx.Err() != nil {
		return err // user derivation failed, or ctx ended: already explained
	}
	in := hintInput{User: user, Given: !c.deriveUser, Scope: c.scope, Token: tok.Token, Port: c.base.Port, Host: c.base.Host, TLS: c.tls}
	if in.Given && isNoRole(err) {
		in.TokenRole = c.tokenRole(ctx, tok)
	}
	le := &LoginError{User: user, Derived: c.deriveUser, Principal: principalOf(tok.Token), Err: err}
	le.setHint(diagnose(err, in))
	c.expiryHint(le, tok.Token)
	if c.explicit {
		c.logger.LogAttrs(ctx, slog.LevelWarn, "pgentra: login failed", slog.String("error", le.Error()))
	}
	return le
}

// tokenRoleWait bounds the lookup of the token's role for a hint: the login
// has failed already, the hint must not hold its error back for long.
const tokenRoleWait = 15 * time.Second

// tokenRole is the role tok maps to, for the hint of a refused given user:
// the name in the token, else, for a credential pgentra built, the
// Connector's management-scope user lookup (memoised per identity; the one
// call site of that lookup for hints); "" when neither says.
func (c *Connector) tokenRole(ctx context.Context, tok azcore.AccessToken) string {
	claims, name, err := nameInToken(tok)
	if err != nil || name != "" || claims.IdentityType == "user" {
		return name
	}
	// Only with a credential pgentra built: a custom one may serve one
	// scope only, and a refused pool must not call it twice per refusal.
	if _, ok := c.cred.(*namedCredential); !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, tokenRoleWait)
	defer cancel()
	name, err = c.lookup.name(ctx, claims, c.cred, c.credKind, c.mgmtScope)
	if err != nil {
		return ""
	}
	return name
}

// isNoRole reports a refusal because no role of that name maps to the
// token's identity (28P01).
func isNoRole(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "28P01" || strings.HasPrefix(pe.Message, pgPasswordFail))
}

// TokenCache returns the cache the Connector takes its tokens from: hand its
// token to a tool that takes a password (psql, pg_dump), or share it with
// another pool through WithTokenCache. The Connector closes it on Close
// unless it came from WithTokenCache; a cache that Connectors built from the
// same identity settings share (see NewConnector) is closed by the last of
// them, so don't Close it yourself.
func (c *Connector) TokenCache() *token.Cache { return c.cache }

// Driver returns the pgentra Driver.
func (c *Connector) Driver() driver.Driver { return &Driver{} }

// Close stops the token cache the Connector built (not one passed with
// WithTokenCache) and a management-scope lookup of the user name in flight;
// a cache shared with other Connectors of the same identity is stopped by
// the last of them to close, and the Connector's logger gets no more of its
// events. database/sql calls it from DB.Close. Open connections are not
// affected.
func (c *Connector) Close() error {
	defer c.slow.stop() // after the cache's Close: no fetch can start one later
	if c.shared != nil {
		if !c.closed.CompareAndSwap(false, true) {
			return nil
		}
		if c.sub != nil {
			c.shared.events.unsubscribe(c.sub)
		}
		return c.shared.release()
	}
	c.lookup.close()
	if c.ownsCache {
		return c.cache.Close()
	}
	return nil
}

// String describes the Connector for logs: what pq parsed out of the DSN
// (hosts, ports, database, the user when one was given, the sslmode in
// force, run-time parameters), the scope and the credential kind. It is
// built from the parsed config, never from the string, and never shows a
// password, a token or an sslkey.
func (c *Connector) String() string {
	return fmt.Sprintf("pgentra.Connector{dsn: %q, scope: %q, credential: %q}", c.redacted, c.scope, c.credKind)
}

// GoString makes %#v print String() too: the Connector's fields include
// pq's parsed config, whose run-time parameters or inline sslkey (PEM of a
// private key with sslinline) must not reach a log.
func (c *Connector) GoString() string { return c.String() }

func (c *Connector) debug(ctx context.Context, msg string, attrs ...slog.Attr) {
	if c.logger.Enabled(ctx, slog.LevelDebug) {
		c.logger.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
	}
}

// slowFetchAfter is how long a fetch that callers wait for may run before a
// warning says so (IMDS retries for up to about 97 s).
var slowFetchAfter = 5 * time.Second

// logEvent is the token cache's event handler, per Connector: debug logs;
// for a cache of its own also the slow-fetch warning and the tracer's fetch
// ends (a shared cache does those once per fetch, in sharedIdentity.handle).
func (c *Connector) logEvent(ev token.Event) {
	if c.shared == nil {
		switch ev.Kind {
		case token.FetchStart:
			c.slow.arm(ev)
		case token.FetchEnd, token.FetchFailed:
			c.slow.stop()
			c.trace.end(ev)
		}
	}
	ctx := context.Background()
	if !c.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	c.logger.LogAttrs(ctx, slog.LevelDebug, "pgentra: token cache", slog.Any("event", ev))
}

// traceTokenStart is the WithFetchContext function of a cache of the
// Connector's own.
func (c *Connector) traceTokenStart(ctx context.Context, ev token.Event) context.Context {
	return c.trace.start(ctx, ev, []Tracer{c.tracer})
}

// warnSlow logs a Connector's own cache's slow-fetch warning.
func (c *Connector) warnSlow(log func(*slog.Logger)) { log(c.logger) }

// slowFetch warns once if a fetch callers wait for (FetchStart; a
// background refresh is RefreshStart) has not ended after slowFetchAfter:
// one timer per cache, so one warning per fetch however many Connectors
// share the cache.
type slowFetch struct {
	cred     azcore.TokenCredential
	credKind string
	warn     func(log func(*slog.Logger)) // calls log with each logger to warn
	timer    atomic.Pointer[time.Timer]
}

// arm starts the fetch's timer (replacing one left over).
func (w *slowFetch) arm(ev token.Event) {
	scope, start := ev.Scope, time.Now()
	t := time.AfterFunc(slowFetchAfter, func() {
		waited := time.Since(start).Round(time.Millisecond)
		w.warn(func(l *slog.Logger) {
			l.LogAttrs(context.Background(), slog.LevelWarn, "pgentra: still waiting for an access token from the credential; connects wait for it",
				slog.String("credential", credentialName(w.cred, w.credKind)), slog.String("scope", scope), slog.Duration("waited", waited))
		})
	})
	if old := w.timer.Swap(t); old != nil {
		old.Stop()
	}
}

// stop stops the timer: the fetch ended, or the cache was closed.
func (w *slowFetch) stop() {
	if t := w.timer.Swap(nil); t != nil {
		t.Stop()
	}
}

// defaultLogger is the logger of a Connector without WithLogger:
// slog.Default(), or with PGENTRA_LOG=debug a debug-level text logger on
// stderr. It is looked up per Connector, so a program that sets its default
// logger before opening the database is heard.
func defaultLogger(getenv func(string) string) *slog.Logger {
	if strings.EqualFold(strings.TrimSpace(getenv("PGENTRA_LOG")), "debug") {
		return debugLogger()
	}
	return slog.Default()
}

// debugLogger is PGENTRA_LOG=debug's logger, one for the process: a warning
// of a cache that Connectors share goes to each distinct logger once.
var debugLogger = sync.OnceValue(func() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
})

// warnConfig logs, once per Connector, what in the configuration may leak
// the token: PQGO_DEBUG=1 (pq prints each connection's configuration,
// password = token included, to stderr) and tlsWarning, the TLS policy's
// warning (weakTLSWarning) for an sslmode kept as written that does not
// verify the server's name.
func (c *Connector) warnConfig(cfg *pq.Config, tlsWarning string, getenv func(string) string) {
	ctx := context.Background()
	if getenv("PQGO_DEBUG") == "1" {
		c.logger.LogAttrs(ctx, slog.LevelWarn, "pgentra: PQGO_DEBUG=1 makes lib/pq print every connection's configuration to stderr, access token included (it is the password); unset it outside a debugging session")
	}
	if tlsWarning != "" {
		c.logger.LogAttrs(ctx, slog.LevelWarn, tlsWarning, slog.String("host", cfg.Host))
	}
}

// warnRefused logs, once until a login works again, that logins are refused
// with the newest token there is, so they are not retried: a role missing or
// misnamed, or a server that does not accept this identity.
func (c *Connector) warnRefused(user string, err error) {
	_, _, reason := classify(context.Background(), err)
	c.logger.LogAttrs(context.Background(), slog.LevelWarn, "pgentra: logins are refused with the newest token the credential gives; not retrying them until one works",
		slog.String("user", user), slog.String("reason", string(reason)), slog.String("error", errorText(err)))
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
