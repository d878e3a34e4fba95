package driver

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/pgentra/pgentra/internal/dsn"
	"github.com/pgentra/pgentra/internal/tokenx"
	"github.com/pgentra/pgentra/token"
)

// nameInToken reads the role name of the identity behind tok from the token
// itself: the last segment of xms_mirid for a managed identity, else the
// user's upn / preferred_username / unique_name (token.Claims.PrincipalName);
// "" with a nil error when the token names no principal. Database-scope
// managed-identity tokens carry no xms_mirid: userLookup then asks for a
// management-scope token, which does. Service principals carry no name at
// all: their role is the app's display name, which only the DSN can give.
func nameInToken(tok azcore.AccessToken) (token.Claims, string, error) {
	claims, err := token.ParseClaims(tok.Token)
	if err != nil {
		return claims, "", fmt.Errorf("%w: the DSN names no user and the access token can't be read to find one (%w); set user to the role created with pgaadauth_create_principal (see %s)", ErrNoUser, err, anchorNoUser.url())
	}
	name := claims.PrincipalName()
	if err := checkDerivedName(name, claims); err != nil {
		return claims, "", err
	}
	return claims, name, nil
}

// checkDerivedName checks a role name read from a token like the DSN's user:
// pq writes it as a C string in the startup message, so a NUL byte would end
// it there and start other parameters (dsn.ErrNULByte).
func checkDerivedName(name string, c token.Claims) error {
	if strings.IndexByte(name, 0) < 0 {
		return nil
	}
	return fmt.Errorf("%w: the DSN names no user and the role name read from the access token (%q, %s) holds a NUL byte; set user to the role created with pgaadauth_create_principal: %w",
		ErrNoUser, name, describe(c), dsn.ErrNULByte)
}

func noPrincipalError(c token.Claims) error {
	return fmt.Errorf("%w: the DSN names no user and the access token does not name its principal (%s); set user to the role created for it with pgaadauth_create_principal (for a service principal: the app's display name) (see %s)", ErrNoUser, describe(c), anchorNoUser.url())
}

// userLookup finds the role name of an identity whose database-scope tokens
// name nobody, from a management-scope token of the same credential, and
// remembers it per identity (tenant and object ID): the name, or the final
// answer that the identity's tokens name no principal, so that a
// misconfigured pool asks once. Its zero value is ready to use.
//
// The management-scope token comes from a token.Cache, made on first need
// (most Connectors are given their user and never need one): its single
// flight, per-caller wait, abandonment of a call that outlives the fetch
// timeout, jittered back-off after a failure and Close are the lookup's.
// The token is dropped once read: a later identity of the same credential
// (az login as someone else) gets a fresh one, never one naming the
// previous identity.
type userLookup struct {
	mu     sync.Mutex
	closed bool
	cache  *token.Cache // management scope; nil until first needed
	names  map[string]identityName
	// opts are the management cache's options; tests add a clock or a
	// shorter fetch timeout before the first lookup.
	opts []token.Option
}

// identityName is the final answer for one identity: a name, or err.
type identityName struct {
	name string
	err  error
}

// name returns the role name of the identity behind claims, read from a
// management-scope token of cred (mgmtScope, from credKind: for errors). It
// waits for the request in flight (or starts one) until ctx ends; then it
// returns an error wrapping ctx.Err() while the request goes on for others.
func (l *userLookup) name(ctx context.Context, claims token.Claims, cred azcore.TokenCredential, credKind, mgmtScope string) (string, error) {
	key := claims.TenantID + "/" + claims.ObjectID
	if claims.ObjectID == "" {
		key = claims.TenantID + "/appid:" + claims.AppID
	}
	l.mu.Lock()
	if ans, ok := l.names[key]; ok {
		l.mu.Unlock()
		return ans.name, ans.err
	}
	cache := l.cache
	if cache == nil && !l.closed {
		cache = token.NewCache(cred, mgmtScope, l.opts...)
		l.cache = cache
	}
	l.mu.Unlock()
	if cache == nil {
		return "", l.failed(claims, cred, credKind, mgmtScope, token.ErrClosed)
	}
	mt, err := cache.Token(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("pgentra: the DSN names no user; waiting for the management-scope token that names the principal (%s): %w", describe(claims), ctx.Err())
		}
		return "", l.failed(claims, cred, credKind, mgmtScope, err)
	}
	var ans identityName
	if mc, err := token.ParseClaims(mt.Token); err == nil && mc.PrincipalName() != "" {
		ans.name = mc.PrincipalName()
		if ans.err = checkDerivedName(ans.name, claims); ans.err != nil {
			ans.name = ""
		}
	} else {
		ans.err = noPrincipalError(claims)
	}
	l.mu.Lock()
	if !l.closed {
		if l.names == nil {
			l.names = make(map[string]identityName)
		}
		l.names[key] = ans
	}
	l.mu.Unlock()
	tokenx.Drop(cache, mt.Token) // after the memo: a caller that missed it still gets the token
	return ans.name, ans.err
}

// failed is the error of a management-scope request that failed: it names
// the credential and the scope, and wraps the cause.
func (l *userLookup) failed(claims token.Claims, cred azcore.TokenCredential, credKind, mgmtScope string, err error) error {
	by := "the credential"
	if credKind != "" {
		by = "the " + credentialName(cred, credKind)
	}
	return fmt.Errorf("%w: the DSN names no user and the access token does not name its principal (%s); asking %s for a management-scope token (%s) to find the name failed: %w",
		ErrNoUser, describe(claims), by, mgmtScope, err)
}

// close stops the lookup's cache (see token.Cache.Close: a call it has just
// cancelled is waited for briefly, one abandoned after the fetch timeout
// not at all); later lookups fail.
func (l *userLookup) close() {
	l.mu.Lock()
	l.closed = true
	cache := l.cache
	l.mu.Unlock()
	if cache != nil {
		cache.Close()
	}
}

// describe names a token's principal for errors and LoginError.Principal:
// identifiers, never the token, each claim value quoted when it holds
// anything that could break the line (token.Claims.String).
func describe(c token.Claims) string {
	if s := c.String(); s != "" {
		return s
	}
	return "no oid, appid or upn claim"
}
