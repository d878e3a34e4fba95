package entra

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TestAzureCLICredential runs the real AzureCLICredential against the fake az
// on PATH. It sets PATH, so it cannot run in parallel.
func TestAzureCLICredential(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("carol@contoso.com"))(t)
	dir := t.TempDir()
	az := must(InstallFakeAZ(dir, tn, u))(t)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	cred := must(azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: tn.ID()}))(t)
	tests := []struct {
		scope, aud string
	}{
		{DatabaseScope, DatabaseAudience},
		{ManagementScope, ManagementAudience},
		{"https://token.postgres.cosmos.azure.com/.default", "https://token.postgres.cosmos.azure.com"},
	}
	for i, tc := range tests {
		at, err := getToken(t, cred, tc.scope)
		if err != nil {
			t.Fatalf("%s: GetToken: %v", tc.scope, err)
		}
		c := parse(t, tn, at.Token)
		if c["upn"] != u.UPN || c["aud"] != tc.aud || c["idtyp"] != "user" {
			t.Errorf("%s: upn %v aud %v idtyp %v", tc.scope, c["upn"], c["aud"], c["idtyp"])
		}
		exp, _ := c.GetExpirationTime()
		if !at.ExpiresOn.Equal(exp.Time) {
			t.Errorf("%s: ExpiresOn %v, token exp %v", tc.scope, at.ExpiresOn, exp)
		}
		if az.Runs() != i+1 {
			t.Errorf("Runs() = %d after %d calls (the CLI credential caches nothing)", az.Runs(), i+1)
		}
	}
	args := az.Args()
	want := "account get-access-token -o json --resource " + DatabaseAudience + " --tenant " + tn.ID()
	if len(args) == 0 || args[0] != want {
		t.Errorf("first run args %q, want %q", args, want)
	}

	first, _ := getToken(t, cred, DatabaseScope)
	if err := az.Refresh(); err != nil {
		t.Fatal(err)
	}
	if second, _ := getToken(t, cred, DatabaseScope); second.Token == first.Token || second.Token == "" {
		t.Error("Refresh did not change the token")
	}

	other := must(azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: newGUID()}))(t)
	if _, err := getToken(t, other, DatabaseScope); err == nil || !strings.Contains(err.Error(), "AADSTS90002") {
		t.Errorf("wrong tenant: err = %v", err)
	}
	if _, err := getToken(t, cred, "https://vault.azure.net/.default"); err == nil {
		t.Error("unknown resource accepted")
	}

	if err := az.SetError("ERROR: Please run 'az login' to setup account."); err != nil {
		t.Fatal(err)
	}
	if _, err := getToken(t, cred, DatabaseScope); err == nil || !strings.Contains(err.Error(), "az login") {
		t.Errorf("logged-out az: err = %v", err)
	}
	if err := az.SetError(""); err != nil {
		t.Fatal(err)
	}
	if err := az.SetDelay(150 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := getToken(t, cred, DatabaseScope); err != nil || time.Since(start) < 150*time.Millisecond {
		t.Errorf("delayed az: err %v after %v", err, time.Since(start))
	}
}
