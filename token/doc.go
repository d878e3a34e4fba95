// Package token keeps Microsoft Entra ID access tokens for Azure Database for PostgreSQL
// fresh, so that every new database connection can use one as its password.
//
// # What the cache does
//
// A [Cache] holds one token per (credential, scope) pair. [Cache.Token] returns the
// cached token without locks or allocations until its refresh point (a few minutes
// before expiry, see [WithRefreshMargin]); past it, the cached token is still served
// while one background refresh runs. Only a missing or expired token makes
// callers wait, and then all of them wait for a single GetToken call, which runs on the
// cache's own context with its own timeout, so one caller's cancelled context never
// fails the others. After a failure the cache pauses with a jittered back-off instead of
// calling the identity endpoint once per connection attempt. Events ([WithEventHandler])
// report hits, misses, fetches, failures and refreshes, never the token itself.
//
// After a server refuses a cached token, [Cache.Refresh] gets a new one, asking the
// credential to bypass its own cache (MSAL keeps managed identity and service principal
// tokens for up to 24 hours). Until the new one is stored, the refused token — still
// valid — is served to every other caller, so one refusal during an identity outage
// does not empty the cache; and refusal-driven requests are rate-limited, so a server
// that refuses at random costs at most one request per back-off window.
//
// # What deployments do to it
//
//   - Sleep and resume: every deadline is compared on the wall clock, so a laptop or VM
//     that slept longer than a token lives fetches a new one on waking instead of
//     serving the expired one (Go's monotonic clock stops during a suspend).
//   - A credential that ignores its context (a token file on a hung mount, a stuck
//     assertion callback): its call is abandoned after the fetch timeout
//     ([WithFetchTimeout]) and the next caller starts another; at most two calls run
//     at once. Close cannot stop such a call; it does not wait for it.
//   - Throttling: a 429 or 503 with Retry-After from the identity endpoint is honoured
//     (azcore's retries give up on waits beyond 25 s), spread a little so that pods on
//     one node do not return together; callers get a [ThrottledError] that names the
//     wait.
//
// # Why it exists
//
// azidentity credentials cache unevenly: the Azure CLI and Azure Developer CLI
// credentials (where DefaultAzureCredential lands on a laptop) cache nothing and spawn a
// process per call; the managed identity credential does not cache tokens that expire
// within five minutes and its IMDS retries can take about 97 s. A token fetched once at
// start-up kills a connection pool when it expires an hour or a day later. The cache
// gives every credential the same behaviour.
//
// The package knows nothing about SQL; the pgentra driver uses it for database/sql, and
// pgx users can use it directly. It also decodes (without verifying) token claims with
// [ParseClaims], to derive a role name with [Claims.PrincipalName], and maps server host
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
package token
