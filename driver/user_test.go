package driver

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/pgentra/pgentra/token"
)

func TestDeriveUser(t *testing.T) {
	const (
		uami = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-orders"
		vm   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"
		site = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.Web/sites/orders-api"
	)
	tests := []struct {
		name      string
		db, mgmt  map[string]any
		want      string
		mgmtCalls int32
		wantErr   bool
	}{
		{name: "user with upn", db: userClaims(), want: "carol@contoso.com"},
		{name: "user-assigned identity via management scope", db: miDBClaims(), mgmt: miMgmtClaims(uami), want: "id-orders", mgmtCalls: 1},
		{name: "system-assigned VM identity via management scope", db: miDBClaims(), mgmt: miMgmtClaims(vm), want: "vm-web-01", mgmtCalls: 1},
		{name: "App Service identity", db: miDBClaims(), mgmt: miMgmtClaims(site), want: "orders-api", mgmtCalls: 1},
		{name: "database token that does carry xms_mirid", db: miMgmtClaims(uami), want: "id-orders"},
		{name: "service principal has no name", db: spClaims(), mgmt: spClaims(), mgmtCalls: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := &fakeCredential{claims: tt.db, mgmt: tt.mgmt}
			tok, _ := cred.GetToken(context.Background(), scopeOpts(token.ScopePublic))
			got, err := deriveUser(context.Background(), tok, cred, token.ScopeManagement)
			if tt.wantErr {
				if !errors.Is(err, ErrNoUser) {
					t.Fatalf("err = %v, want ErrNoUser", err)
				}
				for _, must := range []string{"pgaadauth_create_principal", "appid=3f2e1d0c", "set user"} {
					if !strings.Contains(err.Error(), must) {
						t.Errorf("error %q does not mention %q", err, must)
					}
				}
				if strings.Contains(err.Error(), secretMarker) {
					t.Errorf("error leaks the token: %v", err)
				}
			} else if err != nil || got != tt.want {
				t.Fatalf("deriveUser = %q, %v; want %q", got, err, tt.want)
			}
			if n := cred.mgmtCalls.Load(); n != tt.mgmtCalls {
				t.Errorf("management-scope calls = %d, want %d", n, tt.mgmtCalls)
			}
		})
	}
}

func TestDeriveUserUnreadableToken(t *testing.T) {
	_, err := deriveUser(context.Background(), azcore.AccessToken{Token: "opaque-" + secretMarker}, nil, token.ScopeManagement)
	if !errors.Is(err, ErrNoUser) || strings.Contains(err.Error(), secretMarker) {
		t.Fatalf("err = %v", err)
	}
}
