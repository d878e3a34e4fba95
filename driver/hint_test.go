package driver

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

const publicScope = "https://ossrdbms-aad.database.windows.net/.default"

// TestLoginHintAzureTexts feeds loginHint each of Azure's texts exactly as
// docs/azure-behavior.md quotes them (and their older forms) and checks that the
// hint names the cause and the fix.
func TestLoginHintAzureTexts(t *testing.T) {
	mi := fakeJWT(miDBClaims(), 1)
	tests := []struct {
		name, code, msg string
		want            []string
		notWant         []string
	}{
		{"expired", "28000", "The access token has expired. Please acquire a new token and retry.",
			[]string{"expired", "clock", "NTP", "refreshed token"}, []string{"azure_refresh_margin"}},
		{"audience (public)", "28000", `The access token does not have a valid audience claim. Please acquire a new token for the resource "https://ossrdbms-aad.database.windows.net".`,
			[]string{"another resource", publicScope}, []string{"azure_scope=https"}},
		{"audience (China server)", "28000", `The access token does not have a valid audience claim. Please acquire a new token for the resource "https://ossrdbms-aad.database.chinacloudapi.cn".`,
			[]string{"azure_scope=https://ossrdbms-aad.database.chinacloudapi.cn/.default"}, nil},
		{"audience (Cosmos DB's literal %s)", "28000", `The access token does not have a valid audience claim. Please acquire a new token for the resource "%s".`,
			[]string{"another resource", "azure_scope"}, []string{"azure_scope=%s"}},
		{"invalid format", "28000", "The access token has invalid format. Please ensure the token is passed exactly as returned by the authentication endpoint and retry.",
			[]string{"not an Entra access token", "WithCredential", `"pgentra"`, "DriverName"}, nil},
		{"generic validation failure", "28000", "An error occurred while validating the access token. Please acquire a new token and retry",
			[]string{"tenant", "azure_tenant_id", "authority", "clock", "NTP"}, nil},
		{"service principal, user role", "28000", `Service principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role "app"`,
			[]string{"created as a user", "pgaadauth_create_principal_with_oid('app', '9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f', 'service', false, false)", "'user'"}, nil},
		{"service principal, user role (2024 form)", "28000", `Service Principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role[app]`,
			[]string{"pgaadauth_create_principal_with_oid('app', ", "'service'"}, nil},
		{"managed identity, user role", "28000", `Microsoft Entra user token for role "app" is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token.`,
			[]string{"managed identity", "pgaadauth_create_principal_with_oid('app', '9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f', 'service', false, false)"}, nil},
		{"managed identity, user role (older form)", "28000", `Azure AD user token for role[app] is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token.`,
			[]string{"managed identity", "'service'"}, nil},
		{"no role", "28P01", `password authentication failed for user "app"`,
			[]string{"pgaadauth_create_principal('app', false, false)"}, nil},
		{"TLS required", "28000", `no pg_hba.conf entry for host "203.0.113.7", user "app", database "postgres", no encryption`,
			[]string{"sslmode=verify-full", "encrypted"}, []string{"role"}},
		{"TLS required (SSL off)", "28000", `no pg_hba.conf entry for host "203.0.113.7", user "app", database "postgres", SSL off`,
			[]string{"sslmode"}, nil},
		{"group logins off", "28000", `role "grp" is not permitted to log in`,
			[]string{"NOLOGIN", "pgaadauth_sync_roles_for_group_members"}, nil},
		{"other refusal", "28000", "something else", []string{"pgaadauth_list_principals(false)", "--microsoft-entra-auth Enabled"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := &pq.Error{Code: pqerror.Code(tt.code), Message: tt.msg}
			got := loginHint(err, hintInput{User: "app", Scope: publicScope, Token: mi, Port: 5432})
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("hint %q does not mention %q", got, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("hint %q mentions %q", got, w)
				}
			}
			if strings.Contains(got, secretMarker) {
				t.Error("hint contains the token")
			}
		})
	}
}

// TestLoginHintRoleNamesDontDecide: words of Azure's messages inside a role
// name never pick a hint; a 28P01 for any of these names is "no role".
func TestLoginHintRoleNamesDontDecide(t *testing.T) {
	for _, role := range []string{
		"tenant_42_app", "audience-api", "issuer-svc", "expired-jobs", "invalid format", "not yet valid",
		`x" is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token.`,
		"Service principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role",
		"no encryption", "password too long",
	} {
		err := &pq.Error{Code: "28P01", Message: fmt.Sprintf("password authentication failed for user %q", role)}
		got := loginHint(err, hintInput{User: role, Scope: publicScope, Token: fakeJWT(miDBClaims(), 1)})
		if want := "pgaadauth_create_principal(" + sqlString(role) + ", false, false)"; !strings.Contains(got, want) {
			t.Errorf("role %q: hint %q, want the no-role hint with %s", role, got, want)
		}
		for _, bad := range []string{"clock", "azure_scope", "'service'", "sslmode", "PgBouncer"} {
			if strings.Contains(got, bad) {
				t.Errorf("role %q: hint %q mentions %q", role, got, bad)
			}
		}
	}
}

func TestLoginHintQuotesTheRole(t *testing.T) {
	const role = "o'brien@contoso.com"
	err := &pq.Error{Code: "28P01", Message: `password authentication failed for user "o'brien@contoso.com"`}
	got := loginHint(err, hintInput{User: role, Scope: publicScope})
	if !strings.Contains(got, "pgaadauth_create_principal('o''brien@contoso.com', false, false)") {
		t.Errorf("hint %q does not quote the role as an SQL string", got)
	}
	err = &pq.Error{Code: "28000", Message: `Service principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role "o'brien@contoso.com"`}
	if got := loginHint(err, hintInput{User: role}); !strings.Contains(got, "pgaadauth_create_principal_with_oid('o''brien@contoso.com', '<object-id>', 'service'") {
		t.Errorf("hint %q does not quote the role as an SQL string", got)
	}
}

// TestLoginHintGivenUser: with a user given in the DSN, a 28P01 names the
// role the token's own claims map to, or else the pgaadauth_list_principals
// check.
func TestLoginHintGivenUser(t *testing.T) {
	err := &pq.Error{Code: "28P01", Message: `password authentication failed for user "bob@contoso.com"`}
	user := fakeJWT(userClaims(), 1)
	got := loginHint(err, hintInput{User: "bob@contoso.com", Given: true, Token: user})
	if !strings.Contains(got, `this token's identity maps to role "carol@contoso.com"`) || !strings.Contains(got, "user=carol@contoso.com") ||
		!strings.Contains(got, "pgaadauth_create_principal('carol@contoso.com', false, false)") || strings.Contains(got, "pgaadauth_create_principal('bob") {
		t.Errorf("given user, token of carol: hint %q", got)
	}
	got = loginHint(err, hintInput{User: "carol@contoso.com", Given: true, Token: user})
	if !strings.Contains(got, "pgaadauth_create_principal('carol@contoso.com', false, false)") || strings.Contains(got, "maps to role") {
		t.Errorf("given user = the token's own name: hint %q, want the create hint", got)
	}
	got = loginHint(err, hintInput{User: "app", Given: true, Token: fakeJWT(miDBClaims(), 2)})
	for _, w := range []string{"select * from pgaadauth_list_principals(false);", "oid=9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f"} {
		if !strings.Contains(got, w) {
			t.Errorf("given user, token without a name: hint %q does not mention %q", got, w)
		}
	}
	got = loginHint(err, hintInput{User: "id-orders", Given: false, Token: fakeJWT(miDBClaims(), 3)})
	if !strings.Contains(got, "pgaadauth_create_principal('id-orders', false, false)") {
		t.Errorf("derived user: hint %q", got)
	}
}

func TestLoginHintPgBouncer(t *testing.T) {
	tok := fakeJWT(userClaims(), 1)
	for _, err := range []*pq.Error{
		{Code: "08P01", Message: "client sent partial pkt in startup phase"},
		{Code: "08P01", Message: "password too long"},
	} {
		got := loginHint(err, hintInput{User: "carol@contoso.com", Token: tok, Port: 6432})
		for _, w := range []string{"PgBouncer", "6432", "5432", "2047", fmt.Sprintf("%d bytes", len(tok))} {
			if !strings.Contains(got, w) {
				t.Errorf("%q: hint %q does not mention %q", err.Message, got, w)
			}
		}
	}
}

func TestLoginHintTransport(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "root.crt")
	_, readErr := os.ReadFile(missing)
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"unknown CA", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), []string{"sslrootcert", "DigiCert Global Root G2", "DigiCert Global Root CA", "Microsoft RSA Root CA 2017"}},
		{"unknown CA (text)", errors.New("x509: certificate signed by unknown authority"), []string{"sslrootcert", "DigiCert Global Root CA"}},
		{"missing sslrootcert", readErr, []string{"sslrootcert", "DigiCert Global Root G2"}},
		{"wrong host", errors.New("x509: certificate is valid for a.postgres.database.azure.com, not 10.0.0.4"), []string{"hostaddr"}},
		{"refused", errors.New("dial tcp: connection refused"), []string{"reached"}},
	} {
		got := loginHint(tc.err, hintInput{User: "app"})
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: hint %q does not mention %q", tc.name, got, w)
			}
		}
	}
}

// TestAudienceHintSuggestsOnlyDatabaseScopes: the server's wrong-audience
// refusal names a resource; the hint suggests it as azure_scope only when it
// is one of the four database scopes. Any other resource (Key Vault,
// Resource Manager, Graph, a look-alike) is named as one pgentra will not
// request, with the scope for the host instead.
func TestAudienceHintSuggestsOnlyDatabaseScopes(t *testing.T) {
	const refusal = `The access token does not have a valid audience claim. Please acquire a new token for the resource "%s".`
	const chinaScope = "https://ossrdbms-aad.database.chinacloudapi.cn/.default"
	for _, tc := range []struct {
		name, resource, host, scope string
		want, notWant               []string
	}{
		{"China server, public token", "https://ossrdbms-aad.database.chinacloudapi.cn", "srv.example.com", publicScope,
			[]string{"azure_scope=" + chinaScope}, nil},
		{"Cosmos DB for PostgreSQL", "https://token.postgres.cosmos.azure.com", "c-x.example.com", publicScope,
			[]string{"azure_scope=https://token.postgres.cosmos.azure.com/.default"}, nil},
		{"US Gov, trailing slash", "https://ossrdbms-aad.database.usgovcloudapi.net/", "srv.example.com", publicScope,
			[]string{"azure_scope=https://ossrdbms-aad.database.usgovcloudapi.net/.default"}, nil},
		{"Key Vault", "https://vault.azure.net", "srv.postgres.database.azure.com", publicScope,
			[]string{"will not request", `"https://vault.azure.net"`, "srv.postgres.database.azure.com", publicScope}, []string{"azure_scope=https://vault", "vault.azure.net/.default"}},
		{"Resource Manager", "https://management.azure.com", "srv.postgres.database.chinacloudapi.cn", chinaScope,
			[]string{"will not request", chinaScope}, []string{"azure_scope=https://management", "management.azure.com/.default"}},
		{"Graph", "https://graph.microsoft.com", "db.example.com", publicScope,
			[]string{"will not request", publicScope}, []string{"azure_scope=https://graph", "graph.microsoft.com/.default"}},
		{"look-alike", "https://ossrdbms-aad.database.windows.net.evil.example", "db.example.com", publicScope,
			[]string{"will not request"}, []string{"azure_scope=https://ossrdbms-aad.database.windows.net.evil"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := &pq.Error{Code: "28000", Message: fmt.Sprintf(refusal, tc.resource)}
			got := loginHint(err, hintInput{User: "app", Scope: tc.scope, Host: tc.host, Token: fakeJWT(miDBClaims(), 1)})
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("hint %q does not mention %q", got, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("hint %q mentions %q", got, w)
				}
			}
			// Every azure_scope the hint suggests is one the DSN accepts.
			for _, part := range strings.Split(got, "azure_scope=")[1:] {
				s := strings.FieldsFunc(part, func(r rune) bool { return r == ' ' || r == ';' || r == ')' || r == ',' })[0]
				if _, err := parseSettings(map[string]string{keyScope: s}); err != nil {
					t.Errorf("hint %q suggests azure_scope=%s, which the DSN refuses: %v", got, s, err)
				}
			}
		})
	}
}

// TestTransportHintAfterAzureUpgrade: when pgentra verified a connection the
// DSN asked for with sslmode=require (a host in Azure's database domains),
// a failed verification says why it verified and how to add roots.
func TestTransportHintAfterAzureUpgrade(t *testing.T) {
	up := tlsUpgrade{from: pq.SSLModeRequire, why: whyAzureDomain}
	for _, err := range []error{
		fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}),
		errors.New("x509: certificate is valid for other.example.com, not srv.postgres.database.azure.com"),
	} {
		got := loginHint(err, hintInput{User: "app", Host: "srv.postgres.database.azure.com", TLS: up})
		for _, w := range []string{"sslmode=require", "verify-full", "Azure's database domains", "public roots", "sslrootcert=", "sslrootcert=system", "azure_allow_insecure_tls=true"} {
			if !strings.Contains(got, w) {
				t.Errorf("%v: hint %q does not mention %q", err, got, w)
			}
		}
		// Without the upgrade, nothing about it.
		if got := loginHint(err, hintInput{User: "app", Host: "srv.postgres.database.azure.com"}); strings.Contains(got, "sslmode=require") {
			t.Errorf("%v: hint %q talks of an upgrade that did not happen", err, got)
		}
	}
	// A dial failure is not about verification.
	if got := loginHint(errors.New("dial tcp: connection refused"), hintInput{User: "app", TLS: up}); strings.Contains(got, "sslmode=require") {
		t.Errorf("connection refused: hint %q talks of the upgrade", got)
	}
}
