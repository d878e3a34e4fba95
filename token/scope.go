package token

import (
	"strings"

	"github.com/pgentra/pgentra/internal/clouds"
)

// Token scopes. A scope names the resource a token is for; Azure Database for PostgreSQL
// accepts only tokens for its own cloud's scope. Pass one to [NewCache], or let
// [ScopeForHost] pick it from the server's host name.
const (
	// ScopePublic is the scope of Azure Database for PostgreSQL in the public cloud,
	// https://ossrdbms-aad.database.windows.net/.default. It is the default whenever the
	// host does not name another cloud.
	ScopePublic = clouds.ScopePublic
	// ScopeChina is the scope of Azure Database for PostgreSQL in Azure China (21Vianet),
	// https://ossrdbms-aad.database.chinacloudapi.cn/.default.
	ScopeChina = clouds.ScopeChina
	// ScopeUSGov is the scope of Azure Database for PostgreSQL in Azure Government,
	// https://ossrdbms-aad.database.usgovcloudapi.net/.default.
	ScopeUSGov = clouds.ScopeUSGov
	// ScopeCosmos is the scope of Azure Cosmos DB for PostgreSQL clusters,
	// https://token.postgres.cosmos.azure.com/.default.
	ScopeCosmos = clouds.ScopeCosmos
	// ScopeManagement is the public cloud's Azure Resource Manager scope,
	// https://management.azure.com/.default. It is not for logging in: a managed
	// identity's management-scope token carries the xms_mirid claim that database-scope
	// tokens lack, so it is used to derive the role name (see [Claims.PrincipalName]).
	ScopeManagement = clouds.ManagementPublic
)

// ScopeForHost returns the token scope for a PostgreSQL server host name, so that callers
// need not know which Azure cloud a server lives in. Matching is by suffix
// (.postgres.database.azure.com, .postgres.database.chinacloudapi.cn,
// .postgres.database.usgovcloudapi.net, .postgres.cosmos.azure.com), whole labels only,
// ignores case, surrounding spaces and a trailing dot (a fully qualified name). Any other
// host — including "", IP addresses, "localhost", Unix socket paths and custom DNS names
// (CNAMEs) — gets [ScopePublic]; set the scope explicitly for a custom name in a
// sovereign cloud.
func ScopeForHost(host string) string {
	c, _ := clouds.ForHost(strings.TrimSpace(host))
	return c.Scope
}
