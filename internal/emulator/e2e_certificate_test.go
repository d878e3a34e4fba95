package emulator_test

// End-to-end tests of certificate-based service-principal login: pgentra
// builds azidentity's ClientCertificateCredential (azure_credential=
// client_certificate, or environment with AZURE_CLIENT_CERTIFICATE_PATH),
// MSAL signs a client assertion with the certificate's key, the emulated
// authority checks it against the certificate registered for the app, and
// the token logs in through the Entra-checking front. The authority's TLS is
// trusted only by the emulator's transport, so every pool is built with
// NewConnector + WithClientOptions.

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// certPrincipal adds a service principal, creates its role and writes it a
// registered client certificate.
func certPrincipal(t *testing.T, env *emulator.Env, base string) (entra.Principal, string) {
	t.Helper()
	p, err := env.Tenant.AddServicePrincipal(e67Name(base))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(context.Background(), p, false); err != nil {
		t.Fatal(err)
	}
	path, err := env.Tenant.WriteClientCertificate(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	return p, path
}

// TestE2EClientCertificate logs in as a service principal with its client
// certificate, configured by DSN keys or by the environment.
func TestE2EClientCertificate(t *testing.T) {
	tests := []struct {
		name string
		// open builds the pool for p with the certificate at path.
		open func(t *testing.T, env *emulator.Env, p entra.Principal, path string) driver.Option
		dsn  func(env *emulator.Env, p entra.Principal, path string) string
	}{
		{
			name: "azure_credential=client_certificate, DSN keys",
			dsn: func(env *emulator.Env, p entra.Principal, path string) string {
				return env.DSN(p.Name, "azure_credential=client_certificate", "azure_client_id="+p.AppID,
					"azure_tenant_id="+env.Tenant.ID(), "azure_client_certificate_path="+path)
			},
			open: func(t *testing.T, env *emulator.Env, _ entra.Principal, _ string) driver.Option {
				return driver.WithClientOptions(env.ClientOptions())
			},
		},
		{
			// No authority host: the credential aims at login.microsoftonline.com
			// (instance discovery included) and only the transport brings it to
			// the emulator, so the assertion's aud is the public-cloud endpoint.
			name: "azure_credential=client_certificate, public cloud host",
			dsn: func(env *emulator.Env, p entra.Principal, path string) string {
				return env.DSN(p.Name, "azure_credential=client_certificate", "azure_client_id="+p.AppID,
					"azure_tenant_id="+env.Tenant.ID(), "azure_client_certificate_path="+path)
			},
			open: func(t *testing.T, env *emulator.Env, _ entra.Principal, _ string) driver.Option {
				co := env.ClientOptions()
				co.Cloud = cloud.AzurePublic
				return driver.WithClientOptions(co)
			},
		},
		{
			// EnvironmentCredential reads the identity and the authority host
			// from the environment, as on a CI runner; no secret is set.
			name: "azure_credential=environment, AZURE_CLIENT_CERTIFICATE_PATH",
			dsn: func(env *emulator.Env, p entra.Principal, _ string) string {
				return env.DSN(p.Name, "azure_credential=environment")
			},
			open: func(t *testing.T, env *emulator.Env, p entra.Principal, path string) driver.Option {
				e67SetEnv(t, map[string]string{
					"AZURE_TENANT_ID": env.Tenant.ID(), "AZURE_CLIENT_ID": p.AppID,
					"AZURE_CLIENT_CERTIFICATE_PATH": path, "AZURE_AUTHORITY_HOST": env.Authority.URL(),
				})
				co := env.ClientOptions()
				co.Cloud = cloud.Configuration{}
				return driver.WithClientOptions(co)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e67CleanEnv(t)
			env := startEnv(t)
			p, path := certPrincipal(t, env, "orders-cert")
			opt := tc.open(t, env, p, path)
			db := e67Open(t, tc.dsn(env, p, path), opt)
			if got := e67Who(t, db); got != p.Name {
				t.Errorf("current_user = %q, want %q", got, p.Name)
			}
			e67CheckFront(t, env, p, p.Name)
			e67CheckAuthorityOnly(t, env, p)
		})
	}
}

// TestE2EClientCertificateUnregistered: a certificate the application does
// not know is refused by the authority; the caller gets azidentity's
// *AuthenticationFailedError with Entra's AADSTS700027, and neither the
// private key nor the certificate appears in the error text.
func TestE2EClientCertificateUnregistered(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	p, _ := certPrincipal(t, env, "orders-badcert")
	path, err := env.Tenant.WriteUnregisteredCertificate(t.TempDir(), p.Name)
	if err != nil {
		t.Fatal(err)
	}
	pemText, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db := e67Open(t, env.DSN(p.Name, "azure_credential=client_certificate", "azure_client_id="+p.AppID,
		"azure_tenant_id="+env.Tenant.ID(), "azure_client_certificate_path="+path),
		driver.WithClientOptions(env.ClientOptions()))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = db.PingContext(ctx)
	if err == nil {
		t.Fatal("login succeeded with an unregistered certificate")
	}
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		t.Fatalf("error %T %v; want an *azidentity.AuthenticationFailedError", err, err)
	}
	// The message gives Entra's code; the wrapped error its full answer.
	if !strings.Contains(err.Error(), "AADSTS700027") || !strings.Contains(afe.Error(), "not registered on application") {
		t.Errorf("error %q lacks AADSTS700027, or Entra's wording (%q)", err, afe.Error())
	}
	for i, line := range strings.Split(string(pemText), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
			t.Errorf("error text quotes line %d of the certificate file", i+1) // not the line: it may be the key
			break
		}
	}
	if n := len(env.Front.Logins()); n != 0 {
		t.Errorf("front saw %d logins, want none without a token", n)
	}
	if n := env.Authority.RequestsFor(p); n != 1 {
		t.Errorf("authority token requests = %d, want 1 (no retry of a refused assertion)", n)
	}
}
