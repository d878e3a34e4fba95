package entra

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

type authFixture struct {
	tn       *Tenant
	auth     *Authority
	sp, sp2  Principal
	copts    azcore.ClientOptions
	tokenDir string
}

func newAuth(t *testing.T) authFixture {
	t.Helper()
	tn := newTenant(t)
	a := NewAuthority(tn)
	t.Cleanup(a.Close)
	f := authFixture{tn: tn, auth: a,
		sp:       must(tn.AddServicePrincipal("orders-api"))(t),
		sp2:      must(tn.AddServicePrincipal("billing-api"))(t),
		copts:    a.ClientOptions(),
		tokenDir: t.TempDir(),
	}
	f.copts.Retry = fastRetry
	return f
}

func TestClientSecretCredential(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	// MSAL serves a cached token only while it has more than 5 minutes left.
	if err := f.tn.SetPrincipalLifetime(f.sp, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, disable := range []bool{true, false} {
		cred := must(azidentity.NewClientSecretCredential(f.tn.ID(), f.sp.AppID, f.sp.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: f.copts, DisableInstanceDiscovery: disable}))(t)
		before := f.auth.RequestsFor(f.sp)
		at, err := getToken(t, cred, DatabaseScope)
		if err != nil {
			t.Fatalf("DisableInstanceDiscovery=%v: GetToken: %v", disable, err)
		}
		c := parse(t, f.tn, at.Token)
		if c["oid"] != f.sp.ObjectID || c["appid"] != f.sp.AppID || c["appidacr"] != "1" || c["aud"] != DatabaseAudience {
			t.Errorf("claims %v", c)
		}
		if _, err := getToken(t, cred, DatabaseScope); err != nil {
			t.Fatal(err)
		}
		if got := f.auth.RequestsFor(f.sp) - before; got != 1 {
			t.Errorf("DisableInstanceDiscovery=%v: %d token requests for two GetToken calls, want 1 (cached per credential)", disable, got)
		}
	}
}

func TestClientSecretCredentialWrongSecret(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	const wrong = "wrong~secret~value"
	cred := must(azidentity.NewClientSecretCredential(f.tn.ID(), f.sp.AppID, wrong,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: f.copts, DisableInstanceDiscovery: true}))(t)
	_, err := getToken(t, cred, DatabaseScope)
	if err == nil {
		t.Fatal("GetToken succeeded with a wrong secret")
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") || strings.Contains(err.Error(), wrong) {
		t.Errorf("error should carry AADSTS7000215 and not the secret: %v", err)
	}
	// Another tenant's ID is unknown to this authority.
	other := must(azidentity.NewClientSecretCredential(newGUID(), f.sp.AppID, f.sp.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: f.copts, DisableInstanceDiscovery: true}))(t)
	if _, err := getToken(t, other, DatabaseScope); err == nil {
		t.Error("GetToken succeeded for an unknown tenant")
	}
}

// TestAuthorityPublicCloudHost: with only the Transport (no authority host),
// a credential aimed at login.microsoftonline.com reaches the emulator,
// instance discovery included.
func TestAuthorityPublicCloudHost(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	cred := must(azidentity.NewClientSecretCredential(f.tn.ID(), f.sp.AppID, f.sp.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: f.auth.Transport()}}))(t)
	at, err := getToken(t, cred, ManagementScope)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if c := parse(t, f.tn, at.Token); c["aud"] != ManagementAudience {
		t.Errorf("aud %v", c["aud"])
	}
}

func TestWorkloadIdentityCredential(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	path := must(f.tn.WriteFederatedTokenFile(f.tokenDir, f.sp))(t)
	cred := must(azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions: f.copts, ClientID: f.sp.AppID, TenantID: f.tn.ID(), TokenFilePath: path, DisableInstanceDiscovery: true,
	}))(t)
	at, err := getToken(t, cred, DatabaseScope)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if c := parse(t, f.tn, at.Token); c["oid"] != f.sp.ObjectID || c["appidacr"] != "2" {
		t.Errorf("claims %v", c)
	}

	// sp2's service-account token does not match sp's federated credential.
	wrongDir := t.TempDir()
	wrong := must(f.tn.WriteFederatedTokenFile(wrongDir, f.sp2))(t)
	cred = must(azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions: f.copts, ClientID: f.sp.AppID, TenantID: f.tn.ID(), TokenFilePath: wrong, DisableInstanceDiscovery: true,
	}))(t)
	if _, err := getToken(t, cred, DatabaseScope); err == nil || !strings.Contains(err.Error(), "AADSTS700211") {
		t.Errorf("mismatched subject: err = %v", err)
	}
	if _, err := f.tn.FederatedToken(must(f.tn.AddUser("carol@contoso.com"))(t)); err == nil {
		t.Error("FederatedToken issued a token for a user")
	}
}

// TestDefaultAzureCredentialWorkloadIdentity configures DefaultAzureCredential
// the way AKS does, through environment variables; only the Transport comes
// from code. It sets the environment, so it cannot run in parallel.
func TestDefaultAzureCredentialWorkloadIdentity(t *testing.T) {
	unsetenv(t, azureEnv...)
	f := newAuth(t)
	path := must(f.tn.WriteFederatedTokenFile(f.tokenDir, f.sp))(t)
	t.Setenv("AZURE_CLIENT_ID", f.sp.AppID)
	t.Setenv("AZURE_TENANT_ID", f.tn.ID())
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", path)
	t.Setenv("AZURE_AUTHORITY_HOST", f.auth.URL())
	cred := must(azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: f.auth.Transport(), Retry: fastRetry},
	}))(t)
	at, err := getToken(t, cred, DatabaseScope)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if c := parse(t, f.tn, at.Token); c["oid"] != f.sp.ObjectID || c["appidacr"] != "2" {
		t.Errorf("claims %v", c)
	}
	if f.auth.RequestsFor(f.sp) != 1 {
		t.Errorf("%d token requests, want 1", f.auth.RequestsFor(f.sp))
	}
}

func TestAuthorityFaults(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	f.auth.Script(Fault{Status: http.StatusServiceUnavailable}, Fault{Status: http.StatusTooManyRequests, RetryAfter: 10 * time.Millisecond}, Fault{Lifetime: 8 * time.Second})
	cred := must(azidentity.NewClientSecretCredential(f.tn.ID(), f.sp.AppID, f.sp.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: f.copts, DisableInstanceDiscovery: true}))(t)
	at, err := getToken(t, cred, DatabaseScope)
	if err != nil {
		t.Fatalf("GetToken after 503, 429: %v", err)
	}
	if f.auth.Requests() != 3 || f.auth.Pending() != 0 {
		t.Errorf("requests %d pending %d, want 3 and 0", f.auth.Requests(), f.auth.Pending())
	}
	if d := time.Until(at.ExpiresOn); d > 8*time.Second || d < 4*time.Second {
		t.Errorf("expires in %v, want about 8s", d)
	}
}

func TestAuthorityDiscoveryDocuments(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	get := func(path string, v any) int {
		resp, err := f.auth.Client().Get(f.auth.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	var oidc map[string]any
	if st := get("/"+f.tn.ID()+"/v2.0/.well-known/openid-configuration", &oidc); st != 200 {
		t.Fatalf("openid-configuration: %d", st)
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "issuer", "jwks_uri"} {
		if s, _ := oidc[k].(string); !strings.HasPrefix(s, f.auth.URL()+"/"+f.tn.ID()+"/") {
			t.Errorf("%s = %q, want on %s", k, s, f.auth.URL())
		}
	}
	var jwks struct{ Keys []struct{ Kid string } }
	jwksPath := strings.TrimPrefix(oidc["jwks_uri"].(string), f.auth.URL())
	if st := get(jwksPath, &jwks); st != 200 || len(jwks.Keys) != 1 || jwks.Keys[0].Kid != f.tn.KeyID() {
		t.Errorf("jwks: %d %+v", st, jwks)
	}
	if st := get("/"+newGUID()+"/v2.0/.well-known/openid-configuration", nil); st != 400 {
		t.Errorf("unknown tenant: %d, want 400", st)
	}
}
