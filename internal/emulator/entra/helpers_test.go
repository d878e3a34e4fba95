package entra

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"
)

// fastRetry keeps azcore's retries (IMDS defaults: 6 tries, 2 s → 25 s) short.
var fastRetry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond}

// newTenant starts a tenant with ShortTestLifetime tokens: every test of the
// package has its own tenant, and MSAL caches longer-lived managed-identity
// tokens process-wide (see the package documentation).
func newTenant(t *testing.T) *Tenant {
	t.Helper()
	tn, err := NewTenant(TenantOptions{TokenLifetime: ShortTestLifetime})
	if err != nil {
		t.Fatalf("NewTenant: %v", err)
	}
	return tn
}

// must(f())(t) returns f's value or fails the test with its error.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// must2(f())(t) is must for functions returning two values and an error.
func must2[A, B any](a A, b B, err error) func(*testing.T) (A, B) {
	return func(t *testing.T) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

// parse verifies tok against the tenant key and returns its claims.
func parse(t *testing.T, tn *Tenant, tok string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, c, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		return tn.PublicKey(kid)
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(tn.Issuer()), jwt.WithTimeFunc(tn.Now))
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return c
}

func getToken(t *testing.T, cred azcore.TokenCredential, scope string) (azcore.AccessToken, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
}

// unsetenv removes k for this test and restores it afterwards (t.Setenv
// registers the restore and forbids t.Parallel).
func unsetenv(t *testing.T, keys ...string) {
	for _, k := range keys {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

// azureEnv lists every variable that steers azidentity's source selection.
var azureEnv = []string{
	"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
	"AZURE_USERNAME", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS",
	"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
}

func tokenOpts(scope string) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{scope}}
}
