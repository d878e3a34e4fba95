package driver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/pgentra/pgentra/internal/clouds"
	"github.com/pgentra/pgentra/token"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseDSNSettings(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
		want settings
	}{
		{"defaults", "host=h user=u", settings{credential: credDefault, refreshMargin: 5 * time.Minute, clientSecretEnv: envClientSecret}},
		{"every key, key=value", "host=h azure_credential=managed_identity azure_client_id=cid azure_tenant_id=tid azure_client_certificate_path=/c.pem azure_federated_token_file=/f azure_scope=https://ossrdbms-aad.database.chinacloudapi.cn/.default azure_refresh_margin=90s azure_allow_insecure_tls=true",
			settings{credential: credManagedIdentity, clientID: "cid", tenantID: "tid", certificatePath: "/c.pem", federatedTokenFile: "/f", scope: token.ScopeChina, refreshMargin: 90 * time.Second, allowInsecureTLS: true, clientSecretEnv: envClientSecret}},
		{"object id, URL", "postgres://u@h/db?azure_credential=managed_identity&azure_object_id=oid",
			settings{credential: credManagedIdentity, objectID: "oid", refreshMargin: 5 * time.Minute, clientSecretEnv: envClientSecret}},
		{"resource id", "host=h azure_credential=managed_identity azure_resource_id=/subscriptions/s/x",
			settings{credential: credManagedIdentity, resourceID: "/subscriptions/s/x", refreshMargin: 5 * time.Minute, clientSecretEnv: envClientSecret}},
		{"case-insensitive kind and key", "host=h AZURE_CREDENTIAL=Azure_CLI",
			settings{credential: credAzureCLI, refreshMargin: 5 * time.Minute, clientSecretEnv: envClientSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseDSN(tt.dsn, env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if p.settings != tt.want {
				t.Errorf("settings = %+v\nwant       %+v", p.settings, tt.want)
			}
			for k := range p.cfg.Runtime {
				if strings.HasPrefix(strings.ToLower(k), "azure_") {
					t.Errorf("pq would send %q to the server", k)
				}
			}
		})
	}
}

func TestParseDSNErrors(t *testing.T) {
	tests := []struct{ name, dsn, key, mention string }{
		{"unknown azure key", "host=h azure_clientid=x", "azure_clientid", "azure_client_id"},
		{"unknown credential", "host=h azure_credential=magic", "azure_credential", "managed_identity"},
		{"bad margin", "host=h azure_refresh_margin=5", "azure_refresh_margin", "Go duration"},
		{"negative margin", "host=h azure_refresh_margin=-1m", "azure_refresh_margin", "between"},
		{"bad bool", "host=h azure_allow_insecure_tls=yes please", "", ""},
		{"bad bool quoted", "host=h azure_allow_insecure_tls='yes please'", "azure_allow_insecure_tls", `"true" or "false"`},
		{"bad scope", "host=h azure_scope=ossrdbms", "azure_scope", "https://ossrdbms-aad"},
		{"two identities", "host=h azure_client_id=a azure_object_id=b", "azure_client_id", "only one"},
		{"object id needs MI", "host=h azure_credential=client_secret azure_object_id=b", "azure_object_id", "managed_identity"},
		{"password key", "host=h password=SECRETPW", "password", "pgentra supplies"},
		{"password in URL", "postgres://u:SECRETPW@h/db", "password", "pgentra supplies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseDSN(tt.dsn, env(nil))
			if err == nil {
				t.Fatal("want an error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v is not ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), "SECRETPW") {
				t.Errorf("error leaks the password: %v", err)
			}
			if tt.key == "" {
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != tt.key {
				t.Fatalf("error %v does not name key %q", err, tt.key)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not say %q", err, tt.mention)
			}
		})
	}
}

func TestServiceConnectorEnvironment(t *testing.T) {
	base := map[string]string{envConnectionString: "host=srv.postgres.database.azure.com port=5432 dbname=orders sslmode=require user=app-id"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name       string
		env        map[string]string
		cred, id   string
		secretFrom string
	}{
		{"system-assigned", base, credDefault, "", envClientSecret},
		{"user-assigned", with(map[string]string{envSCClientID: "cid"}), credManagedIdentity, "cid", envClientSecret},
		{"service principal", with(map[string]string{envSCClientID: "cid", envSCClientSecret: "s3cret", envSCTenantID: "tid"}), credClientSecret, "cid", envSCClientSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseDSN("", env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if p.settings.credential != tt.cred || p.settings.clientID != tt.id || p.settings.clientSecretEnv != tt.secretFrom {
				t.Errorf("got %+v", p.settings)
			}
			if !p.userGiven || p.cfg.Database != "orders" || !p.serviceConnector {
				t.Errorf("connection string not used: %+v", p.cfg)
			}
		})
	}
	// The service principal's secret comes from AZURE_POSTGRESQL_CLIENTSECRET.
	c, err := NewConnector("", withGetenv(env(with(map[string]string{envSCClientID: "cid", envSCClientSecret: "s3cret", envSCTenantID: "tid"}))))
	if err != nil {
		t.Fatalf("NewConnector from Service Connector env: %v", err)
	}
	defer c.Close()
	if c.credKind != credClientSecret || c.scope != token.ScopePublic {
		t.Errorf("credential %q scope %q", c.credKind, c.scope)
	}
}

func TestNewConnectorErrors(t *testing.T) {
	tests := []struct{ name, dsn, mention string }{
		{"client_secret without secret", "host=h.postgres.database.azure.com user=u azure_credential=client_secret azure_client_id=c azure_tenant_id=t", "AZURE_CLIENT_SECRET"},
		{"certificate missing file", "host=h.postgres.database.azure.com user=u azure_credential=client_certificate azure_client_id=c azure_tenant_id=t azure_client_certificate_path=/nonexistent/cert.pem", "azure_client_certificate_path"},
		{"insecure TLS to a remote host", "host=db.example.invalid user=u sslmode=disable", "sslmode"},
		{"pq rejects", "host=h user=u datestyle=German", "datestyle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewConnector(tt.dsn, withGetenv(env(nil)))
			if err == nil {
				c.Close()
				t.Fatal("want an error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v is not ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestScopeAndCloudFromHost(t *testing.T) {
	tests := []struct{ dsn, scope, authority string }{
		{"host=a.postgres.database.azure.com user=u", token.ScopePublic, "https://login.microsoftonline.com/"},
		{"host=a.postgres.database.chinacloudapi.cn user=u", token.ScopeChina, "https://login.chinacloudapi.cn/"},
		{"host=a.postgres.database.usgovcloudapi.net user=u", token.ScopeUSGov, "https://login.microsoftonline.us/"},
		{"host=c-x.y.postgres.cosmos.azure.com user=u", token.ScopeCosmos, "https://login.microsoftonline.com/"},
		{"host=a.postgres.database.chinacloudapi.cn user=u azure_scope=https://ossrdbms-aad.database.windows.net/.default", token.ScopePublic, "https://login.microsoftonline.com/"},
		{"host=pg.contoso.example user=u azure_scope=https://OSSRDBMS-AAD.database.usgovcloudapi.net/.default", token.ScopeUSGov, "https://login.microsoftonline.us/"},
	}
	for _, tt := range tests {
		c, err := NewConnector(tt.dsn, withGetenv(env(nil)))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if c.scope != tt.scope {
			t.Errorf("%s: scope %q, want %q", tt.dsn, c.scope, tt.scope)
		}
		if cl := clouds.ForScope(c.scope).Config(); cl.ActiveDirectoryAuthorityHost != tt.authority {
			t.Errorf("%s: authority %q, want %q", tt.dsn, cl.ActiveDirectoryAuthorityHost, tt.authority)
		}
	}
}

func TestConnectorStringIsRedacted(t *testing.T) {
	c, err := NewConnector("host=h.postgres.database.azure.com user=u sslkey=/k.pem application_name=x", withGetenv(env(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.String()
	if !strings.Contains(s, "h.postgres.database.azure.com") || strings.Contains(s, "/k.pem") {
		t.Errorf("String() = %s", s)
	}
}

func TestUserFromServiceFileIsGiven(t *testing.T) {
	dir := t.TempDir()
	svc := filepath.Join(dir, "pg_service.conf")
	if err := os.WriteFile(svc, []byte("[orders]\nhost=srv.postgres.database.azure.com\nuser=orders-api\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSERVICEFILE", svc)
	c, err := NewConnector("service=orders", withGetenv(env(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.deriveUser || c.base.User != "orders-api" {
		t.Errorf("service file's user: deriveUser=%v user=%q", c.deriveUser, c.base.User)
	}
	// Without any user, pq falls back to the OS user: pgentra derives instead.
	c2, err := NewConnector("host=srv.postgres.database.azure.com", withGetenv(env(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if !c2.deriveUser {
		t.Errorf("no user anywhere, but deriveUser=false (user %q)", c2.base.User)
	}
}

// pq applies a service file after the string and adds PGHOST's comma list
// to the string's hosts: with PGSERVICE=dev, NewConnector dialed dev's host
// with dev's sslmode=require instead of the DSN's verify-full server, and
// with PGHOST=localhost,other.example.com it added other.example.com (the
// Listener refused that; NewConnector accepted it). Both conflicts are
// refused now, naming key and source; a service may still give what the
// DSN leaves out.
func TestNewConnectorEnvironmentNeverOverridesDSN(t *testing.T) {
	cleanPGEnv(t)
	svc := filepath.Join(t.TempDir(), "pg_service.conf")
	if err := os.WriteFile(svc, []byte("[dev]\nhost=dev-db.example.com\nsslmode=require\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSERVICEFILE", svc)
	cred := WithCredential(tokenFunc(func() string { return "t" }))
	const prod = "host=prod.postgres.database.azure.com sslmode=verify-full user=app"
	for _, tc := range []struct {
		name, env, val string
		want           []string
	}{
		{"PGSERVICE", "PGSERVICE", "dev", []string{"host from PGSERVICE=dev", "conflicts with host in the connection string"}},
		{"PGHOST list", "PGHOST", "localhost,other.example.com", []string{"host from PGHOST", "conflicts with host in the connection string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.env, tc.val)
			c, err := NewConnector(prod, withGetenv(env(nil)), cred)
			if err == nil {
				defer c.Close()
				t.Fatalf("accepted: %s", c.String())
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v is not ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Setenv("PGSERVICE", "dev")
	c, err := NewConnector("user=app dbname=orders", withGetenv(env(nil)), cred)
	if err != nil {
		t.Fatalf("service giving the host the DSN leaves out: %v", err)
	}
	defer c.Close()
	if c.base.Host != "dev-db.example.com" || c.base.Database != "orders" {
		t.Errorf("host %q dbname %q, want the service's host and the DSN's dbname", c.base.Host, c.base.Database)
	}
}

func TestDefaultChainSelection(t *testing.T) {
	base := settings{credential: credDefault, clientID: "cid"}
	tests := []struct {
		env     map[string]string
		wantErr bool
	}{
		{env: nil},
		{env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "prod"}},
		{env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "dev"}},
		{env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential"}},
		{env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential"}, wantErr: true}, // no secret in env
		{env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "bogus"}, wantErr: true},
	}
	for _, tt := range tests {
		_, err := defaultChain(base, azcore.ClientOptions{}, false, env(tt.env))
		if (err != nil) != tt.wantErr {
			t.Errorf("env %v: err = %v, wantErr %v", tt.env, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("env %v: %v is not ErrInvalidConfig", tt.env, err)
		}
	}
}

// azure_scope takes only the database scopes: whoever writes the DSN also
// picks the host the token goes to, so a Resource Manager or Key Vault token
// must never be obtainable from a connection string.
func TestScopeOnlyDatabaseScopes(t *testing.T) {
	for _, scope := range []string{
		token.ScopeManagement,
		"https://vault.azure.net/.default",
		"https://graph.microsoft.com/.default",
		"api://my-app/.default",
		"https://ossrdbms-aad.database.windows.net", // the resource, not a scope
		"https://ossrdbms-aad.database.windows.net.evil.example.invalid/.default",
	} {
		_, err := NewConnector("host=db.postgres.database.azure.com user=u azure_scope="+scope, withGetenv(env(nil)))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != "azure_scope" {
			t.Errorf("azure_scope=%s: err %v, want a ConfigError for azure_scope", scope, err)
			continue
		}
		for _, want := range []string{token.ScopePublic, token.ScopeCosmos, "WithTokenCache"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("azure_scope=%s: error %q does not name %q", scope, err, want)
			}
		}
	}
}
