package entra

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Authority is a fake Entra authority (login.microsoftonline.com) for one
// tenant, served over TLS with httptest's self-signed certificate: OpenID
// discovery, instance discovery, JWKS and the v2.0 token endpoint
// (client credentials by secret, by certificate assertion or by
// workload-identity assertion). Close it
// when done.
type Authority struct {
	tenant  *Tenant
	srv     *httptest.Server
	closing *closer
	faults  faults
	count   counters
}

// NewAuthority starts an authority for t.
func NewAuthority(t *Tenant) *Authority {
	a := &Authority{tenant: t, closing: newCloser()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", a.serveOpenIDConfig)
	mux.HandleFunc("GET /common/discovery/instance", a.serveInstanceDiscovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", a.serveKeys)
	mux.HandleFunc("GET /common/discovery/v2.0/keys", a.serveKeys)
	mux.HandleFunc("/{tenant}/oauth2/v2.0/token", a.serveToken)
	a.srv = httptest.NewTLSServer(mux)
	return a
}

// URL returns the authority's base URL, e.g. https://127.0.0.1:41235; it is
// the value for AZURE_AUTHORITY_HOST.
func (a *Authority) URL() string { return a.srv.URL }

// Close releases hung requests, then stops the server and waits for its handlers.
func (a *Authority) Close() {
	a.closing.close()
	a.srv.Close()
}

// Client returns an HTTP client that trusts the authority's certificate.
func (a *Authority) Client() *http.Client { return a.srv.Client() }

// Transport returns a transporter that trusts the authority's certificate
// and sends every request to it, whatever the host: with it alone, a
// credential configured for the public cloud (login.microsoftonline.com,
// instance discovery included) reaches the emulator.
func (a *Authority) Transport() policy.Transporter {
	return newRewriteTransport(a.srv.URL, a.srv.Client())
}

// ClientOptions returns client options for Entra credentials
// (ClientSecret, ClientCertificate, WorkloadIdentity, ClientAssertion,
// DefaultAzureCredential):
// Cloud.ActiveDirectoryAuthorityHost is this authority and Transport is
// [Authority.Transport]. DisableInstanceDiscovery may be true or false.
func (a *Authority) ClientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: a.srv.URL + "/"},
		Transport: a.Transport(),
	}
}

// Script queues faults, consumed one per token-endpoint request (discovery
// and key requests are never faulted).
func (a *Authority) Script(faults ...Fault) { a.faults.script(faults) }

// SetDefault sets the standing fault for token requests; Fault{} restores service.
func (a *Authority) SetDefault(f Fault) { a.faults.setDefault(f) }

// Pending returns how many scripted faults are not yet consumed.
func (a *Authority) Pending() int { return a.faults.pending() }

// Requests returns the number of token-endpoint requests received.
func (a *Authority) Requests() int { return a.count.get("") }

// RequestsFor returns the number of token requests whose client_id was p's.
func (a *Authority) RequestsFor(p Principal) int {
	if p.ObjectID == "" {
		return 0
	}
	return a.count.get(p.ObjectID)
}

// base returns the URL prefix as the client addressed the authority (the Host
// header survives the rewriting transport), so the issuer in discovery
// matches the authority MSAL was configured with.
func base(r *http.Request) string { return "https://" + r.Host }

func (a *Authority) knownTenant(w http.ResponseWriter, r *http.Request) bool {
	if !strings.EqualFold(r.PathValue("tenant"), a.tenant.ID()) {
		aadError(w, http.StatusBadRequest, "invalid_tenant", 90002,
			"Tenant '"+url.PathEscape(r.PathValue("tenant"))+"' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
		return false
	}
	return true
}

// serveOpenIDConfig answers /{tenant}/v2.0/.well-known/openid-configuration
// with the endpoints MSAL requires (authorization, token, issuer on the same
// host) plus the usual extras.
func (a *Authority) serveOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	if !a.knownTenant(w, r) {
		return
	}
	b, tid := base(r), a.tenant.ID()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                b + "/" + tid + "/v2.0",
		"authorization_endpoint":                b + "/" + tid + "/oauth2/v2.0/authorize",
		"token_endpoint":                        b + "/" + tid + "/oauth2/v2.0/token",
		"device_authorization_endpoint":         b + "/" + tid + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  b + "/" + tid + "/oauth2/v2.0/logout",
		"jwks_uri":                              b + "/" + tid + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
	})
}

// serveInstanceDiscovery answers MSAL's instance discovery
// (/common/discovery/instance), which it calls unless
// DisableInstanceDiscovery is set. MSAL sends it to login.microsoftonline.com
// whatever its authority; the authority it asks about is in the
// authorization_endpoint parameter, and the answer points back at that host.
func (a *Authority) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host, tenant := r.Host, a.tenant.ID()
	if ae, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil && ae.Host != "" {
		host = ae.Host
		if seg := strings.Split(strings.TrimPrefix(ae.Path, "/"), "/"); seg[0] != "" {
			tenant = seg[0]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + host + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host,
			"preferred_cache":   host,
			"aliases":           []string{host},
		}},
	})
}

func (a *Authority) serveKeys(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(a.tenant.JWKS())
}
