package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/internal/exenv"
	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

// TestWorkloadIdentity: with only what AKS's webhook injects, the program
// logs in through the emulated authority with the projected token.
func TestWorkloadIdentity(t *testing.T) {
	env := extest.Env(t)
	ctx := extest.Context(t, time.Minute)
	for _, k := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	target, err := exenv.WorkloadPod(ctx, env, "orders-worker", t.TempDir(), func(k, v string) error { t.Setenv(k, v); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"} {
		if os.Getenv(k) == "" {
			t.Errorf("%s not set", k)
		}
	}
	before := env.Authority.RequestsFor(target.Principal)
	var out bytes.Buffer
	if err := run(ctx, &out, target.DSN, target.Options...); err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	if want := "logged in as orders-worker with workload identity\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if n := env.Authority.RequestsFor(target.Principal) - before; n < 1 {
		t.Errorf("authority token requests for %s: %d; want the federated exchange", target.Principal.Name, n)
	}

	// Without the projected token the credential has nothing to present.
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", "")
	os.Unsetenv("AZURE_FEDERATED_TOKEN_FILE")
	err = run(ctx, &out, target.DSN, target.Options...)
	if err == nil || !strings.Contains(err.Error(), "no token file") {
		t.Errorf("without AZURE_FEDERATED_TOKEN_FILE: %v; want azidentity's \"no token file\"", err)
	}
}
