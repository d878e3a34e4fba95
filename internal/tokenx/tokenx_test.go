package tokenx_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/pgentra/pgentra/internal/tokenx"
	"github.com/pgentra/pgentra/token"
)

type countingCredential struct{ calls int }

func (c *countingCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls++
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Importing token fills the seam: the driver gets the cache's credential,
// and learns whether a token was fetched for its call or served from the
// cache.
func TestSeamReachesCache(t *testing.T) {
	if tokenx.Acquire == nil || tokenx.Credential == nil || tokenx.Drop == nil {
		t.Fatal("package token did not fill tokenx")
	}
	cred := &countingCredential{}
	c := token.NewCache(cred, token.ScopePublic)
	defer c.Close()
	if got := tokenx.Credential(c); got != cred {
		t.Errorf("Credential = %v, want the cache's credential", got)
	}
	ctx := context.Background()
	for i, want := range []bool{true, false} {
		tok, fetched, err := tokenx.Acquire(ctx, c)
		if err != nil || tok.Token != "t" || fetched != want {
			t.Errorf("Acquire #%d = (%q, fetched %v, %v), want fetched %v", i+1, tok.Token, fetched, err, want)
		}
	}
	if cred.calls != 1 {
		t.Errorf("GetToken calls = %d, want 1", cred.calls)
	}
	tokenx.Drop(c, "another token") // not the current one: kept
	if _, fetched, _ := tokenx.Acquire(ctx, c); fetched {
		t.Error("Drop of another token dropped the current one")
	}
	tokenx.Drop(c, "t")
	if _, fetched, _ := tokenx.Acquire(ctx, c); !fetched {
		t.Error("after Drop of the current token, the next Acquire did not fetch")
	}
}
