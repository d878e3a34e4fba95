// Package clouds is pgentra's one table of the Azure clouds a PostgreSQL
// server can live in: per database resource, the host-name suffix of its
// servers, the token scope they accept, the Resource Manager scope of the
// same cloud and the Entra authority that issues both. The token package's
// Scope constants and ScopeForHost, the driver's credential authority,
// azure_scope's accepted values, the TLS policy's Azure domains and the
// user-name lookup all read it, so a new cloud is one entry here.
package clouds

import (
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

// Database scopes (what a server accepts as a login token's audience) and
// Resource Manager scopes. The token package exports the database ones.
const (
	ScopePublic = "https://ossrdbms-aad.database.windows.net/.default"
	ScopeChina  = "https://ossrdbms-aad.database.chinacloudapi.cn/.default"
	ScopeUSGov  = "https://ossrdbms-aad.database.usgovcloudapi.net/.default"
	ScopeCosmos = "https://token.postgres.cosmos.azure.com/.default"

	ManagementPublic = "https://management.azure.com/.default"
	ManagementChina  = "https://management.chinacloudapi.cn/.default"
	ManagementUSGov  = "https://management.usgovcloudapi.net/.default"
)

// Cloud is one database resource of one Azure cloud.
type Cloud struct {
	// HostSuffix ends the names of its servers; the leading dot makes it
	// match whole labels only.
	HostSuffix string
	// Scope is the token scope its servers accept.
	Scope string
	// ManagementScope is the Resource Manager scope of the same cloud: a
	// managed identity's token for it names the identity (xms_mirid).
	ManagementScope string
	// config is the cloud's azcore configuration (its Entra authority). A
	// pointer to azcore's variable, read when asked for, as azcore's own
	// users do.
	config *cloud.Configuration
}

// Config returns the azcore configuration of the cloud: its Entra
// authority, for a credential pgentra builds.
func (c Cloud) Config() cloud.Configuration { return *c.config }

// table lists the clouds, the public one first (the default).
var table = [...]Cloud{
	{".postgres.database.azure.com", ScopePublic, ManagementPublic, &cloud.AzurePublic},
	{".postgres.database.chinacloudapi.cn", ScopeChina, ManagementChina, &cloud.AzureChina},
	{".postgres.database.usgovcloudapi.net", ScopeUSGov, ManagementUSGov, &cloud.AzureGovernment},
	{".postgres.cosmos.azure.com", ScopeCosmos, ManagementPublic, &cloud.AzurePublic},
}

// ForHost returns the cloud whose servers' names end in host's suffix:
// case-insensitive, whole labels, a trailing dot (a fully qualified name)
// allowed. ok is false for any other host (an IP address, localhost, a
// custom DNS name); Public is then returned.
func ForHost(host string) (c Cloud, ok bool) {
	host = strings.TrimSuffix(host, ".")
	for _, c := range table {
		n := len(c.HostSuffix)
		if len(host) > n && strings.EqualFold(host[len(host)-n:], c.HostSuffix) {
			return c, true
		}
	}
	return table[0], false
}

// ForScope returns the cloud whose database scope is scope (exactly, as
// azure_scope normalises it); the public cloud for any other scope.
func ForScope(scope string) Cloud {
	for _, c := range table {
		if c.Scope == scope {
			return c
		}
	}
	return table[0]
}

// Scopes returns the database scopes, the public cloud's first: the only
// scopes a connection string may ask for.
func Scopes() []string {
	out := make([]string, len(table))
	for i, c := range table {
		out[i] = c.Scope
	}
	return out
}
