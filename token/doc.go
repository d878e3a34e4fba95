// Package token keeps Microsoft Entra ID access tokens for Azure Database for PostgreSQL
// fresh, so that every new database connection can use one as its password.
//
// A [Cache] holds one token per (credential, scope) pair. [Cache.Token] returns the
// cached token without locks or allocations until its refresh point (a few minutes
// before expiry, see [WithRefreshMargin]); past it, the cached token is still served
// while one background refresh runs. Only a missing or expired token makes
// callers wait, and then all of them wait for a single GetToken call, bounded by
// [WithFetchTimeout], so one caller's cancelled context never fails the others. After a
// failure the cache backs off; a 429 or 503 with Retry-After is honoured and reported as
// a [ThrottledError]. Deadlines are compared on the wall clock, so a machine that slept
// fetches a new token on waking. Events ([WithEventHandler]) report hits, misses,
// fetches, failures and refreshes, never the token itself.
//
// After a server refuses a cached token, [Cache.Refresh] gets a new one, asking the
// credential to bypass its own cache (MSAL keeps managed identity and service principal
// tokens for up to 24 hours). Until the new one is stored, the refused token — still
// valid — is served to every other caller, so one refusal during an identity outage
// does not empty the cache; and refusal-driven requests are rate-limited, so a server
// that refuses at random costs at most one request per back-off window.
//
// The cache exists because azidentity credentials cache unevenly: the Azure CLI
// credentials cache nothing and spawn a process per call, and a token fetched once at
// start-up breaks a pool when it expires. The package knows nothing about SQL: the
// pgentra driver uses it for database/sql, and pgx users use it directly. It also
// decodes (without verifying) token claims with [ParseClaims], and maps server host
// names to scopes with [ScopeForHost].
//
// # Use with pgx
//
// Create one cache per credential and scope, and set the password of each new
// connection in pgxpool's BeforeConnect hook:
//
//	cred, err := azidentity.NewDefaultAzureCredential(nil)
//	if err != nil { ... }
//	cfg, err := pgxpool.ParseConfig("host=srv.postgres.database.azure.com user=app@contoso.com dbname=app sslmode=verify-full")
//	if err != nil { ... }
//	cache := token.NewCache(cred, token.ScopeForHost(cfg.ConnConfig.Host))
//	defer cache.Close()
//	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
//		tok, err := cache.Token(ctx)
//		if err != nil {
//			return err
//		}
//		cc.Password = tok.Token
//		return nil
//	}
//	pool, err := pgxpool.NewWithConfig(ctx, cfg)
//
// Close the cache after the pool: the pool may still open connections until then.
// When a login fails with SQLSTATE 28000 or 28P01 (a revoked token, or a server whose
// clock differs), [Cache.Refresh] gets a token the credential has just issued, for one
// more attempt (see its example); a plain Token call could hand the refused one back.
// More in the repository's docs/orms-and-tools.md and docs/operations.md
// (https://github.com/pgentra/pgentra/tree/main/docs).
package token
