// Package tokenx gives pgentra's driver the two things it needs from a
// token.Cache that are not part of the token package's public API: whether
// a token was just fetched (to decide whether a refused login is worth a
// retry) and the cache's credential (to ask it for a management-scope token
// when deriving a role name). Package token fills the variables below when
// it is initialised, so they are set in any program that imports it.
package tokenx

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Acquire returns a valid token from cache, which must be a *token.Cache,
// as its Token method does, and whether the credential issued it while this
// call waited (fetched). Only a token that was not just fetched can be stale
// (revoked, or refused by a server whose clock differs), so only then is a
// refused login worth token.Cache.Refresh and one retry. fetched is
// meaningful only when err is nil.
var Acquire func(ctx context.Context, cache any) (tok azcore.AccessToken, fetched bool, err error)

// Credential returns the credential that cache, which must be a
// *token.Cache, gets its tokens from.
var Credential func(cache any) azcore.TokenCredential

// Drop forgets cache's current token if it is still tok (cache must be a
// *token.Cache): the user-name lookup reads a management-scope token once and
// must not answer a second identity of the same credential from it.
var Drop func(cache any, tok string)
