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
// Both of pq's forms work — postgres:// URLs and key=value strings. pq
// parses the string (pq.NewConfig, once per Connector) and its result is what
// is dialed and sent: pgentra has no parser of its own. pq keeps keys it does
// not know as run-time parameters for the server; pgentra takes these keys
// out of pq's result, so the server never sees them. The azure_ prefix is
// case-insensitive (AZURE_CLIENT_ID= is azure_client_id); an unknown key is
// an error listing the known ones, and one key in two spellings (or repeated
// in a URL) is an error:
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
//	azure_scope                    token scope: one of the token.Scope* database scopes (default: from the host name)
//	azure_refresh_margin           refresh this long before expiry, in the background (default 5m; short
//	                               tokens at half-life; 0s refreshes only at the last moment, callers wait)
//	azure_allow_insecure_tls       true allows sslmode disable/allow/prefer and pqgo-* to a non-local host,
//	                               and keeps require/verify-ca to an Azure host as written (see TLS)
//
// Secrets are never DSN keys: a client secret comes from AZURE_CLIENT_SECRET
// (or AZURE_POSTGRESQL_CLIENTSECRET), a certificate password from
// AZURE_CLIENT_CERTIFICATE_PASSWORD. A password written in the DSN
// (password=, PASSWORD=, a URL's user:password@ or ?password=) is an error
// that never shows it; PGPASSWORD, a service file's password and ~/.pgpass
// are ignored, as the token always replaces them.
// An empty DSN uses Azure Service Connector's AZURE_POSTGRESQL_CONNECTIONSTRING,
// AZURE_POSTGRESQL_CLIENTID, AZURE_POSTGRESQL_CLIENTSECRET and
// AZURE_POSTGRESQL_TENANTID; sslmode require or verify-ca in that string is
// upgraded to verify-full (see TLS).
//
// Where pq reads a string unexpectedly, pgentra follows pq, because what pq
// reads is what it dials:
//
//   - White space is any unicode.IsSpace rune (U+00A0, U+0085, U+2028,
//     U+3000, ...): quote values that contain one.
//   - pq drops empty URL values: ?user= means no user, and pgentra derives
//     it from the token (never the OS user pq would fill in); ?sslmode=
//     means verify-full. In key=value form a quoted empty user is an empty
//     user and is derived as well. An empty ?azure_client_id= reads as an
//     empty azure_client_id.
//   - A key given twice keeps its last value in key=value form, its first in
//     a URL; pgentra refuses its own keys given twice where it can see them
//     (a URL, or two spellings).
//   - pq's key names are case-sensitive (SSLMODE= is a run-time parameter,
//     not sslmode); PASSWORD= is refused like password=.
//   - pq does not quote a URL's query keys when it converts the URL, so a
//     key with white space or "=" in it (?x%3D1%20host=elsewhere) would be
//     read as further keys: pgentra refuses such a URL.
//   - A run-time parameter whose name no PostgreSQL server accepts is
//     refused (the server would refuse it too), without showing it: that is
//     how pq reads a URL with anything before postgres:// (" postgres://u:pw@h/db?x=y"
//     is one key, password included, for localhost).
//   - A NUL byte in user, dbname, options, application_name or a run-time
//     parameter is refused: in PostgreSQL's startup message it would end the
//     value and start other parameters (a second user, which the server
//     takes).
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
// which does not check the certificate). sslmode disable, allow and prefer,
// and pqgo-<key> (a tls.Config registered with pq.RegisterTLSConfig, which
// pgentra cannot inspect), are refused unless every host is local — a
// loopback address, a Unix socket, or "localhost" when it resolves to
// loopback addresses only; db.localhost is remote, as Go resolves it like
// any name — or azure_allow_insecure_tls=true: the token must not travel in
// clear. To a host in Azure's database domains (*.postgres.database.azure.com,
// *.postgres.database.chinacloudapi.cn, *.postgres.database.usgovcloudapi.net,
// *.postgres.cosmos.azure.com), require and verify-ca are verified as
// verify-full, unless azure_allow_insecure_tls=true: Azure's certificates
// chain to public roots and name the server. Elsewhere they are kept, but to
// a host that is not local they log one warning (to WithLogger's logger, else
// slog.Default()). In
// Service Connector's AZURE_POSTGRESQL_CONNECTIONSTRING, which always says
// sslmode=require, require and verify-ca become verify-full.
//
// # Debugging pq
//
// PQGO_DEBUG=1 makes lib/pq print each connection's configuration to
// stderr, the password — the access token — included. pgentra itself never
// logs a token; it warns once per Connector when PQGO_DEBUG=1 is set (to
// WithLogger's logger, else slog.Default()). PGENTRA_LOG=debug sends
// pgentra's own debug logs to stderr without a code change.
//
// # Observability
//
// WithTracer reports every connect, login attempt and token fetch to a
// Tracer, with durations, outcomes, SQLSTATEs and refusal reasons, never the
// token. The module github.com/pgentra/pgentra/otel implements it with
// OpenTelemetry metrics and spans; this module does not depend on it.
//
// # User name
//
// An explicit user (DSN, PGUSER or pg_service.conf) always wins. Without one, pgentra derives
// it from the token: a managed identity's name (from xms_mirid, asking for a
// management-scope token when the database token lacks it) or a user's UPN.
// Service principals must set user to the role created for them with
// pgaadauth_create_principal.
package driver
