package pgentraotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	pgentraotel "github.com/pgentra/pgentra/otel"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestGlobalProviders: without options the Tracer records to
// OpenTelemetry's global meter and tracer providers.
func TestGlobalProviders(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	oldM, oldT := otel.GetMeterProvider(), otel.GetTracerProvider()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	t.Cleanup(func() { otel.SetMeterProvider(oldM); otel.SetTracerProvider(oldT) })

	tr := pgentraotel.NewTracer()
	start := driver.ConnectStartData{ServerAddress: "db.example.com", ServerPort: 5432}
	ctx := tr.TraceConnectStart(context.Background(), start)
	tr.TraceConnectEnd(ctx, driver.ConnectEndData{ConnectStartData: start, Duration: time.Millisecond, Outcome: driver.OutcomeOK})

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			found = found || m.Name == pgentraotel.ConnectDuration
		}
	}
	if !found {
		t.Errorf("no %s on the global meter provider", pgentraotel.ConnectDuration)
	}
	if e := spans.Ended(); len(e) != 1 || e[0].Name() != pgentraotel.SpanConnect {
		t.Errorf("spans on the global tracer provider: %d, want one %s", len(e), pgentraotel.SpanConnect)
	}
}
