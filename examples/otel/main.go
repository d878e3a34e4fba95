// Otel is a service that exports pgentra's metrics to Prometheus and prints
// its spans: pgentra.connect, pgentra.login and pgentra.token.fetch, with
// azidentity's own spans under the token fetch.
//
//	cd examples && go run ./otel          # then: curl localhost:9464/metrics
//
// With no PGHOST in the environment it starts the offline Azure emulator by
// itself. At start-up it makes one connect that works and one that the
// server refuses (a role that does not map to the identity), so that
// /metrics shows a series of each: pgentra_connect_duration_seconds by
// pgentra_outcome, and pgentra_login_refusals_total by SQLSTATE and reason.
// The spans go to stdout as JSON (stdouttrace). In a real service, wire
// azidentity's spans with azotel instead of this file's small adapter:
//
//	co.TracingProvider = azotel.NewTracingProvider(tp, nil)
//	driver.NewConnector(dsn, driver.WithClientOptions(co), driver.WithTracer(pgentraotel.NewTracer()))
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/examples/internal/exenv"
	pgentraotel "github.com/pgentra/pgentra/otel"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, "localhost:9464", nil); err != nil {
		fmt.Fprintln(os.Stderr, "otel:", err)
		os.Exit(1)
	}
}

// run serves /metrics on addr until ctx ends; ready, when set, gets the
// address it listens on once both connects are done.
func run(ctx context.Context, out io.Writer, addr string, ready func(addr string)) error {
	target, err := exenv.FromEnvironment(ctx, out, "app-otel")
	if err != nil {
		return err
	}
	defer target.Close()

	// Metrics: the Prometheus exporter is a reader of the meter provider.
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	// Spans: printed to out.
	spans, err := stdouttrace.New(stdouttrace.WithWriter(out))
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background())

	tracer := pgentraotel.NewTracer(pgentraotel.WithMeterProvider(mp), pgentraotel.WithTracerProvider(tp))
	// The credential pgentra builds (DefaultAzureCredential here) reports
	// its spans through azcore's tracing.
	co := azcore.ClientOptions{TracingProvider: azTracing(tp)}
	connector, err := driver.NewConnector(target.DSN, driver.WithTracer(tracer), driver.WithClientOptions(co))
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	// One connect that works, inside a span of the service's own.
	qctx, span := tp.Tracer("example").Start(ctx, "startup")
	err = db.PingContext(qctx)
	span.End()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "connected")

	// One the server refuses: a role the identity does not map to.
	wrong, err := driver.NewConnector(target.DSN+" user=not_this_role", driver.WithTokenCache(connector.TokenCache()), driver.WithTracer(tracer))
	if err != nil {
		return err
	}
	wdb := sql.OpenDB(wrong)
	defer wdb.Close()
	if err := wdb.PingContext(ctx); err == nil {
		return errors.New("a role that does not map to the identity logged in")
	}
	fmt.Fprintln(out, "refused as expected")

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	fmt.Fprintf(out, "serving http://%s/metrics\n", ln.Addr())
	if ready != nil {
		ready(ln.Addr().String())
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// azTracing adapts an OpenTelemetry tracer provider to azcore's tracing, so
// that azidentity's spans nest under pgentra.token.fetch. It is the gist of
// github.com/Azure/azure-sdk-for-go/sdk/tracing/azotel, which a real service
// uses instead.
func azTracing(tp trace.TracerProvider) tracing.Provider {
	return tracing.NewProvider(func(name, _ string) tracing.Tracer {
		t := tp.Tracer(name)
		return tracing.NewTracer(func(ctx context.Context, spanName string, _ *tracing.SpanOptions) (context.Context, tracing.Span) {
			ctx, s := t.Start(ctx, spanName)
			return ctx, tracing.NewSpan(tracing.SpanImpl{End: func() { s.End() }})
		}, nil)
	}, nil)
}
