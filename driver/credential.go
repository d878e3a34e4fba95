package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/internal/clouds"
)

// newCredential builds the credential that azure_credential names. It runs
// once per Connector: a credential per connection would mean an IMDS call or
// an `az` process per connection.
func newCredential(s settings, scope string, o *options, getenv func(string) string) (azcore.TokenCredential, error) {
	co := o.clientOptions
	if co.Cloud.ActiveDirectoryAuthorityHost == "" && getenv("AZURE_AUTHORITY_HOST") == "" {
		// A sovereign-cloud server needs a sovereign-cloud login.
		co.Cloud = clouds.ForScope(scope).Config()
	}
	noDiscovery := o.disableInstanceDiscovery || loopbackAuthority(firstNonEmpty(co.Cloud.ActiveDirectoryAuthorityHost, getenv("AZURE_AUTHORITY_HOST")))
	info := describeCredential(s, getenv)
	last := &lastAnswer{}
	co.PerRetryPolicies = append(append([]policy.Policy(nil), co.PerRetryPolicies...), last)
	wrap := func(cred azcore.TokenCredential, err error) (azcore.TokenCredential, error) {
		if err != nil {
			if errors.As(err, new(*ConfigError)) {
				return nil, err // names its key already, with "pgentra:"
			}
			return nil, fmt.Errorf("pgentra: building the %s (azure_credential=%s): %w", info.what, s.credential, err)
		}
		return &namedCredential{TokenCredential: cred, info: info, last: last}, nil
	}
	unwrapped := func(cred azcore.TokenCredential, err error) (azcore.TokenCredential, error) {
		if err != nil {
			return nil, fmt.Errorf("pgentra: building the %s (azure_credential=%s): %w", info.what, s.credential, err)
		}
		return cred, nil
	}
	switch s.credential {
	case credManagedIdentity:
		return wrap(azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: co, ID: managedID(s),
		}))
	case credWorkloadIdentity:
		return wrap(azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, ClientID: s.clientID, TenantID: s.tenantID,
			TokenFilePath: s.federatedTokenFile, DisableInstanceDiscovery: noDiscovery,
		}))
	case credClientSecret:
		// Like client_certificate (and azidentity's EnvironmentCredential),
		// what the DSN leaves out comes from AZURE_TENANT_ID / AZURE_CLIENT_ID.
		tenant := firstNonEmpty(s.tenantID, getenv("AZURE_TENANT_ID"))
		client := firstNonEmpty(s.clientID, getenv("AZURE_CLIENT_ID"))
		secret := getenv(s.clientSecretEnv)
		if tenant == "" || client == "" || secret == "" {
			return nil, configErr(keyCredential, s.credential, "client_secret needs azure_tenant_id and azure_client_id (or $AZURE_TENANT_ID and $AZURE_CLIENT_ID) and the secret in $%s (secrets are never DSN keys)", s.clientSecretEnv)
		}
		return wrap(azidentity.NewClientSecretCredential(tenant, client, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
		}))
	case credClientCertificate:
		path := firstNonEmpty(s.certificatePath, getenv("AZURE_CLIENT_CERTIFICATE_PATH"))
		tenant := firstNonEmpty(s.tenantID, getenv("AZURE_TENANT_ID"))
		client := firstNonEmpty(s.clientID, getenv("AZURE_CLIENT_ID"))
		if path == "" || tenant == "" || client == "" {
			return nil, configErr(keyCredential, s.credential, "client_certificate needs azure_tenant_id, azure_client_id and azure_client_certificate_path (or their AZURE_* variables)")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: reading azure_client_certificate_path: %w", ErrInvalidConfig, err)
		}
		var pw []byte
		if p := getenv(envCertPassword); p != "" {
			pw = []byte(p)
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			// azidentity's parse errors don't quote the password.
			return nil, configErr(keyCertificatePath, path, "cannot parse the certificate (PEM or PKCS#12; password from $%s): %v", envCertPassword, err)
		}
		return wrap(azidentity.NewClientCertificateCredential(tenant, client, certs, key, &azidentity.ClientCertificateCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
		}))
	case credEnvironment:
		return wrap(azidentity.NewEnvironmentCredential(&azidentity.EnvironmentCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
		}))
	case credAzureCLI:
		// Not wrapped (see namedCredential): tokenError names it by its kind.
		return unwrapped(azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: s.tenantID}))
	case credAzureDeveloperCLI:
		return unwrapped(azidentity.NewAzureDeveloperCLICredential(&azidentity.AzureDeveloperCLICredentialOptions{TenantID: s.tenantID}))
	}
	// default
	if s.clientID == "" && s.objectID == "" && s.resourceID == "" && s.federatedTokenFile == "" {
		return wrap(azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: co, TenantID: s.tenantID, DisableInstanceDiscovery: noDiscovery,
		}))
	}
	// DefaultAzureCredential takes the identity only from AZURE_CLIENT_ID, so
	// a DSN that names one gets the same chain built with that identity.
	return wrap(defaultChain(s, co, noDiscovery, getenv))
}

// loopbackAuthority reports whether the Entra authority host is on this
// machine (an emulator or a test authority). Instance discovery would ask
// login.microsoftonline.com about a host it cannot know, so it is turned off
// for such an authority as if WithDisableInstanceDiscovery were given.
func loopbackAuthority(authority string) bool {
	u, err := url.Parse(authority)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// defaultChain mirrors DefaultAzureCredential's order (environment, workload
// identity, managed identity, Azure CLI, Azure Developer CLI, Azure
// PowerShell) and its AZURE_TOKEN_CREDENTIALS selection ("prod", "dev" or
// one credential's type name), with the identity given in the DSN.
func defaultChain(s settings, co azcore.ClientOptions, noDiscovery bool, getenv func(string) string) (azcore.TokenCredential, error) {
	// Like DefaultAzureCredential, fall back to AZURE_CLIENT_ID / AZURE_TENANT_ID
	// for what the DSN leaves out (the usual AKS set-up names only the file).
	clientID := firstNonEmpty(s.clientID, getenv("AZURE_CLIENT_ID"))
	tenantID := firstNonEmpty(s.tenantID, getenv("AZURE_TENANT_ID"))
	miID := managedID(s)
	if miID == nil && clientID != "" {
		miID = azidentity.ClientID(clientID)
	}
	type link struct {
		name, group string
		build       func() (azcore.TokenCredential, error)
	}
	links := []link{
		{"EnvironmentCredential", "prod", func() (azcore.TokenCredential, error) {
			if getenv("AZURE_CLIENT_SECRET") == "" && getenv("AZURE_CLIENT_CERTIFICATE_PATH") == "" {
				return nil, nil
			}
			return azidentity.NewEnvironmentCredential(&azidentity.EnvironmentCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: noDiscovery})
		}},
		{"WorkloadIdentityCredential", "prod", func() (azcore.TokenCredential, error) {
			file := firstNonEmpty(s.federatedTokenFile, getenv("AZURE_FEDERATED_TOKEN_FILE"))
			if file == "" || clientID == "" {
				return nil, nil
			}
			return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
				ClientOptions: co, ClientID: clientID, TenantID: tenantID, TokenFilePath: file, DisableInstanceDiscovery: noDiscovery,
			})
		}},
		{"ManagedIdentityCredential", "prod", func() (azcore.TokenCredential, error) {
			return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: co, ID: miID})
		}},
		{"AzureCLICredential", "dev", func() (azcore.TokenCredential, error) {
			return azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: s.tenantID})
		}},
		{"AzureDeveloperCLICredential", "dev", func() (azcore.TokenCredential, error) {
			return azidentity.NewAzureDeveloperCLICredential(&azidentity.AzureDeveloperCLICredentialOptions{TenantID: s.tenantID})
		}},
		{"AzurePowerShellCredential", "dev", func() (azcore.TokenCredential, error) {
			return azidentity.NewAzurePowerShellCredential(&azidentity.AzurePowerShellCredentialOptions{TenantID: s.tenantID})
		}},
	}
	want := strings.ToLower(strings.TrimSpace(getenv("AZURE_TOKEN_CREDENTIALS")))
	var chain []azcore.TokenCredential
	for _, l := range links {
		if want != "" && want != l.group && want != strings.ToLower(l.name) {
			continue
		}
		c, err := l.build()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		if c != nil {
			chain = append(chain, c)
		}
	}
	if len(chain) == 0 {
		return nil, configErr("AZURE_TOKEN_CREDENTIALS", want, `selects no usable credential; accepted: "prod", "dev" or a credential type name such as "ManagedIdentityCredential"`)
	}
	return azidentity.NewChainedTokenCredential(chain, nil)
}

func managedID(s settings) azidentity.ManagedIDKind {
	switch {
	case s.clientID != "":
		return azidentity.ClientID(s.clientID)
	case s.objectID != "":
		return azidentity.ObjectID(s.objectID)
	case s.resourceID != "":
		return azidentity.ResourceID(s.resourceID)
	}
	return nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// TokenError is a failure to get an access token from the credential: no
// login was attempted. Its message names the credential by what it is
// ("managed identity (client id …)", "DefaultAzureCredential chain", "Azure
// CLI (az)"), the credential's answer in brief (the identity endpoint's
// HTTP status and message), a one-line hint and a link to the
// troubleshooting page; it never holds a token or a secret. Unwrap gives the
// token cache's error, whose text has the credential's full answer, so
// errors.Is works for context errors and token.ErrClosed, and errors.As for
// azidentity's error types.
type TokenError struct {
	// Credential says what the credential is, e.g.
	// `managed identity (client id 1b2c…)`.
	Credential string
	// IdentityKey is the DSN key (or environment variable) that named the
	// identity, e.g. "azure_client_id"; "" when none did.
	IdentityKey string
	// Hint says in full what to check and how (the commands to run). Error()
	// gives only its first line and a link to the troubleshooting page.
	Hint string
	// Err is the error from the token cache and the credential.
	Err error

	summary string // the one-line hint Error() shows; "" → Hint
	anchor  anchor // the troubleshooting page's section; "" → none
}

// Error names the credential, then the cause in brief, a one-line hint and
// a link to the troubleshooting page. "pgentra:" appears once: the cause is
// the credential's own error, found inside the token cache's (which says
// "pgentra:" itself); when the cache's error has none (it is closed, or a
// fetch timed out), that error leads and the credential follows in
// brackets.
func (e *TokenError) Error() string {
	var w *waitError
	if errors.As(e.Err, &w) {
		return "pgentra: " + e.Credential + ": " + briefCause(e.Err) + hintLine(e.summary, e.Hint, e.anchor)
	}
	if inner := credentialCause(e.Err); inner != nil {
		return "pgentra: " + e.Credential + ": " + briefCause(inner) + hintLine(e.summary, e.Hint, e.anchor)
	}
	return errorText(e.Err) + " [" + e.Credential + "]" + hintLine(e.summary, e.Hint, e.anchor)
}

// credentialCause is the outermost error inside err that pgentra did not
// make (its text does not start with "pgentra:") and is no context error:
// the credential's own; nil when there is none.
func credentialCause(err error) error {
	if err == nil {
		return nil
	}
	if !strings.HasPrefix(err.Error(), "pgentra: ") {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil
		}
		return err
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return credentialCause(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if c := credentialCause(e); c != nil {
				return c
			}
		}
	}
	return nil
}

// Unwrap returns the token cache's error.
func (e *TokenError) Unwrap() error { return e.Err }

// credentialInfo is what error messages say about a credential pgentra
// built: never a secret, only identifiers.
type credentialInfo struct {
	what string // "managed identity (client id …)"
	// idKey / idValue: the DSN key or variable that named the identity.
	idKey, idValue string
	// compute: a managed identity of the compute may be the one asked, so a
	// failure may mean the identity is not assigned to this VM / app.
	compute bool
}

// namedCredential is a credential pgentra built, with what its errors
// should call it. GetToken is the wrapped credential's own. The developer
// CLI credentials are never wrapped: token.Cache tells them apart by their
// azidentity type (they refuse claims challenges), and their kind says all
// there is to say about them.
type namedCredential struct {
	azcore.TokenCredential
	info credentialInfo
	last *lastAnswer // what its endpoint last answered to a failed request
}

// Unwrap returns the azidentity credential.
func (n *namedCredential) Unwrap() azcore.TokenCredential { return n.TokenCredential }

// describeCredential names the credential newCredential builds for s.
func describeCredential(s settings, getenv func(string) string) credentialInfo {
	var i credentialInfo
	switch {
	case s.clientID != "":
		i.idKey, i.idValue = keyClientID, s.clientID
		if getenv(envSCClientID) == s.clientID {
			i.idKey = keyClientID + " (from " + envSCClientID + ")"
		}
	case s.objectID != "":
		i.idKey, i.idValue = keyObjectID, s.objectID
	case s.resourceID != "":
		i.idKey, i.idValue = keyResourceID, s.resourceID
	}
	mi := func() string {
		switch {
		case s.clientID != "":
			return "client id " + s.clientID
		case s.objectID != "":
			return "object id " + s.objectID
		case s.resourceID != "":
			return "resource id " + s.resourceID
		}
		return "system-assigned"
	}
	// Explicitly chosen credentials also say the setting that chose them.
	set := "azure_credential=" + s.credential
	switch s.credential {
	case credManagedIdentity:
		i.what, i.compute = "managed identity ("+mi()+"; "+set+")", true
	case credWorkloadIdentity:
		i.what = "workload identity (client id " + orNone(firstNonEmpty(s.clientID, getenv("AZURE_CLIENT_ID"))) + "; " + set + ")"
	case credClientSecret:
		i.what = fmt.Sprintf("service principal (client id %s, tenant %s, client secret in $%s; %s)",
			orNone(firstNonEmpty(s.clientID, getenv("AZURE_CLIENT_ID"))), orNone(firstNonEmpty(s.tenantID, getenv("AZURE_TENANT_ID"))), s.clientSecretEnv, set)
	case credClientCertificate:
		i.what = fmt.Sprintf("service principal (client id %s, tenant %s, certificate %s; %s)",
			orNone(firstNonEmpty(s.clientID, getenv("AZURE_CLIENT_ID"))), orNone(firstNonEmpty(s.tenantID, getenv("AZURE_TENANT_ID"))),
			orNone(firstNonEmpty(s.certificatePath, getenv("AZURE_CLIENT_CERTIFICATE_PATH"))), set)
	case credEnvironment:
		i.what = "EnvironmentCredential (AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH; " + set + ")"
	case credAzureCLI, credAzureDeveloperCLI:
		i.what = credentialName(nil, s.credential)
	default:
		i.compute = true
		if i.idKey == "" {
			if id := getenv("AZURE_CLIENT_ID"); id != "" {
				// DefaultAzureCredential asks for this identity.
				i.idKey, i.idValue = "AZURE_CLIENT_ID", id
			}
		}
		switch {
		case s.clientID != "" || s.objectID != "" || s.resourceID != "":
			// Built by defaultChain: azidentity calls it ChainedTokenCredential.
			i.what = "DefaultAzureCredential chain (" + mi() + ")"
		case i.idKey != "":
			i.what = "DefaultAzureCredential chain (managed identity client id " + i.idValue + " from AZURE_CLIENT_ID)"
		default:
			i.what = "DefaultAzureCredential chain"
		}
	}
	return i
}

// hint says what to check when a token can't be had from a credential
// described by i.
func (i credentialInfo) hint() string {
	switch {
	case i.idKey == "":
		return ""
	case i.compute:
		return fmt.Sprintf("%s=%s names the managed identity to use: check that it is assigned to this compute. "+
			"List the compute's identities (clientId, principalId, resource id) with "+
			"`az vm identity show -g RG -n VM`, `az webapp identity show -g RG -n APP` (Functions: `az functionapp identity show`), "+
			"`az containerapp identity show -g RG -n APP`, or `az aks show -g RG -n CLUSTER --query identityProfile`; "+
			"then set %s to one of them, or assign this identity (e.g. `az vm identity assign -g RG -n VM --identities ID`)",
			i.idKey, i.idValue, i.idKey)
	default:
		return fmt.Sprintf("%s=%s must be the client ID of the app registration or managed identity the token is for "+
			"(`az ad sp show --id %s` shows which); check azure_tenant_id too", i.idKey, i.idValue, i.idValue)
	}
}

// newTokenError explains a failure to get a token from cred, which is a
// credential newCredential built (a *namedCredential), one given with
// WithCredential, or nil when the Connector got a token cache from
// WithTokenCache. credKind is the Connector's name for it.
func newTokenError(cred azcore.TokenCredential, credKind string, err error) *TokenError {
	te := &TokenError{Credential: credentialName(cred, credKind), Err: err}
	var info credentialInfo
	if n, ok := cred.(*namedCredential); ok {
		info = n.info
		te.IdentityKey = info.idKey
	}
	h := tokenHint(info, credKind, err)
	te.Hint, te.summary, te.anchor = h.full, h.summary, h.anchor
	return te
}

// noCredentialHint explains a DefaultAzureCredential chain in which nothing
// works: the program does not run on Azure compute (or its identity
// endpoint does not answer) and no developer tool is signed in.
const noCredentialHint = "nothing in the DefaultAzureCredential chain could get a token: this does not look like Azure compute with a managed identity (its identity endpoint did not answer) and no developer sign-in was found. " +
	"On a developer machine run `az login` (or `azd auth login`) and set azure_credential=azure_cli (or azure_developer_cli); " +
	"a service principal needs azure_credential=client_secret or client_certificate; with the emulator, run `source env.sh` first; " +
	"on Azure, check that the compute has a managed identity"

// tokenHint says what to check when a token can't be had from a credential
// described by info (zero for a credential pgentra did not build).
func tokenHint(info credentialInfo, credKind string, err error) hint {
	text := errorText(err)
	var afe *azidentity.AuthenticationFailedError
	status := 0
	if errors.As(err, &afe) && afe.RawResponse != nil {
		status = afe.RawResponse.StatusCode
	}
	unreachable := endpointUnreachable(err)
	chain := info.compute && credKind != credManagedIdentity
	switch {
	case strings.Contains(text, "Unable to load the proper Managed Identity"), strings.Contains(text, "Identity not found"),
		info.compute && status == 400:
		summary := "is a managed identity assigned to this compute?"
		if info.idKey != "" {
			summary = "is this identity assigned to the compute?"
		}
		return hint{summary, firstNonEmpty(info.hint(), "assign a managed identity to this compute, or name one that is with azure_client_id"), anchorNotAssigned}
	case credKind == credAzureCLI || credKind == credAzureDeveloperCLI:
		return hint{"run `az login` (or `azd auth login`), or check that az / azd is on PATH",
			"the developer CLI could not give a token: sign in with `az login` (azure_cli) or `azd auth login` (azure_developer_cli), check that the tool is on this program's PATH, and that azure_tenant_id, if set, is a tenant the signed-in account belongs to", anchorDeveloperCLI}
	case chain && (unreachable || strings.Contains(text, "Attempted credentials:")):
		return hint{"not on Azure? `az login` and azure_credential=azure_cli", noCredentialHint, anchorNoCredential}
	case errors.As(err, new(*waitError)) && !unreachable:
		// The cause shows the endpoint's last answer: the link says the rest.
		return hint{"", "the identity endpoint kept failing or was slow until the caller's deadline (its last answer is in the message); azidentity retries a managed identity's request for about 100 s: " +
			"allow the first connect more time, and check what the endpoint answered (a 400 or 404 names an identity not assigned to this compute)", anchorEndpoint}
	case unreachable:
		return hint{"is this Azure compute?",
			"the managed identity endpoint (IMDS, or App Service's IDENTITY_ENDPOINT) did not answer; it retries for about 100 s before it gives up: check that this program runs on Azure compute with a managed identity, " +
				"and that nothing (a proxy, a firewall, HTTP_PROXY without NO_PROXY for 169.254.169.254) stands in the way; elsewhere, use azure_credential=azure_cli or a service principal", anchorEndpoint}
	}
	return hint{"see the credential's answer", firstNonEmpty(info.hint(), "the credential's answer says why the token request failed (its text is in the wrapped error)"), anchorTokenRequest}
}

// endpointUnreachable reports a token request that got no answer: the
// recorded last answer says so, or the credential's error does.
func endpointUnreachable(err error) bool {
	var w *waitError
	if errors.As(err, &w) && w.last.noAnswer {
		return true
	}
	text := errorText(err)
	for _, s := range []string{"connection refused", "no response from the IMDS endpoint", "i/o timeout", "no such host", "network is unreachable"} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// briefCause is a token error's cause in a line: the identity endpoint's
// HTTP status and message, or the first line of the error; the full text
// stays in the error TokenError wraps.
func briefCause(err error) string {
	var w *waitError
	if errors.As(err, &w) {
		return contextText(err) + " waiting for a token (" + w.last.String() + ")"
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) && afe.RawResponse != nil {
		kind := afe.Error()
		if i := strings.IndexAny(kind, " :"); i > 0 {
			kind = kind[:i]
		}
		if kind == "ChainedTokenCredential" || kind == "DefaultAzureCredential" {
			return answerOf(afe.RawResponse) // the credential is named a chain already
		}
		return kind + ": " + answerOf(afe.RawResponse)
	}
	text := errorText(err)
	var ue *url.Error
	if errors.As(err, &ue) && !strings.Contains(text, "Attempted credentials:") {
		// A request that got no answer: the host and the transport's reason,
		// not the whole URL.
		kind := ""
		if i := strings.Index(text, ": "); i > 0 && !strings.ContainsAny(text[:i], " \"") {
			kind = text[:i] + ": "
		}
		host := ue.URL
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
		return kind + "no answer from " + host + ": " + lastPart(ue.Err.Error())
	}
	if i := strings.Index(text, "Attempted credentials:"); i >= 0 {
		return strings.TrimSpace(text[:i]) + " (no credential in the chain could get a token)"
	}
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = strings.TrimSpace(text[:i])
	}
	return shorten(text, 160)
}

func contextText(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return context.DeadlineExceeded.Error()
	}
	return context.Canceled.Error()
}

// shorten cuts s to at most n bytes (at a rune boundary), marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// credentialName names the Connector's credential by what it is, for
// messages: cred and credKind as the Connector holds them.
func credentialName(cred azcore.TokenCredential, credKind string) string {
	if n, ok := cred.(*namedCredential); ok {
		return n.info.what
	}
	switch credKind {
	case credAzureCLI:
		return "Azure CLI (az; azure_credential=azure_cli)"
	case credAzureDeveloperCLI:
		return "Azure Developer CLI (azd; azure_credential=azure_developer_cli)"
	case "custom credential":
		return "custom credential (given with WithCredential)"
	case "custom token cache":
		return "custom token cache (given with WithTokenCache)"
	}
	return strings.ReplaceAll(credKind, "_", " ") + " credential"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
