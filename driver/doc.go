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
// For options (WithCredential, WithLogger, WithTokenCache, WithTracer, ...),
// use NewConnector with sql.OpenDB. For LISTEN/NOTIFY, use NewListener.
//
// # How a connect works
//
// Each time the pool opens a physical connection, the Connector takes a token
// from its token.Cache (usually without any I/O), gives it to pq as the
// password and returns pq's own connection. Azure checks the token only at
// login, so an open connection outlives its token; tokens are refreshed ahead
// of expiry for the connections still to come. A login refused with a cached
// token is retried once with a new one, asked for past the credential's own
// cache, unless the server already refused that token when it was the newest
// (a misconfigured role: a new token would not help). Without sslmode,
// pgentra uses verify-full; it refuses sslmode disable, allow and prefer to a
// host that is not local, unless azure_allow_insecure_tls=true.
//
// With no user in the DSN, the role is derived from the token: a managed
// identity's name (asking the same credential once for a management-scope
// token, as database tokens lack it) or a user's UPN. Service principals set
// user to the role created for them.
//
// # Connection strings
//
// Both of pq's forms work, postgres:// URLs and key=value strings, parsed by
// pq. Keys starting with azure_ (any case) are pgentra's: azure_credential,
// azure_client_id, azure_object_id, azure_resource_id, azure_tenant_id,
// azure_client_certificate_path, azure_federated_token_file, azure_scope,
// azure_refresh_margin and azure_allow_insecure_tls. A password in the DSN is
// an error; secrets come from the environment (AZURE_CLIENT_SECRET, ...) or
// WithCredential. An empty DSN reads Azure Service Connector's
// AZURE_POSTGRESQL_CONNECTIONSTRING.
//
// # Errors and logs
//
// A refused login is a *LoginError whose hint names the fix; a token that
// could not be had is a *TokenError; bad configuration matches
// ErrInvalidConfig. Tokens never appear in errors, logs or String().
// Warnings go to WithLogger's logger, else slog.Default(); PGENTRA_LOG=debug
// sends debug logs to stderr. WithTracer reports connects, login attempts and
// token fetches; the module github.com/pgentra/pgentra/otel implements it
// with OpenTelemetry.
//
// # Reference
//
// The repository's docs hold the reference:
// https://github.com/pgentra/pgentra/tree/main/docs — connection-string.md
// (every key, Service Connector, scopes and clouds, user names), tls.md,
// azure-setup.md, orms-and-tools.md, listen-notify.md, operations.md and
// troubleshooting.md (every error message, why, and the fix).
package driver
