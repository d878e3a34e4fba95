package token

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Defaults of the [Cache] options.
const (
	// DefaultRefreshMargin is how long before expiry a token is refreshed by default.
	DefaultRefreshMargin = 5 * time.Minute
	// DefaultFetchTimeout bounds one GetToken call by default. It is long because
	// azidentity's managed identity credential retries IMDS for about 97 s in total.
	DefaultFetchTimeout = 2 * time.Minute
	// DefaultBackoffInitial is the first pause after a failed fetch.
	DefaultBackoffInitial = time.Second
	// DefaultBackoffMax is the longest pause between failed fetches: a minute, so
	// that a failing or overloaded identity endpoint (IMDS serves every pod of a
	// node) is asked at most about once a minute per process. A Retry-After from the
	// endpoint can lengthen a pause beyond it (see [ThrottledError]).
	DefaultBackoffMax = 60 * time.Second
)

// Clock tells the cache the time. Tests inject a fake one with [WithClock] to step
// through refresh points and back-offs without sleeping; production code never needs it.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Option configures a [Cache]; pass options to [NewCache]. Invalid values (negative
// durations, nil functions) are ignored, so the default stays in force.
type Option func(*options)

type options struct {
	margin         time.Duration
	clock          Clock
	onEvent        func(Event)
	fetchContext   func(context.Context, Event) context.Context
	fetchTimeout   time.Duration
	backoffInitial time.Duration
	backoffMax     time.Duration
	tro            policy.TokenRequestOptions
}

func defaultOptions() options {
	return options{
		margin:         DefaultRefreshMargin,
		clock:          systemClock{},
		fetchTimeout:   DefaultFetchTimeout,
		backoffInitial: DefaultBackoffInitial,
		backoffMax:     DefaultBackoffMax,
	}
}

// WithRefreshMargin sets how long before a token's expiry the cache starts refreshing it
// in the background (default 5 minutes). A larger margin gives a slow credential more
// time; for tokens that live less than twice the margin the refresh starts at half
// their lifetime instead. A credential's RefreshOn hint takes precedence. Negative
// values are ignored; 0 refreshes only shortly before expiry.
func WithRefreshMargin(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.margin = d
		}
	}
}

// WithClock replaces the system clock, for tests that need to move time. A nil clock is
// ignored.
func WithClock(c Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// WithEventHandler sets a function that receives every [Event] of the cache, for logging
// and metrics. Events never carry the token itself.
//
// The handler is called synchronously, on the goroutine of the caller whose call caused
// the event or on the cache's fetching goroutine (FetchEnd, FetchFailed; the FetchFailed
// of a fetch abandoned after the fetch timeout runs on the caller that abandoned it), and
// may be called from several goroutines at once, also just after Close has returned. It should be cheap: a fetch's waiters get
// their token after its FetchEnd handler returns. It may call any method of the cache,
// Close included, without deadlocking it: a Token call from a FetchStart handler waits
// for that fetch, and Close does not wait for a handler that is running. It must not
// wait for another goroutine that is itself waiting for the fetch being reported.
func WithEventHandler(fn func(Event)) Option {
	return func(o *options) {
		if fn != nil {
			o.onEvent = fn
		}
	}
}

// WithFetchTimeout bounds a single GetToken call (default 2 minutes). The fetch runs on
// the cache's own context, never on a caller's; at the timeout that context is
// cancelled and the fetch's waiters get an error wrapping context.DeadlineExceeded
// (callers stop waiting earlier when their own context ends). A credential that
// ignores its context (a token file on a hung mount, a stuck assertion callback) cannot
// be stopped: its call is abandoned, and the next caller after the back-off starts a
// new one while it still runs; a token it returns late is used only if it expires later
// than the cached one. At most two calls run at once: while two abandoned calls have
// not returned, callers get an error at once. Values <= 0 are ignored.
func WithFetchTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.fetchTimeout = d
		}
	}
}

// WithBackoff sets the pause after a failed fetch: initial after the first failure,
// doubling per further failure up to max, each pause jittered down by up to half, and
// reset by a success (defaults 1 s and 60 s). When the identity endpoint throttles with
// Retry-After (see [ThrottledError]), the pause is at least that long, spread by up to
// a quarter more. During a pause a still-valid token is served and, when there is none,
// callers get the last error at once, with the time to the next attempt, instead of
// hammering the identity endpoint. initial <= 0 is ignored; max below initial is raised
// to initial.
func WithBackoff(initial, max time.Duration) Option {
	return func(o *options) {
		if initial > 0 {
			o.backoffInitial = initial
		}
		if max > 0 {
			o.backoffMax = max
		}
		if o.backoffMax < o.backoffInitial {
			o.backoffMax = o.backoffInitial
		}
	}
}

// WithTokenRequestOptions sets the options passed to every GetToken call, e.g. TenantID
// for a multi-tenant service principal or EnableCAE. Its Scopes field is ignored: the
// cache always requests exactly its own scope.
func WithTokenRequestOptions(tro policy.TokenRequestOptions) Option {
	return func(o *options) {
		tro.Scopes = nil
		o.tro = tro
	}
}
