package emulator_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// TestDefaultLifetimeMSALCaches: with Azure's default lifetimes the emulator's
// managed-identity tokens live 24 h, and MSAL caches them as it caches
// Azure's: a second GetToken does not reach IMDS. (A user-assigned identity
// with a fresh client ID, so no other test's cache entry can interfere.)
func TestDefaultLifetimeMSALCaches(t *testing.T) {
	env, err := emulator.Start(context.Background(), emulator.Options{PG: pg.Get(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	mi, err := env.Tenant.AddUserAssignedIdentity("id-cached")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: env.ClientOptions(), ID: azidentity.ClientID(mi.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := policy.TokenRequestOptions{Scopes: []string{entra.DatabaseScope}}
	first, err := cred.GetToken(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(first.ExpiresOn); left < 23*time.Hour || left > 24*time.Hour {
		t.Errorf("managed-identity token expires in %v, want about 24h (Azure's default)", left)
	}
	second, err := cred.GetToken(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if second.Token != first.Token {
		t.Error("the second GetToken returned a new token; want MSAL's cached one")
	}
	if n := env.Identity.RequestsFor(mi); n != 1 {
		t.Errorf("IMDS saw %d requests for the identity, want 1 (MSAL caches 24h tokens)", n)
	}
}
