package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	_ "github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// childVar makes the test binary play a program instead of running tests.
const childVar = "PGENTRA_EMULATOR_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childVar) == "workload" {
		os.Exit(workloadChild())
	}
	os.Exit(m.Run())
}

// workloadChild is a program in a workload-identity pod, configured only by
// the environment (the webhook's variables, SSL_CERT_FILE, env.sh's PG*):
// a WorkloadIdentityCredential with azidentity's default transport gets a
// database token, then pgentra logs in with azure_credential=workload_identity.
// The emulator's authority is no host MSAL knows: azidentity's own
// credential needs instance discovery off (it would ask
// login.microsoftonline.com); pgentra turns it off for a loopback authority
// by itself, so its side is plain sql.Open.
func workloadChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		return 1
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{DisableInstanceDiscovery: true})
	if err != nil {
		return fail("NewWorkloadIdentityCredential", err)
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{entra.DatabaseScope}})
	if err != nil {
		return fail("GetToken", err)
	}
	parts := strings.Split(tok.Token, ".")
	var claims struct {
		AppID string `json:"appid"`
	}
	if len(parts) != 3 {
		return fail("token", fmt.Errorf("not a JWT (%d parts)", len(parts)))
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || json.Unmarshal(b, &claims) != nil {
		return fail("token claims", err)
	}
	fmt.Println("credential: token for appid", claims.AppID)

	db, err := sql.Open("pgentra", "azure_credential=workload_identity")
	if err != nil {
		return fail("sql.Open", err)
	}
	defer db.Close()
	var user string
	if err := db.QueryRowContext(ctx, "select current_user").Scan(&user); err != nil {
		return fail("pgentra login", err)
	}
	fmt.Println("pgentra: current_user", user)
	return 0
}
