package driver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/pgentra/pgentra/internal/dsn"
	"github.com/pgentra/pgentra/token"
)

// Bounds of the management-scope user lookup. The lookup runs on its own
// context, never a caller's: a caller whose ctx ends stops waiting, the
// lookup goes on for the others (like token.Cache's fetch).
const (
	userLookupTimeout    = 2 * time.Minute // IMDS' own retries can take ~97 s
	userLookupBackoff    = time.Second     // first pause after a failed lookup
	userLookupBackoffMax = time.Minute
	userLookupCloseGrace = 500 * time.Millisecond // close's wait for a cancelled call
	maxHungLookups       = 2                      // abandoned calls before no new one starts
)

// errLookupClosed is returned to callers of a lookup that Close stopped.
var errLookupClosed = errors.New("pgentra: connector closed")

// deriveUser finds the PostgreSQL role name of the identity behind tok:
// the last segment of xms_mirid for a managed identity, else the
// user's upn / preferred_username / unique_name.
//
// Database-scope managed-identity tokens carry no xms_mirid, so when the
// token names nobody and a credential is at hand, the same credential is
// asked for a management-scope token, which does. Service principals carry
// no name at all: their role is the app's display name, which only the DSN
// can give. The Connector calls it through userLookup, which makes the
// management-scope request single-flight, remembers an identity that names
// no principal and backs off after a failure.
func deriveUser(ctx context.Context, tok azcore.AccessToken, cred azcore.TokenCredential, mgmtScope string) (string, error) {
	claims, name, err := nameInToken(tok)
	if err != nil || name != "" {
		return name, err
	}
	if cred == nil {
		return "", noPrincipalError(claims)
	}
	name, _, err = managementName(ctx, cred, "", mgmtScope, claims)
	return name, err
}

// nameInToken reads the role name from the token itself; "" with a nil
// error when the token names no principal.
func nameInToken(tok azcore.AccessToken) (token.Claims, string, error) {
	claims, err := token.ParseClaims(tok.Token)
	if err != nil {
		return claims, "", fmt.Errorf("%w: the DSN names no user and the access token can't be read to find one (%w); set user to the role created with pgaadauth_create_principal", ErrNoUser, err)
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
	return fmt.Errorf("%w: the DSN names no user and the role name read from the access token (%q, oid=%s) holds a NUL byte; set user to the role created with pgaadauth_create_principal: %w",
		ErrNoUser, name, orNone(c.ObjectID), dsn.ErrNULByte)
}

func noPrincipalError(c token.Claims) error {
	return fmt.Errorf("%w: the DSN names no user and the access token does not name its principal (%s); set user to the role created for it with pgaadauth_create_principal (for a service principal: the app's display name)", ErrNoUser, describe(c))
}

// managementName asks cred for a management-scope token and reads the
// principal's name from it. final reports an answer that will not change for
// this identity (the management token names nobody either); a failed request
// is not final. The error of a failed request says what was asked and wraps
// the credential's error.
func managementName(ctx context.Context, cred azcore.TokenCredential, credKind, mgmtScope string, claims token.Claims) (name string, final bool, err error) {
	mt, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope}})
	if err != nil {
		by := "the credential"
		if credKind != "" {
			by = "the " + credentialName(cred, credKind)
		}
		return "", false, fmt.Errorf("%w: the DSN names no user and the access token does not name its principal (%s); asking %s for a management-scope token (%s) to find the name failed: %w",
			ErrNoUser, describe(claims), by, mgmtScope, err)
	}
	if mc, err := token.ParseClaims(mt.Token); err == nil {
		if name := mc.PrincipalName(); name != "" {
			if err := checkDerivedName(name, claims); err != nil {
				return "", true, err // final: the identity's name will not change
			}
			return name, true, nil
		}
	}
	return "", true, noPrincipalError(claims)
}

// userLookup runs the management-scope lookups of one Connector. Its zero
// value is ready to use. Per identity (tenant and object ID of the database
// token) there is at most one lookup in flight; an identity whose tokens
// name no principal is remembered, so a misconfigured pool asks once; a
// failed lookup is not repeated before a jittered back-off (1 s doubling to
// 1 min) has passed. mu is never held across I/O. A call still running at
// the lookup's timeout (a credential that ignores its context) is abandoned
// like token.Cache's: its waiters get an error and a back-off starts; while
// maxHungLookups such calls have not returned, no new one is made.
type userLookup struct {
	mu      sync.Mutex
	closed  bool
	ids     map[string]*identityLookup
	hung    int              // calls abandoned after the timeout that have not returned yet
	now     func() time.Time // nil: time.Now (tests move it)
	timeout time.Duration    // 0: userLookupTimeout (tests shorten it)
}

// identityLookup is the state of one identity's lookup.
type identityLookup struct {
	flight  *userFlight
	name    string // the answer, once found (for callers that gave up waiting)
	err     error  // the last failure, or the final answer when final
	final   bool
	retryAt time.Time
	backoff time.Duration
}

// userFlight is one management-scope request; name and err are written
// before done is closed.
type userFlight struct {
	done   chan struct{}
	ctx    context.Context // the lookup's own: ends at its timeout or at close
	cancel context.CancelFunc
	name   string
	err    error
	// abandoned: a waiter gave up on the call after the timeout; guarded
	// by userLookup.mu.
	abandoned bool
}

// limit is how long one lookup may take.
func (l *userLookup) limit() time.Duration {
	if l.timeout > 0 {
		return l.timeout
	}
	return userLookupTimeout
}

func (l *userLookup) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// name returns the role name of the identity behind claims, from a
// management-scope token of cred. It waits for the identity's lookup in
// flight (or starts one) until ctx ends; then it returns an error wrapping
// ctx.Err() while the lookup goes on.
func (l *userLookup) name(ctx context.Context, claims token.Claims, cred azcore.TokenCredential, credKind, mgmtScope string) (string, error) {
	key := claims.TenantID + "/" + claims.ObjectID
	if claims.ObjectID == "" {
		key = claims.TenantID + "/appid:" + claims.AppID
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return "", errLookupClosed
	}
	if l.ids == nil {
		l.ids = make(map[string]*identityLookup)
	}
	st := l.ids[key]
	if st == nil {
		st = &identityLookup{}
		l.ids[key] = st
	}
	if st.name != "" || st.final {
		name, err := st.name, st.err
		l.mu.Unlock()
		return name, err
	}
	f := st.flight
	if f == nil {
		if now := l.clock(); st.err != nil && now.Before(st.retryAt) {
			err, wait := st.err, st.retryAt.Sub(now)
			l.mu.Unlock()
			return "", fmt.Errorf("%w (next attempt in %s)", err, wait.Round(time.Millisecond))
		}
		if l.hung >= maxHungLookups {
			err := st.err
			if err == nil {
				err = fmt.Errorf("%w: the DSN names no user and the access token does not name its principal (%s); earlier management-scope requests to find the name have not returned", ErrNoUser, describe(claims))
			}
			l.mu.Unlock()
			return "", err
		}
		fctx, cancel := context.WithTimeout(context.Background(), l.limit())
		f = &userFlight{done: make(chan struct{}), ctx: fctx, cancel: cancel}
		st.flight = f
		go l.run(fctx, f, st, claims, cred, credKind, mgmtScope)
	}
	l.mu.Unlock()
	select {
	case <-f.done:
		return f.name, f.err
	case <-f.ctx.Done():
		// Timed out or closed. A credential that honours its context returns
		// at once; one that ignores it is abandoned (as token.Cache does),
		// so that no caller waits on it for good.
		l.mu.Lock()
		if st.flight != f {
			l.mu.Unlock()
			<-f.done // run is about to close it
			return f.name, f.err
		}
		st.flight = nil
		f.abandoned = true
		l.hung++ // until run sees abandoned
		var err error
		if l.closed {
			err = errLookupClosed
		} else {
			err = fmt.Errorf("%w: the DSN names no user and the access token does not name its principal (%s); the management-scope token (%s) that names it did not come within %s (the credential does not return): %w",
				ErrNoUser, describe(claims), mgmtScope, l.limit(), f.ctx.Err())
			l.failLocked(st, err)
		}
		l.mu.Unlock()
		return "", err
	case <-ctx.Done():
		return "", fmt.Errorf("pgentra: the DSN names no user; waiting for the management-scope token that names the principal (%s): %w", describe(claims), ctx.Err())
	}
}

func (l *userLookup) run(ctx context.Context, f *userFlight, st *identityLookup, claims token.Claims, cred azcore.TokenCredential, credKind, mgmtScope string) {
	defer f.cancel()
	name, final, err := func() (name string, final bool, err error) {
		defer func() {
			if p := recover(); p != nil {
				name, final, err = "", false, fmt.Errorf("%w: the management-scope lookup of the user name panicked: %v", ErrNoUser, p)
			}
		}()
		return managementName(ctx, cred, credKind, mgmtScope, claims)
	}()
	l.mu.Lock()
	if f.abandoned {
		// A waiter gave up on this call after the timeout: only a late
		// answer is kept; the failure was recorded then.
		l.hung--
		if err == nil && !l.closed && st.name == "" {
			st.name, st.err, st.backoff = name, nil, 0
		}
		l.mu.Unlock()
		f.name, f.err = name, err
		close(f.done)
		return
	}
	st.flight = nil
	switch {
	case l.closed:
		err = errLookupClosed
	case err == nil:
		st.name, st.err, st.backoff = name, nil, 0
	case final:
		st.err, st.final = err, true
	default:
		l.failLocked(st, err)
	}
	l.mu.Unlock()
	f.name, f.err = name, err
	close(f.done)
}

// failLocked records a failed lookup and when the next may start; l.mu is
// held.
func (l *userLookup) failLocked(st *identityLookup, err error) {
	if st.backoff == 0 {
		st.backoff = userLookupBackoff
	} else {
		st.backoff = min(2*st.backoff, userLookupBackoffMax)
	}
	st.err, st.retryAt = err, l.clock().Add(st.backoff/2+rand.N(st.backoff-st.backoff/2+1))
}

// close stops the lookups in flight and waits for their goroutines; later
// lookups fail. A credential that ignores its context cannot be stopped:
// close waits for a call it has just cancelled for at most
// userLookupCloseGrace, and not at all for one abandoned after the
// timeout; such a goroutine ends when the credential returns.
func (l *userLookup) close() {
	l.mu.Lock()
	l.closed = true
	var flights []*userFlight
	for _, st := range l.ids {
		if f := st.flight; f != nil {
			f.cancel()
			flights = append(flights, f)
		}
	}
	l.mu.Unlock()
	grace := time.NewTimer(userLookupCloseGrace)
	defer grace.Stop()
	for _, f := range flights {
		select {
		case <-f.done:
		case <-grace.C:
			return
		}
	}
}

// describe names a token's principal for error messages: identifiers, never
// the token.
func describe(c token.Claims) string {
	s := "oid=" + orNone(c.ObjectID)
	if c.UPN != "" {
		s += " upn=" + c.UPN
	}
	if c.AppID != "" {
		s += " appid=" + c.AppID
	}
	if c.IdentityType != "" {
		s += " idtyp=" + c.IdentityType
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
