// Package pgentraotel reports pgentra's connects, logins and token fetches
// to OpenTelemetry: metrics and spans. It implements driver.Tracer and lives
// in its own module, so that the pgentra module itself does not depend on
// OpenTelemetry.
//
//	db := sql.OpenDB(must(driver.NewConnector(dsn,
//		driver.WithTracer(pgentraotel.NewTracer(
//			pgentraotel.WithMeterProvider(mp),
//			pgentraotel.WithTracerProvider(tp))))))
//
// Instruments (see README.md for the table and PromQL):
//
//   - pgentra.connect.duration (histogram, s): pgentra.outcome,
//     pgentra.retried, server.address, server.port
//   - pgentra.login.refusals (counter): db.response.status_code,
//     pgentra.reason, server.address, server.port
//   - pgentra.token.fetch.duration (histogram, s): pgentra.outcome,
//     pgentra.kind, pgentra.scope
//   - pgentra.token.expiry (observable gauge, s until the cached token
//     expires): pgentra.scope, pgentra.credential
//
// Spans: pgentra.connect (a child of the caller's span: database/sql passes
// the query's context to Connect), pgentra.login per login attempt, and
// pgentra.token.fetch per call to the credential, whose context carries that
// span, so that azidentity's own HTTP spans (azotel wired through
// driver.WithClientOptions) nest under it. No attribute ever holds the
// token, a password or a client secret.
package pgentraotel

import (
	"context"
	"sync"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/token"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/pgentra/pgentra/otel"

// Instrument and span names.
const (
	ConnectDuration    = "pgentra.connect.duration"
	LoginRefusals      = "pgentra.login.refusals"
	TokenFetchDuration = "pgentra.token.fetch.duration"
	TokenExpiry        = "pgentra.token.expiry"

	SpanConnect    = "pgentra.connect"
	SpanLogin      = "pgentra.login"
	SpanTokenFetch = "pgentra.token.fetch"
)

// Attribute keys.
const (
	AttrOutcome    = attribute.Key("pgentra.outcome")
	AttrRetried    = attribute.Key("pgentra.retried")
	AttrReason     = attribute.Key("pgentra.reason")
	AttrKind       = attribute.Key("pgentra.kind")
	AttrScope      = attribute.Key("pgentra.scope")
	AttrCredential = attribute.Key("pgentra.credential")
	AttrRole       = attribute.Key("db.user") // span attribute only: a role per series would explode metrics
	AttrAttempt    = attribute.Key("pgentra.attempt")
	AttrTokenFetch = attribute.Key("pgentra.token.fetched")
	AttrStatusCode = attribute.Key("db.response.status_code")
	AttrServerAddr = attribute.Key("server.address")
	AttrServerPort = attribute.Key("server.port")
)

// An Option configures NewTracer.
type Option func(*config)

type config struct {
	mp metric.MeterProvider
	tp trace.TracerProvider
}

// WithMeterProvider sets the meter provider (default: otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithTracerProvider sets the tracer provider (default: otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// Tracer is a driver.Tracer that records OpenTelemetry metrics and spans.
// One Tracer may serve any number of Connectors and Listeners.
type Tracer struct {
	tracer   trace.Tracer
	connect  metric.Float64Histogram
	refusals metric.Int64Counter
	fetch    metric.Float64Histogram

	mu     sync.Mutex
	caches map[*token.Cache]cacheInfo // observed by the expiry gauge
}

type cacheInfo struct{ attrs metric.MeasurementOption }

var _ driver.Tracer = (*Tracer)(nil)

// NewTracer returns a Tracer on the given providers, or OpenTelemetry's
// global ones. Instrument creation errors are reported to otel.Handle and
// leave a no-op instrument, as the OpenTelemetry API does.
func NewTracer(opts ...Option) *Tracer {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	m := c.mp.Meter(ScopeName)
	t := &Tracer{tracer: c.tp.Tracer(ScopeName), caches: map[*token.Cache]cacheInfo{}}
	var err error
	// Buckets for latencies from a cached-token connect (ms) to IMDS retries (~100 s).
	buckets := metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
	if t.connect, err = m.Float64Histogram(ConnectDuration, metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of a pgentra connect: token, dial, TLS and login (with its retry)")); err != nil {
		otel.Handle(err)
	}
	if t.refusals, err = m.Int64Counter(LoginRefusals, metric.WithUnit("{refusal}"),
		metric.WithDescription("Logins the server refused, by SQLSTATE and reason")); err != nil {
		otel.Handle(err)
	}
	if t.fetch, err = m.Float64Histogram(TokenFetchDuration, metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of a call to the Azure credential for a token")); err != nil {
		otel.Handle(err)
	}
	if _, err = m.Float64ObservableGauge(TokenExpiry, metric.WithUnit("s"),
		metric.WithDescription("Seconds until the cached access token expires, per token cache"),
		metric.WithFloat64Callback(t.observeExpiry)); err != nil {
		otel.Handle(err)
	}
	return t
}

// TraceConnectStart starts the pgentra.connect span.
func (t *Tracer) TraceConnectStart(ctx context.Context, d driver.ConnectStartData) context.Context {
	ctx, _ = t.tracer.Start(ctx, SpanConnect, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(AttrServerAddr.String(d.ServerAddress), AttrServerPort.Int(d.ServerPort), AttrScope.String(d.Scope)))
	return ctx
}

// TraceConnectEnd records pgentra.connect.duration and ends the span.
func (t *Tracer) TraceConnectEnd(ctx context.Context, d driver.ConnectEndData) {
	attrs := []attribute.KeyValue{AttrOutcome.String(string(d.Outcome)), AttrRetried.Bool(d.Retried),
		AttrServerAddr.String(d.ServerAddress), AttrServerPort.Int(d.ServerPort)}
	t.connect.Record(ctx, d.Duration.Seconds(), metric.WithAttributes(attrs...))
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrOutcome.String(string(d.Outcome)), AttrRetried.Bool(d.Retried), AttrTokenFetch.Bool(d.TokenFetched))
	if d.Role != "" {
		span.SetAttributes(AttrRole.String(d.Role))
	}
	endSpan(span, d.Err, d.SQLSTATE, d.Reason)
}

// TraceLoginStart starts a pgentra.login span.
func (t *Tracer) TraceLoginStart(ctx context.Context, d driver.LoginStartData) context.Context {
	ctx, _ = t.tracer.Start(ctx, SpanLogin, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(AttrServerAddr.String(d.ServerAddress), AttrServerPort.Int(d.ServerPort), AttrRole.String(d.Role), AttrAttempt.Int(d.Attempt)))
	return ctx
}

// TraceLoginEnd counts a refusal in pgentra.login.refusals and ends the span.
func (t *Tracer) TraceLoginEnd(ctx context.Context, d driver.LoginEndData) {
	if d.Outcome == driver.OutcomeRefused {
		t.refusals.Add(ctx, 1, metric.WithAttributes(AttrStatusCode.String(d.SQLSTATE), AttrReason.String(string(d.Reason)),
			AttrServerAddr.String(d.ServerAddress), AttrServerPort.Int(d.ServerPort)))
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrOutcome.String(string(d.Outcome)))
	endSpan(span, d.Err, d.SQLSTATE, d.Reason)
}

// TraceTokenStart starts a pgentra.token.fetch span: a child of the connect
// that started the fetch, or, for a background refresh (no connect waits
// for it), a new root linked to the caller's span.
func (t *Tracer) TraceTokenStart(ctx context.Context, d driver.TokenStartData) context.Context {
	t.watch(d.Cache, d.Scope, d.Credential)
	opts := []trace.SpanStartOption{trace.WithAttributes(AttrKind.String(string(d.Kind)), AttrScope.String(d.Scope), AttrCredential.String(d.Credential))}
	if d.Kind == driver.FetchBackground {
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.LinkFromContext(ctx)))
	}
	ctx, _ = t.tracer.Start(ctx, SpanTokenFetch, opts...)
	return ctx
}

// TraceTokenEnd records pgentra.token.fetch.duration and ends the span.
func (t *Tracer) TraceTokenEnd(ctx context.Context, d driver.TokenEndData) {
	t.watch(d.Cache, d.Scope, d.Credential)
	t.fetch.Record(ctx, d.Duration.Seconds(), metric.WithAttributes(AttrOutcome.String(string(d.Outcome)), AttrKind.String(string(d.Kind)), AttrScope.String(d.Scope)))
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrOutcome.String(string(d.Outcome)))
	if d.Err != nil {
		span.SetStatus(codes.Error, d.Err.Error())
	}
	span.End()
}

// endSpan sets a failed span's status (the error text never holds the token)
// and ends it.
func endSpan(span trace.Span, err error, sqlstate string, reason driver.Reason) {
	if sqlstate != "" {
		span.SetAttributes(AttrStatusCode.String(sqlstate))
	}
	if reason != "" {
		span.SetAttributes(AttrReason.String(string(reason)))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// watch adds c to the caches the expiry gauge reports.
func (t *Tracer) watch(c *token.Cache, scope, cred string) {
	if c == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.caches[c]; !ok {
		t.caches[c] = cacheInfo{attrs: metric.WithAttributes(AttrScope.String(scope), AttrCredential.String(cred))}
	}
}

// observeExpiry reports each watched cache's time to expiry, and forgets
// caches that hold no token (closed, or invalidated: the next fetch adds
// them again).
func (t *Tracer) observeExpiry(_ context.Context, o metric.Float64Observer) error {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, info := range t.caches {
		exp, ok := c.ExpiresOn()
		if !ok {
			delete(t.caches, c)
			continue
		}
		o.Observe(exp.Sub(now).Seconds(), info.attrs)
	}
	return nil
}
