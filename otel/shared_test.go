package pgentraotel_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	pgentraotel "github.com/pgentra/pgentra/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestSharedIdentityTraced: pools of one workload identity given one
// Tracer share one token cache (one Entra request), and the fetch is
// recorded once: one pgentra.token.fetch span, a child of the connect that
// started it, and one fetch in pgentra.token.fetch.duration.
func TestSharedIdentityTraced(t *testing.T) {
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "PGUSER"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	env, err := emulator.Start(context.Background(), emulator.Options{PG: pg.Get(t), TokenLifetime: entra.ShortTestLifetime})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := env.Tenant.AddServicePrincipal(fmt.Sprintf("otel-shared-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	path, err := env.Tenant.WriteFederatedTokenFile(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	tracer := pgentraotel.NewTracer(pgentraotel.WithMeterProvider(mp), pgentraotel.WithTracerProvider(tp))
	dsn := env.DSN(p.Name, "azure_credential=workload_identity", "azure_client_id="+p.AppID,
		"azure_tenant_id="+env.Tenant.ID(), "azure_federated_token_file="+path)
	co := env.ClientOptions()
	var cache any
	for i := range 3 {
		c, err := driver.NewConnector(dsn, driver.WithClientOptions(co), driver.WithTracer(tracer))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			cache = c.TokenCache()
		} else if c.TokenCache() != cache {
			t.Fatalf("pool %d has a token cache of its own: pools given one Tracer must share the identity's", i)
		}
		db := sql.OpenDB(c)
		defer db.Close()
		qctx, parent := tp.Tracer("test").Start(ctx, fmt.Sprintf("query %d", i))
		if err := db.PingContext(qctx); err != nil {
			t.Fatalf("pool %d: %v", i, err)
		}
		parent.End()
	}
	if n := env.Authority.RequestsFor(p); n != 1 {
		t.Errorf("Entra token requests = %d for 3 pools of one identity with one Tracer, want 1", n)
	}
	var fetches []sdktrace.ReadOnlySpan
	connects := map[trace.SpanID]bool{}
	for _, s := range spans.Ended() {
		switch s.Name() {
		case pgentraotel.SpanTokenFetch:
			fetches = append(fetches, s)
		case pgentraotel.SpanConnect:
			connects[s.SpanContext().SpanID()] = true
		}
	}
	if len(fetches) != 1 || len(connects) != 3 {
		t.Fatalf("spans: %v; want 3 connects and 1 token fetch", names(spans.Ended()))
	}
	if !connects[fetches[0].Parent().SpanID()] {
		t.Errorf("pgentra.token.fetch is not a child of a pgentra.connect")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == pgentraotel.TokenFetchDuration {
				for _, dp := range h.DataPoints {
					n += dp.Count
				}
			}
		}
	}
	if n != 1 {
		t.Errorf("%s counts %d fetches, want 1", pgentraotel.TokenFetchDuration, n)
	}
}
