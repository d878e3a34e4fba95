package entra

import (
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TestAppServiceManagedIdentity drives a real ManagedIdentityCredential
// through the App Service environment variables. It sets the environment,
// so it cannot run in parallel.
func TestAppServiceManagedIdentity(t *testing.T) {
	unsetenv(t, azureEnv...)
	tn := newTenant(t)
	app := must(tn.AddSystemAssignedWebApp("app-orders"))(t)
	ua := must(tn.AddUserAssignedIdentity("id-orders"))(t)
	srv := NewIdentityServer(tn, IdentityServerOptions{})
	t.Cleanup(srv.Close)
	env := srv.AppServiceEnv()
	for k, v := range env {
		t.Setenv(k, v)
	}

	tests := []struct {
		name  string
		id    azidentity.ManagedIDKind
		want  Principal
		scope string
	}{
		{"system-assigned", nil, app, DatabaseScope},
		{"system-assigned management", nil, app, ManagementScope},
		{"client id", azidentity.ClientID(ua.AppID), ua, DatabaseScope},
		{"object id", azidentity.ObjectID(ua.ObjectID), ua, DatabaseScope},
		{"resource id", azidentity.ResourceID(ua.ResourceID), ua, ManagementScope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// No Transport: App Service is reached at IDENTITY_ENDPOINT directly.
			cred := must(azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: tc.id}))(t)
			before := srv.RequestsFor(tc.want)
			at, err := getToken(t, cred, tc.scope)
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			c := parse(t, tn, at.Token)
			if c["oid"] != tc.want.ObjectID || c["aud"] != NormalizeAudience(tc.scope) {
				t.Errorf("oid %v aud %v", c["oid"], c["aud"])
			}
			if _, ok := c["xms_mirid"]; ok != (tc.scope == ManagementScope) {
				t.Errorf("xms_mirid present=%v for %s", ok, tc.scope)
			}
			if d := time.Until(at.ExpiresOn); d < time.Minute || d > ShortTestLifetime {
				t.Errorf("expires in %v", d)
			}
			if srv.RequestsFor(tc.want)-before != 1 {
				t.Errorf("request not counted for %s", tc.want.Name)
			}
		})
	}

	t.Run("wrong identity header", func(t *testing.T) {
		t.Setenv("IDENTITY_HEADER", "not-the-secret")
		cred := must(azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: azcore.ClientOptions{Retry: fastRetry}}))(t)
		if _, err := getToken(t, cred, DatabaseScope); err == nil {
			t.Fatal("GetToken succeeded with a wrong X-IDENTITY-HEADER")
		}
		req, _ := http.NewRequest(http.MethodGet, env["IDENTITY_ENDPOINT"]+"?api-version=2019-08-01&resource="+DatabaseAudience, nil)
		for header, want := range map[string]int{"": 400, "wrong": 401, env["IDENTITY_HEADER"]: 200} {
			req.Header.Set("X-IDENTITY-HEADER", header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("X-IDENTITY-HEADER %q: status %d, want %d", header, resp.StatusCode, want)
			}
		}
	})
}

// TestDefaultAzureCredentialIMDSProbe: with no environment configuration,
// DefaultAzureCredential probes IMDS (a request without Metadata), then asks
// for the token; both go through the combined transport.
func TestDefaultAzureCredentialIMDSProbe(t *testing.T) {
	unsetenv(t, azureEnv...)
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "prod") // skip az/azd on the developer's PATH
	f := newIMDS(t, IdentityServerOptions{})
	cred := must(azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions: CombinedClientOptions(f.srv, nil),
	}))(t)
	at, err := getToken(t, cred, DatabaseScope)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if c := parse(t, f.tn, at.Token); c["oid"] != f.vm.ObjectID {
		t.Errorf("token for %v, want the VM's identity", c["oid"])
	}
	if got := f.srv.Requests(); got != 2 {
		t.Errorf("%d requests, want 2 (probe + token)", got)
	}
}
