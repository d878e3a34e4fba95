package driver

import (
	"fmt"
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
	clientOptionsSet         bool
	disableInstanceDiscovery bool
	tokenOptions             []token.Option
	tokenOptionsSet          bool
	getenv                   func(string) string
	tracer                   Tracer
}

// WithCredential makes the Connector get tokens from cred instead of the
// credential that azure_credential would build. Use it for credentials the
// DSN can't describe (a chain of your own, a client assertion callback) or to
// share one credential between several pools. It cannot be combined with the
// options that shape the credential pgentra builds (WithClientOptions,
// WithDisableInstanceDiscovery: set those on cred itself) nor with
// WithTokenCache (the cache has its own credential); NewConnector refuses
// such a combination with an error wrapping ErrConflictingOptions.
func WithCredential(cred azcore.TokenCredential) Option {
	return func(o *options) { o.credential = cred }
}

// WithTokenCache makes the Connector take tokens from c, which the caller
// owns: Connector.Close does not close it. Share a cache between pools that
// use the same credential and scope (for example a read pool and a write pool
// on the same server) so they make one token request between them. The
// cache's credential and scope win over the DSN's azure_* keys. The options
// that shape a credential or a cache (WithCredential, WithClientOptions,
// WithDisableInstanceDiscovery, WithTokenCacheOptions) cannot be combined
// with it: NewConnector refuses them with an error wrapping
// ErrConflictingOptions; give them to token.NewCache and the credential.
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
// cloud, telemetry) of the credential pgentra builds from the DSN. Setting
// Cloud here overrides the cloud pgentra picks from the host name. With
// WithCredential or WithTokenCache pgentra builds no credential, so
// NewConnector refuses the combination (ErrConflictingOptions).
func WithClientOptions(co azcore.ClientOptions) Option {
	return func(o *options) { o.clientOptions, o.clientOptionsSet = co, true }
}

// WithDisableInstanceDiscovery turns off Entra instance discovery for the
// credential pgentra builds, as azidentity's option of the same name does:
// needed for disconnected clouds, private authorities and Azure Stack. An
// authority on a loopback address (AZURE_AUTHORITY_HOST or the Cloud of
// WithClientOptions, as with pgentra's emulator) has discovery off without it.
// Like WithClientOptions, it is refused with WithCredential or WithTokenCache.
func WithDisableInstanceDiscovery() Option {
	return func(o *options) { o.disableInstanceDiscovery = true }
}

// WithTokenCacheOptions passes options to the token cache pgentra builds,
// as if given to token.NewCache (for example token.WithFetchTimeout, or
// token.WithTokenRequestOptions for what each GetToken call asks). With
// WithTokenCache pgentra builds no cache, so NewConnector refuses the
// combination (ErrConflictingOptions).
func WithTokenCacheOptions(opts ...token.Option) Option {
	return func(o *options) { o.tokenOptions, o.tokenOptionsSet = append(o.tokenOptions, opts...), true }
}

// checkConflicts refuses options that contradict each other, naming both:
// one of them would otherwise be ignored without a word.
func (o *options) checkConflicts() error {
	type opt struct {
		name string
		set  bool
	}
	var (
		cred      = opt{"WithCredential", o.credential != nil}
		cache     = opt{"WithTokenCache", o.cache != nil}
		client    = opt{"WithClientOptions", o.clientOptionsSet}
		discovery = opt{"WithDisableInstanceDiscovery", o.disableInstanceDiscovery}
		cacheOpts = opt{"WithTokenCacheOptions", o.tokenOptionsSet}
	)
	for _, c := range []struct {
		a, b opt
		why  string
	}{
		{cache, cred, "the cache gets its tokens from its own credential"},
		{cache, client, "pgentra builds no credential when given a cache; set them on the cache's credential"},
		{cache, discovery, "pgentra builds no credential when given a cache; set it on the cache's credential"},
		{cache, cacheOpts, "pgentra builds no cache when given one; pass them to token.NewCache"},
		{cred, client, "pgentra builds no credential when given one; set them on that credential"},
		{cred, discovery, "pgentra builds no credential when given one; set it on that credential"},
	} {
		if c.a.set && c.b.set {
			return fmt.Errorf("%w: %s with %s: %s", ErrConflictingOptions, c.a.name, c.b.name, c.why)
		}
	}
	return nil
}

// withGetenv replaces os.Getenv, for tests.
func withGetenv(f func(string) string) Option {
	return func(o *options) { o.getenv = f }
}
