package pgentraotel_test

import (
	"context"
	"encoding/base64"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/pgentra/pgentra/driver"
	pgentraotel "github.com/pgentra/pgentra/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// benchToken is a 1.5 KB JWT-shaped password (an Entra token's size); the
// benchmark role's password.
var benchToken = func() string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(`{"upn":"bench@contoso.com","aio":"`+strings.Repeat("A", 1000)+`"}`)) + "." +
		strings.Repeat("s", 342)
}()

type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: benchToken, ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}

var benchRole sync.Once

// BenchmarkConnectTracer is one serial connect + close to the throwaway
// PostgreSQL through pgentra without a tracer and with pgentraotel's on the
// OpenTelemetry SDK (a ManualReader never collected, a TracerProvider that
// samples every span and exports none): what the tracer costs per connect.
// The two run alternately in one process; PGENTRA_BENCH_REVERSE swaps the
// order (scripts/bench alternates it between rounds).
//
//	cd otel && go test -run '^$' -bench '^BenchmarkConnectTracer$' -benchmem -count 10 .
func BenchmarkConnectTracer(b *testing.B) {
	cluster := pg.Get(b)
	var err error
	benchRole.Do(func() { err = cluster.CreateRole(context.Background(), "bench_otel", benchToken) })
	if err != nil {
		b.Fatal(err)
	}
	dsn := cluster.TCPDSN("bench_otel", "postgres")
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { mp.Shutdown(context.Background()); tp.Shutdown(context.Background()) })
	conns := map[string]*driver.Connector{}
	for name, opts := range map[string][]driver.Option{
		"none": {driver.WithCredential(staticCred{})},
		"otel": {driver.WithCredential(staticCred{}), driver.WithTracer(pgentraotel.NewTracer(pgentraotel.WithMeterProvider(mp), pgentraotel.WithTracerProvider(tp)))},
	} {
		c, err := driver.NewConnector(dsn, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		if _, err := c.TokenCache().Token(context.Background()); err != nil { // warm
			b.Fatal(err)
		}
		conns[name] = c
	}
	order := []string{"none", "otel"}
	if os.Getenv("PGENTRA_BENCH_REVERSE") != "" {
		slices.Reverse(order)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, name := range order {
		b.Run("tracer="+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cn, err := conns[name].Connect(ctx)
				if err != nil {
					b.Fatal(err)
				}
				cn.Close()
			}
		})
	}
}

// BenchmarkTracerCalls is the tracer's own work for one connect with a cached
// token — the connect and one login, spans and metrics, on the SDK with no
// exporter — without the connect: its absolute cost, which a busy machine
// measures far more steadily than a ratio of two connects.
//
//	cd otel && go test -run '^$' -bench '^BenchmarkTracerCalls$' -benchmem .
func BenchmarkTracerCalls(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { mp.Shutdown(context.Background()); tp.Shutdown(context.Background()) })
	t := pgentraotel.NewTracer(pgentraotel.WithMeterProvider(mp), pgentraotel.WithTracerProvider(tp))
	start := driver.ConnectStartData{ServerAddress: "127.0.0.1", ServerPort: 5432, Scope: "https://ossrdbms-aad.database.windows.net/.default"}
	login := driver.LoginStartData{ServerAddress: "127.0.0.1", ServerPort: 5432, Role: "bench_otel", Attempt: 1}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		cctx := t.TraceConnectStart(ctx, start)
		lctx := t.TraceLoginStart(cctx, login)
		t.TraceLoginEnd(lctx, driver.LoginEndData{LoginStartData: login, Duration: time.Millisecond, Outcome: driver.OutcomeOK})
		t.TraceConnectEnd(cctx, driver.ConnectEndData{ConnectStartData: start, Duration: time.Millisecond, Outcome: driver.OutcomeOK, Role: "bench_otel"})
	}
}
