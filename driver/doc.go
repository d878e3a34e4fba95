// Package driver registers the "pgentra" database/sql driver: lib/pq with a
// Microsoft Entra access token as the password of every new connection, for
// Azure Database for PostgreSQL without stored passwords.
//
// Importing the package is enough:
//
//	import _ "github.com/pgentra/pgentra/driver"
//
//	db, err := sql.Open("pgentra", "host=myserver.postgres.database.azure.com user=my-identity dbname=app")
//
// Each time the pool opens a physical connection, the Connector takes a token
// from its token.Cache (usually without any I/O), gives it to pq as the
// password and returns pq's own connection. Azure checks the token only at
// login, so an open connection outlives its token; tokens are refreshed ahead
// of expiry for the connections still to come. A login refused with a cached
// token is retried once with a new one, asked for past the credential's own
// cache (MSAL keeps managed-identity and service-principal tokens for
// hours); one token is never sent twice, so when the credential can only
// hand the refused token back (the Azure CLI), there is no retry. There is
// none either when the server already refused that token when it was the
// newest (a misconfigured role): a new token would not help, and the
// credential is not asked again on every connect. When the server says
// "expired" of a token whose exp is still ahead by this machine's clock,
// the error's hint names clock skew and the measured difference.
//
// With no user in the DSN, the role is derived from the token; a managed
// identity's database token names nobody, so the same credential is asked
// once for a management-scope token. That lookup is shared by concurrent
// connects (each stops waiting when its ctx ends), remembered for an
// identity that names no principal, and backed off after a failure, whose
// cause the error reports.
//
// # Connection strings
//
// Both of pq's forms work — postgres:// URLs and key=value strings — with
// these extra keys, which are removed before pq sees the string:
//
//	azure_credential               default | managed_identity | workload_identity | client_secret |
//	                               client_certificate | environment | azure_cli | azure_developer_cli
//	                               (default: DefaultAzureCredential)
//	azure_client_id                user-assigned managed identity, or the app's client ID
//	azure_object_id                user-assigned managed identity by object ID
//	azure_resource_id              user-assigned managed identity by ARM resource ID
//	azure_tenant_id                tenant for service principals, workload identity, CLI
//	azure_client_certificate_path  certificate for client_certificate
//	azure_federated_token_file     token file for workload_identity
//	azure_scope                    token scope (default: from the host name)
//	azure_refresh_margin           refresh this long before expiry, in the background (default 5m; short
//	                               tokens at half-life; 0s refreshes only at the last moment, callers wait)
//	azure_allow_insecure_tls       true allows sslmode disable/allow/prefer to a non-local host
//
// Secrets are never DSN keys: a client secret comes from AZURE_CLIENT_SECRET
// (or AZURE_POSTGRESQL_CLIENTSECRET), a certificate password from
// AZURE_CLIENT_CERTIFICATE_PASSWORD. A password in the DSN is an error.
// An empty DSN uses Azure Service Connector's AZURE_POSTGRESQL_CONNECTIONSTRING,
// AZURE_POSTGRESQL_CLIENTID, AZURE_POSTGRESQL_CLIENTSECRET and
// AZURE_POSTGRESQL_TENANTID.
//
// # Scope and cloud
//
// The scope follows the host: *.postgres.database.azure.com (and anything
// unknown) → https://ossrdbms-aad.database.windows.net/.default; the China and
// US Government hosts select their own scope and Entra authority; Cosmos DB
// for PostgreSQL hosts select https://token.postgres.cosmos.azure.com/.default.
//
// # TLS
//
// Without an sslmode, pgentra uses verify-full (pq alone would use require,
// which does not check the certificate). sslmode disable, allow and prefer are
// refused unless every host is loopback or a Unix socket, or
// azure_allow_insecure_tls=true: the token must not travel in clear.
//
// # User name
//
// An explicit user (DSN, PGUSER or pg_service.conf) always wins. Without one, pgentra derives
// it from the token: a managed identity's name (from xms_mirid, asking for a
// management-scope token when the database token lacks it) or a user's UPN.
// Service principals must set user to the role created for them with
// pgaadauth_create_principal.
package driver
