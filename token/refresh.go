package token

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// ErrRefreshLimited is wrapped by the error [Cache.Refresh] returns when it does not
// replace a refused token because refusal-driven refreshes are rate-limited: servers
// keep refusing tokens, and a token was replaced after a refusal too recently. The
// refused token is still cached and served to other callers.
var ErrRefreshLimited = errors.New("pgentra: refused token not replaced: refusal-driven refreshes are rate-limited")

// Refresh replaces refused — a token a server just refused — with one the credential has
// just issued, asking the credential to bypass its own cache. Call it when a login with
// a token from [Cache.Token] fails with SQLSTATE 28000 or 28P01 (a revoked token, or a
// server whose clock differs), then log in once more with the token it returns (see
// the example; the pgentra driver does the same): a plain Token call would not help,
// since azidentity's managed identity and service principal credentials keep their
// tokens in MSAL's cache for up to 24 hours and would hand the refused token back.
//
// A refused token that is still valid stays cached and is served to every other caller
// until a replacement has been stored: one refusal (a transient one, or one pool of
// several sharing the cache whose role is missing) during an identity outage must not
// take the token away from everyone. The cache remembers the refused token, so that a
// plain fetch the credential answers from its own cache with that token hands it to
// its waiters as served from the cache, not fetched (the driver does not retry then).
//
// What happens, in order:
//   - If the cache holds a different token that is still valid (another caller has
//     replaced refused meanwhile), that token is returned without a request — unless
//     it is past its refresh point: then the refresh due is joined (or made) and its
//     token returned, so that a retry after a slow login does not get a token about
//     to expire; if that refresh fails, the cached token is returned.
//   - If the cached token has expired (or there is none), a new one is fetched as
//     [Cache.Token] would; a token that expired during the login is no sign of a
//     misbehaving server and is not rate-limited.
//   - Otherwise the credential is asked for a new token with
//     TokenRequestOptions.Claims set to a claims challenge (the CAE form
//     {"access_token":{"nbf":{"essential":true,"value":"<unix time now>"}}}), unless
//     [WithTokenRequestOptions] already set Claims, which are then sent as they are.
//     With Claims, MSAL skips its cache: the managed identity credential asks the
//     identity endpoint again (IMDS and App Service never see the claims), and the
//     client secret, certificate, assertion and workload identity credentials ask the
//     authority with a "claims" parameter. The Azure CLI, Azure Developer CLI and
//     Azure PowerShell credentials refuse any Claims (they would ask for an interactive
//     "az login --claims-challenge"), so they are asked without; they cache nothing
//     themselves, though the tool may return its own cached token. When a credential
//     chain (DefaultAzureCredential) fails with an error about claims, the request is
//     repeated once without them. Other credentials get the Claims and may ignore them.
//   - These refusal-driven requests are rate-limited: the first comes at once, the
//     next only after a window of the back-off's initial pause (see [WithBackoff]),
//     doubling while refusals go on up to the back-off's maximum, and back to "at
//     once" after twice that maximum without a refusal. A window never exceeds half
//     the refused token's issued lifetime, so short-lived tokens that a server whose
//     clock runs ahead refuses as they age are still replaced each time. Within a
//     window, Refresh returns an error wrapping [ErrRefreshLimited] at once: a server
//     that refuses at random (one bad node behind a balancer) costs at most one
//     request per window, not one per login.
//   - The request is single-flight with every other caller: a fetch already asking the
//     credential to bypass its cache is joined; a plain fetch in progress is waited for
//     and its token returned unless it is refused again. Like every fetch it runs on the
//     cache's context, bounded by the fetch timeout, and a caller whose ctx ends stops
//     waiting. During a back-off pause after a failed fetch, the last error is returned
//     at once. A new token is cached and served to later callers; when the fetch fails,
//     the refused token stays cached.
//
// So Refresh returns a token other than refused, or an error — except when the
// credential cannot bypass its cache and hands refused back itself: it is then
// returned, and the caller compares the strings and decides (the driver then does not
// log in with it again, and reports clock skew when the server said "expired").
func (c *Cache) Refresh(ctx context.Context, refused string) (azcore.AccessToken, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	broughtBack := false // a plain fetch returned refused: ask past the credential's cache
	for {
		if err := ctx.Err(); err != nil {
			return azcore.AccessToken{}, c.ctxError(err)
		}
		c.mu.Lock()
		if err := c.enterLocked(); err != nil {
			c.mu.Unlock()
			return azcore.AccessToken{}, err
		}
		now := c.now()
		reaped := c.reapLocked(now)
		e := c.cur.Load()
		valid := e != nil && now.Before(e.expireAt)
		if refused != "" {
			c.refusedTok = refused
		}
		if valid {
			c.noteRefusalLocked(now)
			if e.tok.Token != refused {
				if now.Before(e.refreshAt) {
					c.mu.Unlock()
					c.emitPtr(reaped)
					return e.tok, nil
				}
				// Due for refresh: give the retry the refreshed token (the refresh in
				// progress, or the one due now), not one about to expire that a slow
				// connect would outlive too.
				return c.dueRefreshLocked(ctx, e, refused, now, reaped)
			}
		}
		if f := c.inflight; f != nil && !f.bypass && !broughtBack {
			// A plain fetch may bring the refused token back from the credential's
			// cache: wait for it, and ask again bypassing the cache if it does.
			c.mu.Unlock()
			c.emitPtr(reaped)
			tok, _, err := c.wait(ctx, f)
			if err != nil || tok.Token != refused {
				return tok, err
			}
			broughtBack = true
			continue
		}
		bypass := valid || broughtBack
		if valid && c.inflight == nil && (c.lastErr == nil || !now.Before(c.retryAt)) {
			// (During a back-off pause the last error says more.)
			if err := c.refusalLimitLocked(e, now); err != nil {
				c.mu.Unlock()
				c.emitPtr(reaped)
				return azcore.AccessToken{}, err
			}
		}
		// A bypass fetch (or the fetch in progress); with no valid token, the fetch
		// any caller would make now.
		f, started, err := c.flightLocked(now, bypass)
		if started && valid {
			c.bypassStartedLocked(now)
		}
		c.mu.Unlock()
		c.emitPtr(reaped)
		if err != nil {
			c.emit(Event{Kind: BackoffWait, Err: err})
			return azcore.AccessToken{}, err
		}
		if started {
			c.launch(ctx, f, Event{Kind: FetchStart})
		}
		tok, _, err := c.wait(ctx, f)
		if err == nil && tok.Token == refused && !f.bypass && !broughtBack {
			broughtBack = true
			continue
		}
		return tok, err
	}
}

// dueRefreshLocked returns the token of the refresh due for e (joined if it runs,
// else started unless the cache is backing off), or e's token, still valid, when there
// is none or it fails for a reason other than ctx. c.mu must be held; it is released.
func (c *Cache) dueRefreshLocked(ctx context.Context, e *entry, refused string, now time.Time, reaped *Event) (azcore.AccessToken, error) {
	f, started, err := c.flightLocked(now, false)
	c.mu.Unlock()
	c.emitPtr(reaped)
	if err != nil {
		return e.tok, nil
	}
	if started {
		c.launch(ctx, f, Event{Kind: FetchStart})
	}
	tok, _, err := c.wait(ctx, f)
	if err != nil && ctx.Err() != nil {
		return azcore.AccessToken{}, err
	}
	if err != nil || tok.Token == refused {
		return e.tok, nil
	}
	return tok, nil
}

// refusalQuiet is how long, in back-off maxima, no refusal must be reported before the
// refusal-driven refreshes are no longer rate-limited.
const refusalQuiet = 2

// noteRefusalLocked records that a server refused a still valid token at now. A long
// quiet spell before it ends the rate limit: refusals that stopped are not held
// against a new one. c.mu must be held.
func (c *Cache) noteRefusalLocked(now time.Time) {
	if !c.lastRefusal.IsZero() && now.Sub(c.lastRefusal) >= refusalQuiet*c.opts.backoffMax {
		c.bypassAt, c.bypassWindow = time.Time{}, 0
	}
	c.lastRefusal = now
}

// refusalLimitLocked returns an error wrapping ErrRefreshLimited when a refusal-driven
// bypass fetch for e's token may not start at now. The window is capped at half of e's
// issued lifetime: a token refused once it has lived that long was replaced no more
// often than the cache replaces tokens anyway. c.mu must be held.
func (c *Cache) refusalLimitLocked(e *entry, now time.Time) error {
	if c.bypassAt.IsZero() || c.bypassWindow <= 0 {
		return nil
	}
	w := min(c.bypassWindow, issuedLifetime(e)/2)
	next := c.bypassAt.Add(w)
	if !now.Before(next) {
		return nil
	}
	return fmt.Errorf("%w (scope %q): the last refused token was replaced %s ago, the next one can be in %s; the refused token is still served to other logins",
		ErrRefreshLimited, c.scope, now.Sub(c.bypassAt).Round(time.Millisecond), next.Sub(now).Round(time.Millisecond))
}

// bypassStartedLocked records a refusal-driven bypass fetch started at now and widens
// the window before the next one. c.mu must be held.
func (c *Cache) bypassStartedLocked(now time.Time) {
	c.bypassAt = now
	if c.bypassWindow <= 0 {
		c.bypassWindow = c.opts.backoffInitial
	} else {
		c.bypassWindow = min(2*c.bypassWindow, c.opts.backoffMax)
	}
}

// issuedLifetime is how long e's token was issued to live: exp − iat of a JWT (both
// by the issuer's clock, so a skewed local clock does not stretch it), else from when
// the cache stored it to its ExpiresOn.
func issuedLifetime(e *entry) time.Duration {
	if cl, err := ParseClaims(e.tok.Token); err == nil && !cl.IssuedAt.IsZero() && cl.ExpiresAt.After(cl.IssuedAt) {
		return cl.ExpiresAt.Sub(cl.IssuedAt)
	}
	return e.tok.ExpiresOn.Sub(e.obtained)
}

// bypassClaims is the claims challenge Refresh sends: the form Entra's continuous access
// evaluation uses ("a token issued not before now"), which MSAL accepts and which makes
// it skip its token cache.
func bypassClaims(now time.Time) string {
	return `{"access_token":{"nbf":{"essential":true,"value":"` + strconv.FormatInt(now.Unix(), 10) + `"}}}`
}

// honoursClaims reports whether cred may be given Claims: the developer-tool credentials
// fail on any claims challenge without asking their tool.
func honoursClaims(cred azcore.TokenCredential) bool {
	switch cred.(type) {
	case *azidentity.AzureCLICredential, *azidentity.AzureDeveloperCLICredential, *azidentity.AzurePowerShellCredential:
		return false
	}
	return true
}

// mentionsClaims reports whether err is a credential's refusal of a claims challenge, as
// the developer-tool credentials word it ("requires multifactor authentication or
// additional claims").
func mentionsClaims(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "claims")
}
