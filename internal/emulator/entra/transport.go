package entra

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// rewriteTransport sends every request to one server, whatever its URL says,
// so SDK code that insists on http://169.254.169.254 or
// https://login.microsoftonline.com reaches the emulator. The Host header is
// kept, so the authority can answer with URLs on the host the client asked for.
type rewriteTransport struct {
	target *url.URL
	client *http.Client
}

func newRewriteTransport(serverURL string, client *http.Client) *rewriteTransport {
	u, err := url.Parse(serverURL)
	if err != nil { // httptest URLs always parse; keep a usable value anyway
		u = &url.URL{Scheme: "http", Host: "127.0.0.1"}
	}
	return &rewriteTransport{target: u, client: client}
}

// Do implements policy.Transporter.
func (t *rewriteTransport) Do(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Scheme = t.target.Scheme
	r.URL.Host = t.target.Host
	if r.Host == "" {
		r.Host = req.URL.Host
	}
	resp, err := t.client.Do(r)
	if err != nil {
		return nil, fmt.Errorf("entra emulator transport: %w", err)
	}
	return resp, nil
}

// routeTransport sends plain-HTTP requests (IMDS, App Service) to the identity
// server and HTTPS requests (the authority) to the authority.
type routeTransport struct {
	identity, authority policy.Transporter
}

// Do implements policy.Transporter.
func (t routeTransport) Do(req *http.Request) (*http.Response, error) {
	next := t.authority
	if req.URL.Scheme == "http" {
		next = t.identity
	}
	if next == nil {
		return nil, fmt.Errorf("entra emulator transport: no emulated endpoint for %s://%s", req.URL.Scheme, req.URL.Host)
	}
	return next.Do(req)
}

// CombinedClientOptions returns client options that reach both servers (either
// may be nil): http:// requests go to id, https:// requests to auth, and the
// authority host is auth's. Use it for DefaultAzureCredential, whose single
// ClientOptions serve both its managed-identity and its Entra credentials.
func CombinedClientOptions(id *IdentityServer, auth *Authority) azcore.ClientOptions {
	var rt routeTransport
	var o azcore.ClientOptions
	if id != nil {
		rt.identity = id.Transport()
	}
	if auth != nil {
		rt.authority = auth.Transport()
		o = auth.ClientOptions()
	}
	o.Transport = rt
	return o
}
