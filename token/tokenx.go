package token

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/pgentra/pgentra/internal/tokenx"
)

// The driver reaches what only it needs through internal/tokenx, so that it
// stays out of this package's API.
func init() {
	tokenx.Acquire = func(ctx context.Context, c any) (azcore.AccessToken, bool, error) {
		tok, src, err := c.(*Cache).acquire(ctx)
		return tok, src == fetched, err
	}
	tokenx.Credential = func(c any) azcore.TokenCredential { return c.(*Cache).cred }
	tokenx.Drop = func(c any, tok string) { c.(*Cache).drop(tok) }
}
