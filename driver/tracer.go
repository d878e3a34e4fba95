package driver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/token"
)

// A Tracer sees what a Connector does, for metrics and traces: each connect
// (a Connect, or a Listener's login), each login attempt within it, and each
// token fetch of the Connector's token cache. Each Start method may return a
// new context (carrying a span, say); the matching End gets that context.
// Nothing it is given holds the token, a password or a client secret.
//
// Methods are called synchronously on the connecting goroutine (token
// fetches: see TraceTokenStart) and may be called concurrently; they should be
// cheap. The package pgentraotel (module github.com/pgentra/pgentra/otel)
// implements it with OpenTelemetry. Pass a Tracer with WithTracer.
type Tracer interface {
	// TraceConnectStart is called when a connect begins, with the
	// caller's context (database/sql passes the query's).
	TraceConnectStart(ctx context.Context, d ConnectStartData) context.Context
	// TraceConnectEnd is called once per connect, with its outcome.
	TraceConnectEnd(ctx context.Context, d ConnectEndData)
	// TraceLoginStart is called before each login attempt (the first, and
	// a retry with a new token after a refusal), with the connect's context.
	TraceLoginStart(ctx context.Context, d LoginStartData) context.Context
	// TraceLoginEnd is called after each login attempt.
	TraceLoginEnd(ctx context.Context, d LoginEndData)
	// TraceTokenStart is called when the Connector's token cache starts a
	// call to the credential, on the goroutine of the caller that started
	// it (a connect, whose context it gets), also for a background refresh.
	// The values of the context it returns reach the credential's GetToken
	// call (azcore's tracing finds its parent span there), not its
	// cancellation. It is not called for a cache passed with WithTokenCache.
	// A cache that Connectors of one identity share (see NewConnector)
	// reports each fetch once to each distinct Tracer among them, with the
	// context of the caller that started it, whichever Connector that
	// caller came through.
	TraceTokenStart(ctx context.Context, d TokenStartData) context.Context
	// TraceTokenEnd is called when that call ends, with the context
	// TraceTokenStart returned, on the cache's goroutine. A fetch cut short
	// by the cache's Close reports no end.
	TraceTokenEnd(ctx context.Context, d TokenEndData)
}

// Outcome says how a connect or a login attempt ended.
type Outcome string

// The outcomes: stable names for metric labels.
const (
	OutcomeOK           Outcome = "ok"            // logged in
	OutcomeRefused      Outcome = "refused"       // the server answered with an error (a *pq.Error)
	OutcomeTokenError   Outcome = "token_error"   // no usable token (the credential failed, or the token is too large)
	OutcomeTLSError     Outcome = "tls_error"     // the TLS handshake or the certificate check failed
	OutcomeNetworkError Outcome = "network_error" // dial, I/O or protocol failure before the server's answer
	OutcomeCanceled     Outcome = "canceled"      // the caller's context ended
)

// Reason says why the server refused a login, from the fixed parts of Azure's
// messages and the SQLSTATE: stable names for metric labels.
type Reason string

// The reasons.
const (
	ReasonNone          Reason = ""               // not a refusal
	ReasonExpired       Reason = "expired"        // the server saw an expired token (clock skew)
	ReasonAudience      Reason = "audience"       // the token is for another resource (azure_scope)
	ReasonInvalidFormat Reason = "invalid_format" // the password was not an Entra access token
	ReasonNoRole        Reason = "no_role"        // no role of that name (and type) maps to the token's identity
	ReasonValidation    Reason = "validation"     // Azure's generic validation failure (tenant, authority, MFA)
	ReasonTLSRequired   Reason = "tls_required"   // the server wants an encrypted connection
	ReasonOther         Reason = "other"          // any other refusal
)

// ConnectStartData describes a connect about to begin.
type ConnectStartData struct {
	ServerAddress string // the host dialed (the first of a multi-host DSN)
	ServerPort    int
	Scope         string // the token scope
}

// ConnectEndData is the end of a connect.
type ConnectEndData struct {
	ConnectStartData
	Duration time.Duration
	Outcome  Outcome
	// Retried is true when a refused login was tried again with a new token.
	Retried bool
	// TokenFetched is true when the connect waited for a token from the
	// credential rather than taking the cached one.
	TokenFetched bool
	Role         string // the role logged in as (or tried), "" before it was known
	SQLSTATE     string // the server's error code, when it answered with one
	Reason       Reason // for a refusal
	Err          error  // nil on success; never holds the token
}

// LoginStartData describes one login attempt.
type LoginStartData struct {
	ServerAddress string
	ServerPort    int
	Role          string
	Attempt       int // 1, or 2 for the retry with a new token
}

// LoginEndData is the end of a login attempt.
type LoginEndData struct {
	LoginStartData
	Duration time.Duration
	Outcome  Outcome
	SQLSTATE string
	Reason   Reason
	Err      error
}

// FetchKind says why the token cache called the credential.
type FetchKind string

// The fetch kinds.
const (
	FetchBlocking   FetchKind = "blocking"   // callers wait: no valid token
	FetchBackground FetchKind = "background" // the token passed its refresh point; callers are served meanwhile
	FetchRetry      FetchKind = "retry"      // a login with a cached token was refused: a new token bypassing the credential's cache
)

// FetchOutcome says how a token fetch ended.
type FetchOutcome string

// The fetch outcomes.
const (
	FetchOK        FetchOutcome = "ok"
	FetchError     FetchOutcome = "error"
	FetchThrottled FetchOutcome = "throttled" // the identity endpoint answered 429 (token.ThrottledError)
	FetchAbandoned FetchOutcome = "abandoned" // no answer within the fetch timeout
)

// TokenStartData describes a call to the credential.
type TokenStartData struct {
	Scope      string
	Credential string // the credential kind: "managed_identity", "custom credential", …
	Kind       FetchKind
	// Cache is the cache fetching; its ExpiresOn (never its token) feeds an
	// expiry gauge.
	Cache *token.Cache
}

// TokenEndData is the end of a call to the credential.
type TokenEndData struct {
	TokenStartData
	Duration  time.Duration
	Outcome   FetchOutcome
	ExpiresOn time.Time // of the new token (Outcome ok)
	Err       error     // never holds the token
}

// WithTracer makes the Connector (or Listener) report its connects, logins
// and token fetches to t. Without it nothing is traced and nothing is spent
// on tracing. Connectors of one identity share a token cache with a tracer
// too; give them the same t (a Tracer value that can't be compared with ==
// gets no shared cache): each distinct tracer among them sees every fetch
// of the shared cache, so two tracers recording to one meter count it
// twice.
func WithTracer(t Tracer) Option {
	return func(o *options) { o.tracer = t }
}

// connectTrace is one connect's state for the Tracer; nil without one.
type connectTrace struct {
	tracer  Tracer // the Connector's: a shared cache's fetch takes its context
	start   time.Time
	ctx     context.Context // the Tracer's connect context
	retried bool
	fetched bool
	role    string
	attempt int
}

func (c *Connector) traceStartData() ConnectStartData {
	return ConnectStartData{ServerAddress: c.base.Host, ServerPort: int(c.base.Port), Scope: c.scope}
}

// traceConnectStart begins a connect's trace; ctx is then the Tracer's.
func (c *Connector) traceConnectStart(ctx context.Context) (context.Context, *connectTrace) {
	tr := &connectTrace{tracer: c.tracer, start: time.Now()}
	if ctx2 := c.tracer.TraceConnectStart(ctx, c.traceStartData()); ctx2 != nil {
		ctx = ctx2
	}
	tr.ctx = ctx
	return context.WithValue(ctx, traceKey{}, tr), tr
}

func (c *Connector) traceConnectEnd(ctx context.Context, tr *connectTrace, err error) {
	d := ConnectEndData{ConnectStartData: c.traceStartData(), Duration: time.Since(tr.start), Retried: tr.retried, TokenFetched: tr.fetched, Role: tr.role, Err: err}
	d.Outcome, d.SQLSTATE, d.Reason = classify(ctx, err)
	c.tracer.TraceConnectEnd(tr.ctx, d)
}

// traceLogin wraps one login attempt.
func (c *Connector) traceLogin(ctx context.Context, tr *connectTrace, role string, attempt func(context.Context) error) error {
	tr.attempt++
	tr.role = role
	s := LoginStartData{ServerAddress: c.base.Host, ServerPort: int(c.base.Port), Role: role, Attempt: tr.attempt}
	lctx := c.tracer.TraceLoginStart(ctx, s)
	if lctx == nil {
		lctx = ctx
	}
	start := time.Now()
	err := attempt(ctx) // the login itself runs on the connect's context
	d := LoginEndData{LoginStartData: s, Duration: time.Since(start), Err: err}
	d.Outcome, d.SQLSTATE, d.Reason = classify(ctx, err)
	c.tracer.TraceLoginEnd(lctx, d)
	return err
}

// fetchTracer reports one token cache's fetches to Tracers: a Connector's
// own cache to its tracer, a shared cache (see shared.go) to each distinct
// tracer of the Connectors sharing it. Each tracer gets exactly one
// TraceTokenStart and one TraceTokenEnd per fetch, both with the context of
// the caller whose call started the fetch as the parent, whichever
// Connector that caller came through.
type fetchTracer struct {
	scope    string
	credKind string
	cache    *token.Cache // set once the cache is built, before its first fetch
}

// fetchSpans is the context a fetch's start returns (the cache hands it
// back in the fetch's end event): the values GetToken sees are those of
// the starting connect's tracer (or of the first tracer), and spans holds
// what each tracer's TraceTokenStart returned, for its TraceTokenEnd.
type fetchSpans struct {
	context.Context
	spans []fetchSpan
}

type fetchSpan struct {
	t   Tracer
	ctx context.Context
}

// start is the cache's WithFetchContext function: it reports the fetch's
// start to each of tracers (distinct, comparable values) and returns nil
// when there is none, so that GetToken sees no caller's values.
func (ft *fetchTracer) start(ctx context.Context, ev token.Event, tracers []Tracer) context.Context {
	if len(tracers) == 0 {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var starter Tracer
	if tr, _ := ctx.Value(traceKey{}).(*connectTrace); tr != nil {
		starter = tr.tracer
	}
	d := ft.startData(ev)
	fs := &fetchSpans{spans: make([]fetchSpan, 0, len(tracers))}
	for _, t := range tracers {
		v := t.TraceTokenStart(ctx, d)
		if v == nil {
			v = ctx
		}
		fs.spans = append(fs.spans, fetchSpan{t: t, ctx: v})
		if fs.Context == nil || len(tracers) > 1 && t == starter { // several: all comparable (see identityKey)
			fs.Context = v
		}
	}
	return fs
}

func (ft *fetchTracer) startData(ev token.Event) TokenStartData {
	kind := FetchBlocking
	switch {
	case ev.Refresh:
		kind = FetchRetry
	case ev.Background:
		kind = FetchBackground
	}
	return TokenStartData{Scope: ft.scope, Credential: ft.credKind, Kind: kind, Cache: ft.cache}
}

// end reports a fetch's end event (FetchEnd, FetchFailed) to the tracers
// its start reached; an event of a fetch no tracer saw start is ignored.
func (ft *fetchTracer) end(ev token.Event) {
	fs, _ := ev.Context.(*fetchSpans)
	if fs == nil {
		return
	}
	d := TokenEndData{TokenStartData: ft.startData(ev), Duration: ev.Latency, ExpiresOn: ev.ExpiresOn, Err: ev.Err, Outcome: FetchOK}
	var te *token.ThrottledError
	switch {
	case ev.Kind == token.FetchEnd:
	case ev.Abandoned:
		d.Outcome = FetchAbandoned
	case errors.As(ev.Err, &te):
		d.Outcome = FetchThrottled
	default:
		d.Outcome = FetchError
	}
	for _, s := range fs.spans {
		s.t.TraceTokenEnd(s.ctx, d)
	}
}

// classify maps a connect's or a login's error to its outcome, SQLSTATE and
// refusal reason.
func classify(ctx context.Context, err error) (Outcome, string, Reason) {
	if err == nil {
		return OutcomeOK, "", ReasonNone
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		return OutcomeRefused, string(pe.Code), refusalReason(pe)
	}
	var te *TokenError
	switch {
	case ctx.Err() != nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled, "", ReasonNone
	case errors.As(err, &te), errors.Is(err, ErrTokenTooLarge), errors.Is(err, token.ErrClosed):
		return OutcomeTokenError, "", ReasonNone
	case isTLSError(err):
		return OutcomeTLSError, "", ReasonNone
	}
	return OutcomeNetworkError, "", ReasonNone
}

// isTLSError reports a failed TLS handshake or certificate check.
func isTLSError(err error) bool {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var ae tls.AlertError
	var re *tls.RecordHeaderError
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &ae) || errors.As(err, &re) || errors.As(err, &ve) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") || strings.Contains(msg, "SSL is not enabled on the server")
}

// refusalReason names the cause of a server's error, by the same fixed texts
// as the hints (loginHint).
func refusalReason(pe *pq.Error) Reason {
	msg := pe.Message
	switch {
	case hasPrefixFold(msg, azExpired):
		return ReasonExpired
	case hasPrefixFold(msg, azAudience):
		return ReasonAudience
	case hasPrefixFold(msg, azInvalidFormat):
		return ReasonInvalidFormat
	case hasPrefixFold(msg, azValidation):
		return ReasonValidation
	case hasPrefixFold(msg, azSPUserRole),
		(hasPrefixFold(msg, azEntraUserTok) || hasPrefixFold(msg, azOldUserTok)) && hasSuffixFold(msg, azMIUserRole):
		return ReasonNoRole // a role exists, but of the wrong type for this token
	case strings.HasPrefix(msg, pgNoHBA) && (strings.HasSuffix(msg, "no encryption") || strings.HasSuffix(msg, "SSL off")):
		return ReasonTLSRequired
	case pe.Code == "28P01" || strings.HasPrefix(msg, pgPasswordFail):
		return ReasonNoRole
	}
	return ReasonOther
}

type traceKey struct{}

// traceOf returns the connect's trace state (set by traceConnectStart).
func traceOf(ctx context.Context) *connectTrace {
	tr, _ := ctx.Value(traceKey{}).(*connectTrace)
	if tr == nil {
		return &connectTrace{} // a login outside withLogin: counted nowhere
	}
	return tr
}
