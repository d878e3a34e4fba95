package driver

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

// credTestEnv is an emulated tenant with its identity endpoints and
// authority, reached by real azidentity credentials through the client
// options. No server is dialed: these tests fail (or succeed) at the token.
type credTestEnv struct {
	tenant *entra.Tenant
	co     azcore.ClientOptions
	vars   map[string]string // what getenv sees
}

func newCredTestEnv(t *testing.T) *credTestEnv {
	t.Helper()
	tn, err := entra.NewTenant(entra.TenantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := entra.NewIdentityServer(tn, entra.IdentityServerOptions{NoSystemAssigned: true})
	t.Cleanup(id.Close)
	auth := entra.NewAuthority(tn)
	t.Cleanup(auth.Close)
	co := entra.CombinedClientOptions(id, auth)
	co.Retry = policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}
	// azidentity reads these itself: none may pick another source. Empty
	// is unset for all of them except AZURE_TOKEN_CREDENTIALS, which
	// every test here sets.
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
		"IDENTITY_SERVER_THUMBPRINT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
		"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "PGUSER"} {
		t.Setenv(k, "")
	}
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
	return &credTestEnv{tenant: tn, co: co, vars: map[string]string{"AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential"}}
}

func (e *credTestEnv) getenv(k string) string { return e.vars[k] }

// connectErr builds a Connector for dsn and returns its first Connect's
// error, which must be a token failure (nothing is dialed).
func (e *credTestEnv) connectErr(t *testing.T, dsn string, opts ...Option) error {
	t.Helper()
	c, err := NewConnector(dsn, append([]Option{WithClientOptions(e.co), withGetenv(e.getenv)}, opts...)...)
	if err != nil {
		t.Fatalf("NewConnector: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := c.Connect(ctx)
	if err == nil {
		conn.Close()
		t.Fatal("Connect succeeded; want a token failure")
	}
	return err
}

// TestTokenErrorNamesTheIdentity (issue 15 item 2): a token failure names
// the credential by what it is, the key that picked the identity and how to
// list the compute's identities, with "pgentra:" once and no internal kind
// name such as "default:".
func TestTokenErrorNamesTheIdentity(t *testing.T) {
	e := newCredTestEnv(t)
	const host = "host=srv.postgres.database.azure.com user=app "
	const nobody = "0c0ffee0-0000-4000-8000-00000000dead"
	listing := []string{"az vm identity show", "az webapp identity show", "az containerapp identity show"}
	tests := []struct {
		name, dsn string
		env       map[string]string // os and getenv
		key       string
		want      []string
	}{
		{"managed identity, client id", host + "azure_credential=managed_identity azure_client_id=" + nobody, nil,
			"azure_client_id", append([]string{"pgentra: managed identity (client id " + nobody + "; azure_credential=managed_identity): ", "azure_client_id=" + nobody}, listing...)},
		{"managed identity, object id", host + "azure_credential=managed_identity azure_object_id=" + nobody, nil,
			"azure_object_id", append([]string{"managed identity (object id " + nobody + "; azure_credential=managed_identity)", "azure_object_id=" + nobody}, listing...)},
		{"managed identity, resource id", host + "azure_credential=managed_identity azure_resource_id=/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope", nil,
			"azure_resource_id", append([]string{"managed identity (resource id /subscriptions/", "azure_resource_id=/subscriptions/"}, listing...)},
		{"default chain, client id in the DSN", host + "azure_client_id=" + nobody, nil,
			"azure_client_id", append([]string{"pgentra: DefaultAzureCredential chain (client id " + nobody, "HTTP 400", "azure_client_id=" + nobody}, listing...)},
		{"default chain, AZURE_CLIENT_ID", host, map[string]string{"AZURE_CLIENT_ID": nobody},
			"AZURE_CLIENT_ID", append([]string{"pgentra: DefaultAzureCredential chain", "AZURE_CLIENT_ID=" + nobody}, listing...)},
		{"default chain, no identity named", host, nil,
			"", []string{"pgentra: DefaultAzureCredential chain: ", "DefaultAzureCredential: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.vars = map[string]string{"AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential"}
			for k, v := range tt.env {
				t.Setenv(k, v)
				e.vars[k] = v
			}
			err := e.connectErr(t, tt.dsn)
			msg := err.Error()
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("error %T %q is not a *TokenError", err, msg)
			}
			if te.IdentityKey != tt.key {
				t.Errorf("IdentityKey = %q, want %q", te.IdentityKey, tt.key)
			}
			for _, w := range tt.want { // the message names the credential, the Hint field says how to check it
				if !strings.Contains(msg+"\n"+te.Hint, w) {
					t.Errorf("error and hint lack %q:\n%s\n%s", w, msg, te.Hint)
				}
			}
			if n := strings.Count(msg, "pgentra:"); n != 1 {
				t.Errorf(`"pgentra:" appears %d times, want once:\n%s`, n, msg)
			}
			for _, bad := range []string{"default:", "managed_identity:"} {
				if strings.Contains(msg, bad) {
					t.Errorf("error names the credential by its internal kind %q:\n%s", bad, msg)
				}
			}
			if tt.key == "" && strings.Contains(msg, "identity show") {
				t.Errorf("no identity was named, yet the hint is about one:\n%s", msg)
			}
		})
	}
}

// TestClientSecretFromEnvironment (issue 10 item 9): azure_credential=client_secret
// takes the tenant and client ID from AZURE_TENANT_ID / AZURE_CLIENT_ID when
// the DSN lacks them, as client_certificate does; a refused secret is
// reported without the secret, naming the service principal.
func TestClientSecretFromEnvironment(t *testing.T) {
	e := newCredTestEnv(t)
	sp, err := e.tenant.AddServicePrincipal("orders-api")
	if err != nil {
		t.Fatal(err)
	}
	const dsn = "host=srv.postgres.database.azure.com user=orders-api azure_credential=client_secret"
	e.vars = map[string]string{"AZURE_TENANT_ID": e.tenant.ID(), "AZURE_CLIENT_ID": sp.AppID, "AZURE_CLIENT_SECRET": sp.ClientSecret}

	c, err := NewConnector(dsn, WithClientOptions(e.co), withGetenv(e.getenv))
	if err != nil {
		t.Fatalf("client_secret with the tenant and client ID from the environment: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The token only: a Connect would dial srv.postgres.database.azure.com.
	tok, err := c.TokenCache().Token(ctx)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	claims, err := token.ParseClaims(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.AppID != sp.AppID || claims.TenantID != e.tenant.ID() {
		t.Errorf("token for appid %s tenant %s, want %s / %s", claims.AppID, claims.TenantID, sp.AppID, e.tenant.ID())
	}

	// The DSN's own keys win over the environment.
	other, err := e.tenant.AddServicePrincipal("billing-api")
	if err != nil {
		t.Fatal(err)
	}
	e.vars["AZURE_CLIENT_SECRET"] = other.ClientSecret
	c2, err := NewConnector(dsn+" azure_client_id="+other.AppID, WithClientOptions(e.co), withGetenv(e.getenv))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if tok, err = c2.TokenCache().Token(ctx); err != nil {
		t.Fatalf("token: %v", err)
	}
	if claims, _ = token.ParseClaims(tok.Token); claims.AppID != other.AppID {
		t.Errorf("token for appid %s, want the DSN's %s", claims.AppID, other.AppID)
	}

	// A wrong secret: the message names the principal, never the secret.
	const wrong = "WRONG-SECRET-MARKER-6d1f"
	e.vars["AZURE_CLIENT_SECRET"] = wrong
	err = e.connectErr(t, dsn)
	msg := err.Error()
	for _, w := range []string{"pgentra: service principal (client id " + sp.AppID + ", tenant " + e.tenant.ID() + ", client secret in $AZURE_CLIENT_SECRET; azure_credential=client_secret): ", "ClientSecretCredential"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, wrong) || strings.Contains(msg, sp.ClientSecret) {
		t.Errorf("error shows a client secret:\n%s", msg)
	}
	if n := strings.Count(msg, "pgentra:"); n != 1 {
		t.Errorf(`"pgentra:" appears %d times:\n%s`, n, msg)
	}

	// Nothing anywhere: the error names what is missing, including the variables.
	e.vars = map[string]string{}
	_, err = NewConnector(dsn, withGetenv(e.getenv))
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want a *ConfigError", err)
	}
	for _, w := range []string{"azure_tenant_id", "azure_client_id", "$AZURE_TENANT_ID", "$AZURE_CLIENT_ID", "$AZURE_CLIENT_SECRET"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

// TestTokenErrorCustomCredential: a credential given with WithCredential is
// called that, with "pgentra:" once.
func TestTokenErrorCustomCredential(t *testing.T) {
	c, err := NewConnector("host=srv.postgres.database.azure.com user=app", WithCredential(&fakeCredential{err: errCredential}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Connect(context.Background())
	var te *TokenError
	if !errors.As(err, &te) || !errors.Is(err, errCredential) {
		t.Fatalf("err = %v, want a *TokenError wrapping the credential's error", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "pgentra: custom credential (given with WithCredential): ") || strings.Count(msg, "pgentra:") != 1 {
		t.Errorf("error = %q", msg)
	}
}

// TestCredentialBuildErrorSaysPgentraOnce: a configuration error found
// while building the credential keeps its own message (key, accepted
// values) without a second "pgentra:".
func TestCredentialBuildErrorSaysPgentraOnce(t *testing.T) {
	_, err := NewConnector("host=srv.postgres.database.azure.com user=app azure_client_id=cid",
		withGetenv(env(map[string]string{"AZURE_TOKEN_CREDENTIALS": "bogus"})))
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "AZURE_TOKEN_CREDENTIALS") || !strings.Contains(msg, `"prod"`) || strings.Count(msg, "pgentra:") != 1 {
		t.Errorf("error = %q", msg)
	}
}

// TestTokenErrorAzureCLI: the CLI credentials keep their azidentity type
// (token.Cache tells them apart by it) and are still named by what they are.
func TestTokenErrorAzureCLI(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no az
	for _, tt := range []struct {
		kind, name string
		check      func(azcore.TokenCredential) bool
	}{
		{"azure_cli", "Azure CLI (az; azure_credential=azure_cli)", func(c azcore.TokenCredential) bool { _, ok := c.(*azidentity.AzureCLICredential); return ok }},
		{"azure_developer_cli", "Azure Developer CLI (azd; azure_credential=azure_developer_cli)", func(c azcore.TokenCredential) bool {
			_, ok := c.(*azidentity.AzureDeveloperCLICredential)
			return ok
		}},
	} {
		c, err := NewConnector("host=srv.postgres.database.azure.com user=carol@contoso.com azure_credential="+tt.kind, withGetenv(env(nil)))
		if err != nil {
			t.Fatal(err)
		}
		if !tt.check(c.cred) {
			t.Errorf("%s: the Connector's credential is a %T, want azidentity's own", tt.kind, c.cred)
		}
		_, err = c.Connect(context.Background())
		c.Close()
		var te *TokenError
		if !errors.As(err, &te) {
			t.Fatalf("%s: err = %v, want a *TokenError", tt.kind, err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "pgentra: "+tt.name+": ") || strings.Count(msg, "pgentra:") != 1 || strings.Contains(msg, tt.kind+":") {
			t.Errorf("%s: error = %q", tt.kind, msg)
		}
	}
}

// hostRecorder records the host of every request a credential sends, before
// the emulator's transport serves it (whatever the host).
type hostRecorder struct {
	next  policy.Transporter
	mu    sync.Mutex
	hosts []string
}

func (r *hostRecorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Hostname())
	r.mu.Unlock()
	return r.next.Do(req)
}

func (r *hostRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hosts...)
}

// TestLoopbackAuthorityHasNoInstanceDiscovery: an Entra authority on a
// loopback address (the emulator's) is no host MSAL knows, and instance
// discovery would ask login.microsoftonline.com about it. Without
// WithDisableInstanceDiscovery, workload identity against such an authority
// sends nothing to any other host. The public authority is the control: it
// is discovered, so the recorder does see such a request.
func TestLoopbackAuthorityHasNoInstanceDiscovery(t *testing.T) {
	tests := []struct {
		name          string
		authority     func(e *credTestEnv) string // "" → the emulator's, from the client options
		fromEnv       bool                        // AZURE_AUTHORITY_HOST rather than the client options
		wantDiscovery bool
	}{
		{name: "client options", authority: func(e *credTestEnv) string { return e.co.Cloud.ActiveDirectoryAuthorityHost }},
		{name: "AZURE_AUTHORITY_HOST", authority: func(e *credTestEnv) string { return e.co.Cloud.ActiveDirectoryAuthorityHost }, fromEnv: true},
		{name: "localhost", authority: func(e *credTestEnv) string {
			return strings.Replace(e.co.Cloud.ActiveDirectoryAuthorityHost, "127.0.0.1", "localhost", 1)
		}, fromEnv: true},
		{name: "public cloud (control)", authority: func(*credTestEnv) string { return "https://login.microsoftonline.com/" }, wantDiscovery: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCredTestEnv(t)
			sp, err := e.tenant.AddServicePrincipal("orders-worker")
			if err != nil {
				t.Fatal(err)
			}
			file, err := e.tenant.WriteFederatedTokenFile(t.TempDir(), sp)
			if err != nil {
				t.Fatal(err)
			}
			rec := &hostRecorder{next: e.co.Transport}
			co := e.co
			co.Transport = rec
			co.Cloud.ActiveDirectoryAuthorityHost = tc.authority(e)
			if tc.fromEnv {
				e.vars["AZURE_AUTHORITY_HOST"] = co.Cloud.ActiveDirectoryAuthorityHost
				t.Setenv("AZURE_AUTHORITY_HOST", co.Cloud.ActiveDirectoryAuthorityHost) // azidentity reads it itself
				co.Cloud = cloud.Configuration{}
			}
			dsn := "host=srv.postgres.database.azure.com user=orders-worker azure_credential=workload_identity" +
				" azure_client_id=" + sp.AppID + " azure_tenant_id=" + e.tenant.ID() + " azure_federated_token_file=" + file
			c, err := NewConnector(dsn, WithClientOptions(co), withGetenv(e.getenv))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// The token only: a Connect would dial srv.postgres.database.azure.com.
			if _, err := c.TokenCache().Token(ctx); err != nil {
				t.Fatalf("token: %v", err)
			}
			var other []string
			for _, h := range rec.seen() {
				if a, err := netip.ParseAddr(h); h != "localhost" && (err != nil || !a.IsLoopback()) {
					other = append(other, h)
				}
			}
			if got := len(other) > 0; got != tc.wantDiscovery {
				t.Errorf("requests to other hosts: %q (all: %q); want some: %v", other, rec.seen(), tc.wantDiscovery)
			}
		})
	}
}
