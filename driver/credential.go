package driver

import (
	"fmt"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/token"
)

// cloudForScope picks the Entra authority that issues tokens for scope: a
// sovereign-cloud server needs a sovereign-cloud login.
func cloudForScope(scope string) (cloud.Configuration, string) {
	switch scope {
	case token.ScopeChina:
		return cloud.AzureChina, "https://management.chinacloudapi.cn/.default"
	case token.ScopeUSGov:
		return cloud.AzureGovernment, "https://management.usgovcloudapi.net/.default"
	}
	return cloud.AzurePublic, token.ScopeManagement
}

// newCredential builds the credential that azure_credential names. It runs
// once per Connector: a credential per connection would mean an IMDS call or
// an `az` process per connection (DESIGN §12).
func newCredential(s settings, scope string, o *options, getenv func(string) string) (azcore.TokenCredential, error) {
	co := o.clientOptions
	if co.Cloud.ActiveDirectoryAuthorityHost == "" && getenv("AZURE_AUTHORITY_HOST") == "" {
		co.Cloud, _ = cloudForScope(scope)
	}
	noDiscovery := o.disableInstanceDiscovery
	wrap := func(cred azcore.TokenCredential, err error) (azcore.TokenCredential, error) {
		if err != nil {
			return nil, fmt.Errorf("pgentra: building the %s credential (azure_credential=%s): %w", credentialLabel(s.credential), s.credential, err)
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
		secret := getenv(s.clientSecretEnv)
		if s.tenantID == "" || s.clientID == "" || secret == "" {
			return nil, configErr(keyCredential, s.credential, "client_secret needs azure_tenant_id, azure_client_id and the secret in $%s (secrets are never DSN keys)", s.clientSecretEnv)
		}
		return wrap(azidentity.NewClientSecretCredential(s.tenantID, s.clientID, secret, &azidentity.ClientSecretCredentialOptions{
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
		return wrap(azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: s.tenantID}))
	case credAzureDeveloperCLI:
		return wrap(azidentity.NewAzureDeveloperCLICredential(&azidentity.AzureDeveloperCLICredentialOptions{TenantID: s.tenantID}))
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

func credentialLabel(kind string) string {
	return strings.ReplaceAll(kind, "_", " ")
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
