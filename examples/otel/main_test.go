package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

// TestMetricsScraped: the service's /metrics, fetched over HTTP and parsed
// with Prometheus' own text parser, has a series for the connect that worked
// and one for the refused login; the printed spans include pgentra.connect
// and azidentity's span under pgentra.token.fetch.
func TestMetricsScraped(t *testing.T) {
	target := extest.WebApp(t, "app-otel")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := &extest.SyncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, out, "127.0.0.1:0", func(addr string) { ready <- addr }) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	find := func(name string, labels map[string]string) *dto.Metric {
		t.Helper()
		f := families[name]
		if f == nil {
			t.Fatalf("no %s in /metrics:\n%s", name, body)
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m
		}
		t.Fatalf("no %s series with %v in /metrics:\n%s", name, labels, body)
		return nil
	}
	ok := find("pgentra_connect_duration_seconds", map[string]string{"pgentra_outcome": "ok", "server_address": "localhost"})
	if ok.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("connects ok: %d, want 1", ok.GetHistogram().GetSampleCount())
	}
	find("pgentra_connect_duration_seconds", map[string]string{"pgentra_outcome": "refused"})
	ref := find("pgentra_login_refusals_total", map[string]string{"db_response_status_code": "28P01", "pgentra_reason": "no_role"})
	if ref.GetCounter().GetValue() < 1 {
		t.Errorf("refusals: %v, want at least 1", ref.GetCounter().GetValue())
	}
	find("pgentra_token_fetch_duration_seconds", map[string]string{"pgentra_outcome": "ok", "pgentra_kind": "blocking"})
	if g := find("pgentra_token_expiry_seconds", nil); g.GetGauge().GetValue() <= 0 {
		t.Errorf("token expiry %v s, want > 0", g.GetGauge().GetValue())
	}
	spans := out.String()
	for _, s := range []string{`"Name":"pgentra.connect"`, `"Name":"pgentra.token.fetch"`, `"Name":"pgentra.login"`} {
		if !strings.Contains(spans, s) {
			t.Errorf("stdout lacks the span %s", s)
		}
	}
	if target.Role == "" {
		t.Error("no emulated role")
	}
}
