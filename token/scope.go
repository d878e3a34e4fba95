package token

import "strings"

// Token scopes. A scope names the resource a token is for; Azure Database for PostgreSQL
// accepts only tokens for its own cloud's scope. Pass one to [NewCache], or let
// [ScopeForHost] pick it from the server's host name.
const (
	// ScopePublic is the scope of Azure Database for PostgreSQL in the public cloud. It is
	// the default whenever the host does not name another cloud.
	ScopePublic = "https://ossrdbms-aad.database.windows.net/.default"
	// ScopeChina is the scope of Azure Database for PostgreSQL in Azure China (21Vianet).
	ScopeChina = "https://ossrdbms-aad.database.chinacloudapi.cn/.default"
	// ScopeUSGov is the scope of Azure Database for PostgreSQL in Azure Government.
	ScopeUSGov = "https://ossrdbms-aad.database.usgovcloudapi.net/.default"
	// ScopeCosmos is the scope of Azure Cosmos DB for PostgreSQL clusters.
	ScopeCosmos = "https://token.postgres.cosmos.azure.com/.default"
	// ScopeManagement is the Azure Resource Manager scope. It is not for logging in: a
	// managed identity's management-scope token carries the xms_mirid claim that
	// database-scope tokens lack, so it is used to derive the role name
	// (see [Claims.PrincipalName]).
	ScopeManagement = "https://management.azure.com/.default"
)

// hostScopes maps host-name suffixes to scopes. The leading dot makes a
// suffix match whole labels only.
var hostScopes = [...]struct{ suffix, scope string }{
	{".postgres.database.azure.com", ScopePublic},
	{".postgres.database.chinacloudapi.cn", ScopeChina},
	{".postgres.database.usgovcloudapi.net", ScopeUSGov},
	{".postgres.cosmos.azure.com", ScopeCosmos},
}

// ScopeForHost returns the token scope for a PostgreSQL server host name, so that callers
// need not know which Azure cloud a server lives in. Matching is by suffix, ignores case
// and a trailing dot (a fully qualified name). Any other host — including "", IP
// addresses, "localhost", Unix socket paths and custom DNS names (CNAMEs) — gets
// [ScopePublic]; set the scope explicitly for a custom name in a sovereign cloud.
func ScopeForHost(host string) string {
	host = strings.TrimSuffix(strings.TrimSpace(host), ".")
	for _, hs := range hostScopes {
		n := len(hs.suffix)
		if len(host) > n && strings.EqualFold(host[len(host)-n:], hs.suffix) {
			return hs.scope
		}
	}
	return ScopePublic
}
