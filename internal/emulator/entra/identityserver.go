package entra

import (
	"net/http"
	"net/http/httptest"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// IMDSPath is the IMDS token path; AppServicePath is the path of the App
// Service identity endpoint (IDENTITY_ENDPOINT).
const (
	IMDSPath       = "/metadata/identity/oauth2/token"
	AppServicePath = "/msi/token"
)

// IdentityServerOptions configures [NewIdentityServer]. The zero value serves
// the tenant's first system-assigned identity as the default identity.
type IdentityServerOptions struct {
	// SystemAssigned names the identity served when a request names none;
	// empty means the tenant's first system-assigned identity at request time.
	SystemAssigned string
	// NoSystemAssigned makes requests that name no identity fail as on a
	// host without a system-assigned identity.
	NoSystemAssigned bool
	// AppServiceSecret is the expected X-IDENTITY-HEADER value; empty means a
	// random one. Read it from AppServiceEnv.
	AppServiceSecret string
}

// IdentityServer serves the IMDS and App Service managed-identity token
// endpoints for one tenant over plain HTTP on loopback, with scriptable
// faults and request counters. Close it when done (t.Cleanup).
type IdentityServer struct {
	tenant  *Tenant
	opts    IdentityServerOptions
	srv     *httptest.Server
	closing *closer
	faults  faults
	count   counters
}

// NewIdentityServer starts the identity endpoints for t.
func NewIdentityServer(t *Tenant, opts IdentityServerOptions) *IdentityServer {
	if opts.AppServiceSecret == "" {
		opts.AppServiceSecret = randomToken(24)
	}
	s := &IdentityServer{tenant: t, opts: opts, closing: newCloser()}
	mux := http.NewServeMux()
	mux.HandleFunc(IMDSPath, s.serveIMDS)
	mux.HandleFunc(AppServicePath, s.serveAppService)
	s.srv = httptest.NewServer(mux)
	return s
}

// URL returns the server's base URL, e.g. http://127.0.0.1:41234.
func (s *IdentityServer) URL() string { return s.srv.URL }

// Close releases hung requests, then stops the server and waits for its handlers.
func (s *IdentityServer) Close() {
	s.closing.close()
	s.srv.Close()
}

// Transport returns a transporter that sends every request, whatever its
// scheme and host (notably http://169.254.169.254), to this server. Put it in
// ManagedIdentityCredentialOptions.ClientOptions.Transport.
func (s *IdentityServer) Transport() policy.Transporter {
	return newRewriteTransport(s.srv.URL, s.srv.Client())
}

// Script queues faults, consumed one per token request (IMDS and App
// Service alike) before the default applies again.
func (s *IdentityServer) Script(faults ...Fault) { s.faults.script(faults) }

// SetDefault sets the standing fault used when the script is empty, e.g.
// Fault{Status: 503} for "endpoint down" or Fault{Drop: true}; Fault{}
// restores normal service.
func (s *IdentityServer) SetDefault(f Fault) { s.faults.setDefault(f) }

// Pending returns how many scripted faults are not yet consumed.
func (s *IdentityServer) Pending() int { return s.faults.pending() }

// Requests returns the number of token requests received (any outcome),
// including malformed ones such as DefaultAzureCredential's IMDS probe.
func (s *IdentityServer) Requests() int { return s.count.get("") }

// RequestsFor returns the number of token requests that named (or defaulted
// to) p, whatever their outcome.
func (s *IdentityServer) RequestsFor(p Principal) int {
	if p.ObjectID == "" {
		return 0
	}
	return s.count.get(p.ObjectID)
}

// AppServiceEnv returns the environment variables App Service sets for a
// managed identity: IDENTITY_ENDPOINT (this server's App Service URL) and
// IDENTITY_HEADER (the secret). Set both (t.Setenv) before constructing
// the credential: azidentity reads them in NewManagedIdentityCredential and
// then talks to the endpoint directly, no Transport needed.
func (s *IdentityServer) AppServiceEnv() map[string]string {
	return map[string]string{
		"IDENTITY_ENDPOINT": s.srv.URL + AppServicePath,
		"IDENTITY_HEADER":   s.opts.AppServiceSecret,
	}
}

// identityFor resolves the identity a request names by one of the selector
// parameters, or the default system-assigned identity. It returns the
// principal and whether one was found; selectors reports how many selector
// parameters were present.
func (s *IdentityServer) identityFor(byClient, byObject, byResource string) (p Principal, found bool, selectors int) {
	for _, v := range []string{byClient, byObject, byResource} {
		if v != "" {
			selectors++
		}
	}
	switch {
	case selectors > 1:
		return Principal{}, false, selectors
	case byClient != "":
		p, found = s.tenant.ByClientID(byClient)
	case byObject != "":
		p, found = s.tenant.ByObjectID(byObject)
	case byResource != "":
		p, found = s.tenant.ByResourceID(byResource)
	case s.opts.NoSystemAssigned:
		return Principal{}, false, 0
	case s.opts.SystemAssigned != "":
		p, found = s.tenant.ByName(s.opts.SystemAssigned)
		found = found && p.Kind == SystemAssignedIdentity
	default:
		p, found = s.tenant.firstSystemAssigned()
	}
	if found && !p.IsManagedIdentity() {
		return Principal{}, false, selectors
	}
	return p, found, selectors
}
