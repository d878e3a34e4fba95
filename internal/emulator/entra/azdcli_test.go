package entra

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TestAzureDeveloperCLICredential runs the real AzureDeveloperCLICredential
// against the fake azd on PATH. It sets PATH, so it cannot run in parallel.
func TestAzureDeveloperCLICredential(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("dave@contoso.com"))(t)
	dir := t.TempDir()
	azd := must(InstallFakeAZD(dir, tn, u))(t)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	cred := must(azidentity.NewAzureDeveloperCLICredential(&azidentity.AzureDeveloperCLICredentialOptions{TenantID: tn.ID()}))(t)
	tests := []struct {
		scope, aud string
	}{
		{DatabaseScope, DatabaseAudience},
		{ManagementScope, ManagementAudience},
		{"https://token.postgres.cosmos.azure.com/.default", "https://token.postgres.cosmos.azure.com"},
		{"https://ossrdbms-aad.database.usgovcloudapi.net/.default", "https://ossrdbms-aad.database.usgovcloudapi.net"},
	}
	for i, tc := range tests {
		at, err := getToken(t, cred, tc.scope)
		if err != nil {
			t.Fatalf("%s: GetToken: %v", tc.scope, err)
		}
		c := parse(t, tn, at.Token)
		if c["oid"] != u.ObjectID || c["upn"] != u.UPN || c["aud"] != tc.aud || c["idtyp"] != "user" || c["tid"] != tn.ID() {
			t.Errorf("%s: oid %v upn %v aud %v idtyp %v tid %v", tc.scope, c["oid"], c["upn"], c["aud"], c["idtyp"], c["tid"])
		}
		exp, _ := c.GetExpirationTime()
		if !at.ExpiresOn.Equal(exp.Time) {
			t.Errorf("%s: ExpiresOn %v, token exp %v", tc.scope, at.ExpiresOn, exp)
		}
		if azd.Runs() != i+1 {
			t.Errorf("Runs() = %d after %d calls (the CLI credential caches nothing)", azd.Runs(), i+1)
		}
	}
	want := "auth token -o json --no-prompt --scope " + DatabaseScope + " --tenant-id " + tn.ID()
	if args := azd.Args(); len(args) == 0 || args[0] != want {
		t.Errorf("first run args %q, want %q", args, want)
	}

	// No tenant: azd's own (the logged-in account's) tenant, no --tenant-id.
	anyTenant := must(azidentity.NewAzureDeveloperCLICredential(nil))(t)
	if _, err := getToken(t, anyTenant, DatabaseScope); err != nil {
		t.Fatalf("no tenant: %v", err)
	}
	args := azd.Args()
	if last := args[len(args)-1]; last != "auth token -o json --no-prompt --scope "+DatabaseScope {
		t.Errorf("no tenant: args %q", last)
	}

	first, _ := getToken(t, cred, DatabaseScope)
	if err := azd.Refresh(); err != nil {
		t.Fatal(err)
	}
	if second, _ := getToken(t, cred, DatabaseScope); second.Token == first.Token || second.Token == "" {
		t.Error("Refresh did not change the token")
	}

	other := must(azidentity.NewAzureDeveloperCLICredential(&azidentity.AzureDeveloperCLICredentialOptions{TenantID: newGUID()}))(t)
	if _, err := getToken(t, other, DatabaseScope); err == nil || !strings.Contains(err.Error(), "AADSTS90002") {
		t.Errorf("wrong tenant: err = %v", err)
	}
	_, err := getToken(t, cred, "https://vault.azure.net/.default")
	if err == nil || !strings.Contains(err.Error(), "AADSTS500011: The resource principal named https://vault.azure.net was not found") {
		t.Errorf("unknown resource: err = %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "consoleMessage") {
		t.Errorf("azidentity did not recognise the fake's stderr as azd's JSON: %v", err)
	}
}

// TestAzureDeveloperCLICredentialNotLoggedIn: a logged-out azd makes the
// credential fail with azidentity's AuthenticationFailedError carrying
// azd's message (azidentity v1.15 makes only a missing azd "unavailable"),
// and "" restores success.
func TestAzureDeveloperCLICredentialNotLoggedIn(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("erin@contoso.com"))(t)
	dir := t.TempDir()
	azd := must(InstallFakeAZD(dir, tn, u))(t)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cred := must(azidentity.NewAzureDeveloperCLICredential(nil))(t)

	if err := azd.SetError(AZDNotLoggedIn); err != nil {
		t.Fatal(err)
	}
	_, err := getToken(t, cred, DatabaseScope)
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		t.Fatalf("logged-out azd: err = %v (%T), want *azidentity.AuthenticationFailedError", err, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "AzureDeveloperCLICredential: ERROR: "+AZDNotLoggedIn) {
		t.Errorf("logged-out azd: err = %q, want azd's message as azidentity extracts it", msg)
	}
	if strings.Contains(msg, "consoleMessage") || strings.Contains(msg, "{") {
		t.Errorf("logged-out azd: err = %q still holds azd's JSON envelope", msg)
	}
	if azd.Runs() != 1 {
		t.Errorf("Runs() = %d, want 1", azd.Runs())
	}

	if err := azd.SetError(""); err != nil {
		t.Fatal(err)
	}
	if _, err := getToken(t, cred, DatabaseScope); err != nil {
		t.Errorf("after SetError(\"\"): %v", err)
	}
	if azd.Runs() != 2 {
		t.Errorf("Runs() = %d, want 2", azd.Runs())
	}
}

// TestAzureDeveloperCLICredentialDelay: a slow azd is waited for, and one
// slower than the caller's deadline fails when the deadline passes. Note
// that azidentity v1.15 reports that as an AuthenticationFailedError
// "signal: killed" (the shell it ran was killed), not as ctx.Err(): callers
// must look at their own ctx, as pgentra's token cache does.
func TestAzureDeveloperCLICredentialDelay(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("frank@contoso.com"))(t)
	dir := t.TempDir()
	azd := must(InstallFakeAZD(dir, tn, u))(t)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cred := must(azidentity.NewAzureDeveloperCLICredential(nil))(t)

	if err := azd.SetDelay(150 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := getToken(t, cred, DatabaseScope); err != nil || time.Since(start) < 150*time.Millisecond {
		t.Errorf("delayed azd: err %v after %v", err, time.Since(start))
	}

	if err := azd.SetDelay(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	at, err := cred.GetToken(ctx, tokenOpts(DatabaseScope))
	took := time.Since(start)
	if err == nil || at.Token != "" {
		t.Fatalf("azd slower than the deadline: token %t, err %v", at.Token != "", err)
	}
	if ctx.Err() == nil || took > 10*time.Second { // half the delay: room for a busy machine
		t.Errorf("azd slower than the deadline: returned after %v (ctx err %v), want soon after 200ms", took, ctx.Err())
	}
	if azd.Runs() != 2 {
		t.Errorf("Runs() = %d, want 2", azd.Runs())
	}
}

// TestFakeAZDCommandLine runs the script directly: azd's default ARM scope,
// several resources, unknown flags and commands (which azidentity never
// asks for), and the exact stderr of SetError. A fake az in the same dir
// keeps its own files.
func TestFakeAZDCommandLine(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("gina@contoso.com"))(t)
	dir := t.TempDir()
	azd := must(InstallFakeAZD(dir, tn, u))(t)
	az := must(InstallFakeAZ(dir, tn, u))(t)

	run := func(path string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(path, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running %s: %v", path, err)
		}
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}

	out, _, code := run(azd.Path(), "auth", "token", "-o", "json", "--no-prompt")
	if code != 0 || !strings.Contains(out, `"expiresOn": "`) {
		t.Fatalf("default scope: exit %d, out %q", code, out)
	}
	tok := out[strings.Index(out, `"token": "`)+len(`"token": "`):]
	tok = tok[:strings.IndexByte(tok, '"')]
	if c := parse(t, tn, tok); c["aud"] != ManagementAudience {
		t.Errorf("default scope: aud %v, want %v", c["aud"], ManagementAudience)
	}

	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"two resources", []string{"auth", "token", "-o", "json", "--scope", DatabaseScope, "--scope", ManagementScope}, 1, "AADSTS28000"},
		{"unknown flag", []string{"auth", "token", "--resource", DatabaseAudience}, 1, "unknown flag: --resource"},
		{"other command", []string{"auth", "login"}, 2, "not supported by the fake azd"},
	}
	for _, tc := range tests {
		if _, errOut, code := run(azd.Path(), tc.args...); code != tc.code || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d with %q", tc.name, code, errOut, tc.code, tc.wantErr)
		}
	}

	// SetError writes what azd writes under -o json: one console message.
	if err := azd.SetError(AZDNotLoggedIn); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(azd.Path(), "auth", "token", "-o", "json", "--no-prompt", "--scope", DatabaseScope)
	var m azdConsoleMessage
	if err := json.Unmarshal([]byte(errOut), &m); err != nil || code != 1 || out != "" ||
		m.Type != "consoleMessage" || m.Data.Message != "\nERROR: "+AZDNotLoggedIn+"\n" {
		t.Errorf("logged out: exit %d, stdout %q, stderr %q (%v)", code, out, errOut, err)
	}
	if err := azd.SetError(""); err != nil {
		t.Fatal(err)
	}

	if _, _, code := run(az.Path(), "account", "get-access-token", "-o", "json", "--resource", DatabaseAudience); code != 0 {
		t.Errorf("az beside azd: exit %d", code)
	}
	if azd.Runs() != 5 || az.Runs() != 1 {
		t.Errorf("runs: azd %d, az %d; want 5 and 1", azd.Runs(), az.Runs())
	}
}
