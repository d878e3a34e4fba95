package driver

import (
	"log/slog"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/pgentra/pgentra/token"
)

// An Option configures a Connector. Options override what the connection
// string says; the DSN is for what operators change, options are for what
// code decides.
type Option func(*options)

type options struct {
	credential               azcore.TokenCredential
	cache                    *token.Cache
	logger                   *slog.Logger
	clientOptions            azcore.ClientOptions
	disableInstanceDiscovery bool
	tokenOptions             []token.Option
	getenv                   func(string) string
	tracer                   Tracer
}

// WithCredential makes the Connector get tokens from cred instead of the
// credential that azure_credential would build. Use it for credentials the
// DSN can't describe (a chain of your own, a client assertion callback) or to
// share one credential between several pools.
func WithCredential(cred azcore.TokenCredential) Option {
	return func(o *options) { o.credential = cred }
}

// WithTokenCache makes the Connector take tokens from c, which the caller
// owns: Connector.Close does not close it. Share a cache between pools that
// use the same credential and scope (for example a read pool and a write pool
// on the same server) so they make one token request between them. The
// cache's credential and scope win over the DSN's azure_* keys.
func WithTokenCache(c *token.Cache) Option {
	return func(o *options) { o.cache = c }
}

// WithLogger sends the Connector's diagnostics to l: token fetches and their
// latency, cache misses, refresh failures, invalidations and login retries,
// all at debug level, login failures at warn level. Tokens, secrets and
// passwords are never logged.
//
// Without it, warnings still reach slog.Default(): what in the configuration
// may leak the token (sslmode require or verify-ca to a non-local host,
// PQGO_DEBUG=1; once per Connector), a token fetch that has kept connects
// waiting for 5 s, and logins refused with the newest token (once until a
// login works again). With the environment variable PGENTRA_LOG=debug they
// and the debug diagnostics go to stderr instead, with no code change.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithClientOptions sets the azcore client options (transport, retry,
// cloud, telemetry) of the credential pgentra builds from the DSN. It has no
// effect with WithCredential. Setting Cloud here overrides the cloud pgentra
// picks from the host name.
func WithClientOptions(co azcore.ClientOptions) Option {
	return func(o *options) { o.clientOptions = co }
}

// WithDisableInstanceDiscovery turns off Entra instance discovery for the
// credential pgentra builds, as azidentity's option of the same name does:
// needed for disconnected clouds, private authorities and Azure Stack.
func WithDisableInstanceDiscovery() Option {
	return func(o *options) { o.disableInstanceDiscovery = true }
}

// WithTokenOptions passes options to the token cache pgentra builds (for
// example token.WithFetchTimeout). It has no effect with WithTokenCache.
func WithTokenOptions(opts ...token.Option) Option {
	return func(o *options) { o.tokenOptions = append(o.tokenOptions, opts...) }
}

// withGetenv replaces os.Getenv, for tests.
func withGetenv(f func(string) string) Option {
	return func(o *options) { o.getenv = f }
}
