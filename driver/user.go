package driver

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/pgentra/pgentra/token"
)

// deriveUser finds the PostgreSQL role name of the identity behind tok
// (DESIGN §9): the last segment of xms_mirid for a managed identity, else the
// user's upn / preferred_username / unique_name.
//
// Database-scope managed-identity tokens carry no xms_mirid, so when the
// token names nobody and a credential is at hand, the same credential is
// asked once for a management-scope token, which does. Service principals
// carry no name at all: their role is the app's display name, which only the
// DSN can give.
func deriveUser(ctx context.Context, tok azcore.AccessToken, cred azcore.TokenCredential, mgmtScope string) (string, error) {
	claims, err := token.ParseClaims(tok.Token)
	if err != nil {
		return "", fmt.Errorf("%w: the DSN names no user and the access token can't be read to find one (%w); set user to the role created with pgaadauth_create_principal", ErrNoUser, err)
	}
	if name := claims.PrincipalName(); name != "" {
		return name, nil
	}
	if cred != nil {
		mt, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope}})
		if err == nil {
			if mc, err := token.ParseClaims(mt.Token); err == nil {
				if name := mc.PrincipalName(); name != "" {
					return name, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%w: the DSN names no user and the access token does not name its principal (%s); set user to the role created for it with pgaadauth_create_principal (for a service principal: the app's display name)", ErrNoUser, describe(claims))
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
