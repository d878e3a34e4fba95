package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/token"
)

// refusal is a token the server refused although it was the newest token the
// credential would give (fetched for that very login, handed back unchanged
// by Cache.Refresh, or the retry's). A new token would be refused the same
// way (no role for the identity, wrong user) or cannot be had, so until a
// login works again, refused logins are not retried and ask the credential
// for nothing — whichever token they met, since a later one is no newer by
// much: a misconfigured pool must not spawn an `az` or call IMDS on every
// connect, nor must pools sharing a token cache (WithTokenCache) refresh,
// turn by turn, the token the other one has just fetched.
type refusal struct {
	token string
	// expired is the server's refusal when it said the token has expired
	// while its exp is still ahead by this machine's clock (clock skew): the
	// cache would go on serving it, but it never becomes valid again, so it
	// is not sent again; later logins fail at once with this refusal.
	expired error
	user    string
}

// markRefused remembers tok as refused when it was the newest token.
func (c *Connector) markRefused(tok azcore.AccessToken, user string, err error) {
	r := &refusal{token: tok.Token, user: user}
	if _, skewed := expiredButValidHere(err, tok.Token, time.Now()); skewed {
		r.expired = err
	}
	if c.refused.Swap(r) == nil {
		c.warnRefused(user, err)
	}
}

// azureExpired is the start of Azure's refusal of an expired token ("The
// access token has expired. Please acquire a new token and retry."), in
// lower case with single spaces.
const azureExpired = "the access token has expired"

// refusedAsExpired reports whether err is the server's refusal of a token it
// judged expired. Only the fixed start of Azure's message counts (case and
// white space aside), never the words anywhere in it: a role name may hold
// any text.
func refusedAsExpired(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) || codeClass(pe) != "28" {
		return false
	}
	msg := strings.ToLower(strings.Join(strings.Fields(pe.Message), " "))
	return strings.HasPrefix(msg, azureExpired)
}

// expiredButValidHere reports whether the server refused tok as expired
// although its exp is still ahead by this machine's clock, and by how much:
// the clocks disagree by at least that. A token that simply aged (expired
// here too, e.g. after a slow login) does not count.
func expiredButValidHere(err error, tok string, now time.Time) (time.Duration, bool) {
	if !refusedAsExpired(err) {
		return 0, false
	}
	claims, perr := token.ParseClaims(tok)
	if perr != nil || claims.ExpiresAt.IsZero() || !claims.ExpiresAt.After(now) {
		return 0, false
	}
	return claims.ExpiresAt.Sub(now), true
}

// skewHint explains a refusal as expired of a token whose exp is still ahead
// by this machine's clock; "" for any other refusal.
func skewHint(err error, tok string, now time.Time) string {
	ahead, ok := expiredButValidHere(err, tok, now)
	if !ok {
		return ""
	}
	claims, _ := token.ParseClaims(tok)
	ahead = ahead.Round(time.Second)
	return fmt.Sprintf("clock skew: the server says the token has expired, but by this machine's clock it is valid for another %s "+
		"(exp %s, now %s here), so this machine's clock is at least %s behind the server's or Entra's; "+
		"a new token does not help until the clocks agree: check the time synchronisation here (timedatectl status, chronyc tracking, w32tm /query /status)",
		ahead, claims.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ahead)
}

// expiryHint replaces le's hint when the server refused tok as expired and
// this machine can say why: the token expired while the login was in flight,
// or its exp is still ahead here (clock skew).
func (c *Connector) expiryHint(le *LoginError, tok string) {
	var x *inFlightExpiry
	if errors.As(le.Err, &x) {
		le.Hint = x.hint()
		return
	}
	if h := skewHint(le.Err, tok, time.Now()); h != "" {
		le.Hint = h
	}
}

// inFlightExpiry is the server's refusal of a token as expired when the
// token expired while the login was in flight: it had left to live when
// the login started, and the connect took longer. Not a clock problem: a
// slow connect (network, server, an overloaded machine) outlived the token.
// It wraps the server's error unchanged (errors.As *pq.Error works).
type inFlightExpiry struct {
	err        error
	left, took time.Duration
}

func (x *inFlightExpiry) Error() string { return x.err.Error() }
func (x *inFlightExpiry) Unwrap() error { return x.err }

func (x *inFlightExpiry) hint() string {
	return fmt.Sprintf("the token expired while the login was in flight: it had %s left when the login started and the connect took %s "+
		"(a slow network or server, or an overloaded machine; the clocks are not at fault); pgentra retries such a login once with a new token, "+
		"so if this persists, connects take longer than the tokens live",
		x.left.Round(time.Millisecond), x.took.Round(time.Millisecond))
}

// checkInFlight returns err as an *inFlightExpiry when the server refused
// tok as expired and tok's exp (its claim; else the credential's
// ExpiresOn) was still ahead when the login started at start but no longer
// when it ended at end; else err unchanged.
func checkInFlight(err error, tok azcore.AccessToken, start, end time.Time) error {
	if !refusedAsExpired(err) {
		return err
	}
	exp := tok.ExpiresOn
	if claims, perr := token.ParseClaims(tok.Token); perr == nil && !claims.ExpiresAt.IsZero() {
		exp = claims.ExpiresAt
	}
	if !exp.After(start) || exp.After(end) {
		return err
	}
	return &inFlightExpiry{err: err, left: exp.Sub(start), took: end.Sub(start)}
}

// expiredWhileInFlight reports whether err is a refusal of a token that
// expired during its login (checkInFlight).
func expiredWhileInFlight(err error) bool {
	var x *inFlightExpiry
	return errors.As(err, &x)
}

// refreshError explains why the retry after a refused login got no new
// token: the credential's failure (a *TokenError naming it), or the cache's
// rate limit on refusal-driven refreshes, which is no fault of the
// credential.
func (c *Connector) refreshError(ctx context.Context, err error) error {
	if errors.Is(err, token.ErrRefreshLimited) {
		return err
	}
	return c.tokenError(ctx, err)
}

// skewed reports whether err refuses tok as expired while its exp is still
// ahead here.
func (c *Connector) skewed(err error, tok azcore.AccessToken) bool {
	_, ok := expiredButValidHere(err, tok.Token, time.Now())
	return ok
}

// retryFailed is the error of a login refused with a cached token when no
// new token could be had to retry with: the server's refusal first (the
// hint and errors.As(err, new(*pq.Error)) work on it), then the credential's
// error (errors.Is works on both).
func retryFailed(login, tokenErr error) error {
	return fmt.Errorf("%w; no new token to retry with: %w", login, tokenErr)
}

// refreshFor asks the cache for a token to replace refused, bypassing the
// credential's own cache where it can (token.Cache.Refresh).
func (c *Connector) refreshFor(ctx context.Context, refused string) (azcore.AccessToken, error) {
	return c.cache.Refresh(ctx, refused)
}
