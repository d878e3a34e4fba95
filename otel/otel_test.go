package pgentraotel_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/pgtest"
	pgentraotel "github.com/pgentra/pgentra/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

var pg pgtest.Lazy

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// azTracing adapts an OpenTelemetry tracer provider to azcore's tracing, as
// the azotel module does, so that azidentity's spans are recorded too.
func azTracing(tp trace.TracerProvider) tracing.Provider {
	return tracing.NewProvider(func(name, version string) tracing.Tracer {
		t := tp.Tracer(name)
		return tracing.NewTracer(func(ctx context.Context, spanName string, _ *tracing.SpanOptions) (context.Context, tracing.Span) {
			ctx, s := t.Start(ctx, spanName)
			return ctx, tracing.NewSpan(tracing.SpanImpl{End: func() { s.End() }})
		}, nil)
	}, nil)
}

// TestRealSDK records, on the OpenTelemetry SDK (ManualReader and a span
// recorder), a successful connect that fetched its token, a refused login
// and the token fetch, against the emulator; no recorded attribute, status
// or event holds the token.
func TestRealSDK(t *testing.T) {
	env, err := emulator.Start(context.Background(), emulator.Options{PG: pg.Get(t), TokenLifetime: entra.ShortTestLifetime})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mi, err := env.Tenant.AddUserAssignedIdentity(fmt.Sprintf("id-otel-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(ctx, mi, false); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	tracer := pgentraotel.NewTracer(pgentraotel.WithMeterProvider(mp), pgentraotel.WithTracerProvider(tp))

	co := env.ClientOptions()
	co.TracingProvider = azTracing(tp)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: co, ID: azidentity.ClientID(mi.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := driver.NewConnector(env.DSN(""), driver.WithCredential(cred), driver.WithTracer(tracer))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	qctx, parent := tp.Tracer("test").Start(ctx, "query")
	if err := db.PingContext(qctx); err != nil {
		t.Fatal(err)
	}
	parent.End()
	tok, err := c.TokenCache().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A refused login: the same identity as a role it does not map to. Its
	// token comes from the shared cache, so the refusal is retried once with a
	// new token (a retry fetch), and refused again.
	refused, err := driver.NewConnector(env.DSN("no_such_role"), driver.WithTokenCache(c.TokenCache()), driver.WithTracer(tracer))
	if err != nil {
		t.Fatal(err)
	}
	rdb := sql.OpenDB(refused)
	defer rdb.Close()
	var pe *pq.Error
	if err := rdb.PingContext(ctx); !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("ping as a role that does not map: %v; want 28P01", err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	port := int64(env.Front.Port())
	// The connects: one ok, one refused after a retry.
	h, _ := got[pgentraotel.ConnectDuration].(metricdata.Histogram[float64])
	want := map[string]bool{"ok": false, "refused": false}
	retried := map[string]bool{"ok": false, "refused": true}
	for _, dp := range h.DataPoints {
		o, _ := dp.Attributes.Value(pgentraotel.AttrOutcome)
		p, _ := dp.Attributes.Value(pgentraotel.AttrServerPort)
		a, _ := dp.Attributes.Value(pgentraotel.AttrServerAddr)
		r, ok := dp.Attributes.Value(pgentraotel.AttrRetried)
		if dp.Count == 1 && p.AsInt64() == port && a.AsString() == emulator.Host && ok && r.AsBool() == retried[o.AsString()] {
			want[o.AsString()] = true
		}
	}
	if !want["ok"] || !want["refused"] {
		t.Errorf("%s: %+v; want one ok and one refused (retried) connect to %s:%d", pgentraotel.ConnectDuration, h.DataPoints, emulator.Host, port)
	}
	cnt, _ := got[pgentraotel.LoginRefusals].(metricdata.Sum[int64])
	if len(cnt.DataPoints) != 1 || cnt.DataPoints[0].Value != 2 ||
		!has(cnt.DataPoints[0].Attributes, pgentraotel.AttrStatusCode, "28P01") || !has(cnt.DataPoints[0].Attributes, pgentraotel.AttrReason, "no_role") {
		t.Errorf("%s: %+v; want two 28P01 no_role (the login and its retry)", pgentraotel.LoginRefusals, cnt.DataPoints)
	}
	fh, _ := got[pgentraotel.TokenFetchDuration].(metricdata.Histogram[float64])
	kinds := map[string]uint64{}
	for _, dp := range fh.DataPoints {
		if has(dp.Attributes, pgentraotel.AttrOutcome, "ok") {
			k, _ := dp.Attributes.Value(pgentraotel.AttrKind)
			kinds[k.AsString()] += dp.Count
		}
	}
	if len(fh.DataPoints) != 2 || kinds["blocking"] != 1 || kinds["retry"] != 1 {
		t.Errorf("%s: %+v; want one ok blocking fetch and one ok retry fetch", pgentraotel.TokenFetchDuration, fh.DataPoints)
	}
	g, _ := got[pgentraotel.TokenExpiry].(metricdata.Gauge[float64])
	if len(g.DataPoints) != 1 || g.DataPoints[0].Value <= 0 || g.DataPoints[0].Value > entra.ShortTestLifetime.Seconds()+60 {
		t.Errorf("%s: %+v; want one cache, its token valid for a while", pgentraotel.TokenExpiry, g.DataPoints)
	}

	// Spans: connect under the query's span, token fetch and login under the
	// connect, azidentity's span under the token fetch.
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	if len(byName[pgentraotel.SpanConnect]) != 2 || len(byName[pgentraotel.SpanLogin]) != 3 || len(byName[pgentraotel.SpanTokenFetch]) != 2 {
		t.Fatalf("spans: %v; want 2 connects, 3 logins, 2 token fetches", names(spans.Ended()))
	}
	conn := byName[pgentraotel.SpanConnect][0]
	if conn.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("the first pgentra.connect is not a child of the caller's span")
	}
	fetch := byName[pgentraotel.SpanTokenFetch][0]
	if fetch.Parent().SpanID() != conn.SpanContext().SpanID() {
		t.Errorf("pgentra.token.fetch is not a child of pgentra.connect")
	}
	if byName[pgentraotel.SpanLogin][0].Parent().SpanID() != conn.SpanContext().SpanID() {
		t.Errorf("pgentra.login is not a child of pgentra.connect")
	}
	// azidentity's spans: under a token fetch, or a root span for the
	// management-scope lookup of the derived user name (it asks the credential
	// directly, on a context of its own).
	parents := map[trace.SpanID]string{}
	for _, f := range spans.Ended() {
		parents[f.SpanContext().SpanID()] = f.Name()
	}
	underFetch := 0
	for _, s := range byName["ManagedIdentityCredential.GetToken"] {
		switch parents[s.Parent().SpanID()] {
		case pgentraotel.SpanTokenFetch:
			underFetch++
		case "":
			if s.Parent().IsValid() {
				t.Errorf("azidentity's span %s has an unknown parent", s.Name())
			}
		default:
			t.Errorf("azidentity's span %s is under %s", s.Name(), parents[s.Parent().SpanID()])
		}
	}
	if underFetch != 2 {
		t.Errorf("%d of azidentity's spans under a pgentra.token.fetch, want 2 (one per fetch)", underFetch)
	}
	// No token anywhere.
	leak := func(where, s string) {
		if strings.Contains(s, tok.Token) || strings.Contains(s, tok.Token[:40]) {
			t.Errorf("%s holds the token", where)
		}
	}
	for _, s := range spans.Ended() {
		for _, a := range s.Attributes() {
			leak(s.Name()+" attribute "+string(a.Key), a.Value.String())
		}
		leak(s.Name()+" status", s.Status().Description)
		for _, e := range s.Events() {
			leak(s.Name()+" event", fmt.Sprint(e))
		}
	}
	leak("metrics", fmt.Sprintf("%+v", rm))
}

func has(set attribute.Set, k attribute.Key, v string) bool {
	got, ok := set.Value(k)
	return ok && got.String() == v
}

func names(ss []sdktrace.ReadOnlySpan) []string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name())
	}
	return n
}
