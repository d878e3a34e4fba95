package token

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Refresh replaces refused — a token a server just refused — with one the credential has
// just issued, asking the credential to bypass its own cache. The driver calls it after a
// login with a cached token failed, instead of [Cache.Invalidate] and [Cache.Token]:
// azidentity's managed identity and service principal credentials keep their tokens in
// MSAL's cache for up to 24 hours and would otherwise hand the refused token back.
//
// What happens, in order:
//   - If the cache holds a different token that is still valid (another caller has
//     replaced refused meanwhile), that token is returned without a request.
//   - Otherwise refused is dropped and the credential is asked for a new token with
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
//   - The request is single-flight with every other caller: a fetch already asking the
//     credential to bypass its cache is joined; a plain fetch in progress is waited for
//     and its token returned unless it is refused again. Like every fetch it runs on the
//     cache's context, bounded by the fetch timeout, and a caller whose ctx ends stops
//     waiting. During a back-off pause after a failed fetch, the last error is returned
//     at once. The new token is cached and served to later callers.
//
// The returned token may still be refused itself: a credential that cannot bypass its
// cache hands it back again. The caller compares the strings and decides (the driver
// then reports clock skew instead of logging in twice with one token).
func (c *Cache) Refresh(ctx context.Context, refused string) (azcore.AccessToken, error) {
	if ctx == nil {
		ctx = context.Background()
	}
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
		if e != nil && e.tok.Token != refused && now.Before(e.expireAt) {
			c.mu.Unlock()
			c.emitPtr(reaped)
			return e.tok, nil
		}
		var dropped *Event
		if e != nil && e.tok.Token == refused && c.cur.CompareAndSwap(e, nil) {
			dropped = &Event{Kind: Invalidated, ExpiresOn: e.tok.ExpiresOn}
		}
		if f := c.inflight; f != nil && !f.bypass {
			// A plain fetch may bring the refused token back from the credential's
			// cache: wait for it, and ask again bypassing the cache if it does.
			c.mu.Unlock()
			c.emitPtr(reaped)
			c.emitPtr(dropped)
			tok, _, err := c.wait(ctx, f)
			if err != nil || tok.Token != refused {
				return tok, err
			}
			continue
		}
		f, started, err := c.flightLocked(now, true)
		c.mu.Unlock()
		c.emitPtr(reaped)
		c.emitPtr(dropped)
		if err != nil {
			c.emit(Event{Kind: BackoffWait, Err: err})
			return azcore.AccessToken{}, err
		}
		if started {
			c.launch(ctx, f, Event{Kind: FetchStart})
		}
		tok, _, err := c.wait(ctx, f)
		return tok, err
	}
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
