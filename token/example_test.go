package token_test

import (
	"context"
	"encoding/base64"
	"errors"
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
		tok, err := cache.Token(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = tok.Token // the password of a new connection
	}
	fmt.Println("GetToken calls:", calls)
	// Output:
	// event: cache_miss
	// event: fetch_start
	// event: fetch_end
	// event: cache_hit
	// event: cache_hit
	// GetToken calls: 1
}

// rotatingCredential issues "token-1", "token-2", … and, like azidentity's managed
// identity and service principal credentials, hands its last token back unless the
// request carries Claims (which Cache.Refresh sets to bypass such a cache).
type rotatingCredential struct{ issued int }

func (r *rotatingCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if r.issued == 0 || opts.Claims != "" {
		r.issued++
	}
	return azcore.AccessToken{Token: fmt.Sprintf("token-%d", r.issued), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// authError stands in for pgx's *pgconn.PgError.
type authError struct{ Code string }

func (e *authError) Error() string { return "password authentication failed (SQLSTATE " + e.Code + ")" }

// After a server refuses a token from the cache (here, the first one; in practice a
// revoked token, or a server whose clock runs ahead), Refresh gets one the credential
// has just issued, and one more login uses it. With pgx, connect is pgx.ConnectConfig
// with the token as cfg.Password, and the refusal test is
//
//	var pgErr *pgconn.PgError
//	refused := errors.As(err, &pgErr) && (pgErr.Code == "28000" || pgErr.Code == "28P01")
//
// With pgxpool, set the password in BeforeConnect, remember it, and retry the
// pool.Acquire (or the query) that failed.
func ExampleCache_Refresh() {
	cache := token.NewCache(&rotatingCredential{}, token.ScopePublic)
	defer cache.Close()

	login := func(password string) error { // the server refuses token-1
		fmt.Println("login with", password)
		if password == "token-1" {
			return &authError{Code: "28P01"}
		}
		return nil
	}
	connect := func(ctx context.Context) error {
		tok, err := cache.Token(ctx)
		if err != nil {
			return err
		}
		err = login(tok.Token)
		var ae *authError
		if !errors.As(err, &ae) || (ae.Code != "28000" && ae.Code != "28P01") {
			return err
		}
		next, rerr := cache.Refresh(ctx, tok.Token)
		if rerr != nil || next.Token == tok.Token {
			return err // no other token to be had: the refusal stands
		}
		return login(next.Token)
	}

	ctx := context.Background()
	fmt.Println("connect:", connect(ctx))
	fmt.Println("connect:", connect(ctx)) // the cache now holds token-2
	// Output:
	// login with token-1
	// login with token-2
	// connect: <nil>
	// login with token-2
	// connect: <nil>
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
