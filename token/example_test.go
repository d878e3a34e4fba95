package token_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/pgentra/pgentra/token"
)

// staticCredential stands in for an azidentity credential such as
// azidentity.NewDefaultAzureCredential.
type staticCredential struct{ calls *int }

func (s staticCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	*s.calls++
	return azcore.AccessToken{Token: "eyJ0eXAi...", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func ExampleNewCache() {
	calls := 0
	cache := token.NewCache(staticCredential{&calls}, token.ScopeForHost("srv.postgres.database.azure.com"),
		token.WithEventHandler(func(e token.Event) { fmt.Println("event:", e.Kind) }))
	defer cache.Close()

	ctx := context.Background()
	for range 3 {
		tok, src, err := cache.Acquire(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = tok.Token // the password of a new connection
		fmt.Println("token from:", src)
	}
	fmt.Println("GetToken calls:", calls)
	// Output:
	// event: cache_miss
	// event: fetch_start
	// event: fetch_end
	// token from: fetched
	// event: cache_hit
	// token from: cache
	// event: cache_hit
	// token from: cache
	// GetToken calls: 1
}

func ExampleScopeForHost() {
	for _, host := range []string{
		"orders.postgres.database.azure.com",
		"orders.postgres.database.chinacloudapi.cn",
		"c-orders.abc.postgres.cosmos.azure.com",
		"localhost",
	} {
		fmt.Println(token.ScopeForHost(host))
	}
	// Output:
	// https://ossrdbms-aad.database.windows.net/.default
	// https://ossrdbms-aad.database.chinacloudapi.cn/.default
	// https://token.postgres.cosmos.azure.com/.default
	// https://ossrdbms-aad.database.windows.net/.default
}

func ExampleParseClaims() {
	// A management-scope token of a user-assigned managed identity (signature elided).
	payload := `{"aud":"https://management.azure.com/","idtyp":"app","oid":"9c8d7e6f",
		"xms_mirid":"/subscriptions/0/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-orders"}`
	jwt := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"

	claims, err := token.ParseClaims(jwt)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.PrincipalName())
	fmt.Println(claims)

	_, err = token.ParseClaims("not a token")
	fmt.Println(err)
	// Output:
	// id-orders
	// oid=9c8d7e6f idtyp=app
	// pgentra: malformed access token: not a JWT (want 3 dot-separated parts)
}
