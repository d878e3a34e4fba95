package emulator_test

// End-to-end tests of azure_credential=azure_developer_cli and of the
// default chain's Azure Developer CLI link: the real azidentity
// AzureDeveloperCLICredential runs the emulator's stand-in `azd` found on
// PATH, so plain sql.Open works (no transport to inject). Every test clears
// the credential environment and names its credential or restricts the
// chain to "dev", so no managed-identity probe ever leaves the machine.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// e2eAZDUser starts an environment, adds a user with a role on the server
// and installs a fake azd signed in as that user in a new dir, which it
// returns. PATH is left alone: the cluster may need it to start.
func e2eAZDUser(t *testing.T, base string) (*emulator.Env, entra.Principal, *entra.FakeAZD, string) {
	t.Helper()
	e67CleanEnv(t)
	env := startEnv(t)
	u, err := env.Tenant.AddUser(e67Name(base) + "@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := env.CreatePrincipal(ctx, u, false); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	azd, err := entra.InstallFakeAZD(dir, env.Tenant, u)
	if err != nil {
		t.Fatal(err)
	}
	return env, u, azd, dir
}

// e2eAZDPath puts dir first on PATH.
func e2eAZDPath(t *testing.T, dir string) {
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestE2EAzureDeveloperCLIDerivedUser: a plain sql.Open with
// azure_credential=azure_developer_cli and no user logs in as the user azd
// is signed in as, the role name taken from the token's upn.
func TestE2EAzureDeveloperCLIDerivedUser(t *testing.T) {
	env, u, azd, dir := e2eAZDUser(t, "dana")
	e2eAZDPath(t, dir)
	db := e67Open(t, env.DSN("", "azure_credential=azure_developer_cli"))
	if got := e67Who(t, db); got != u.UPN || got != u.Name {
		t.Errorf("current_user = %q, want the upn %q", got, u.UPN)
	}
	e67CheckFront(t, env, u, u.Name)
	want := "auth token -o json --no-prompt --scope " + entra.DatabaseScope
	if args := azd.Args(); len(args) != 1 || args[0] != want {
		t.Errorf("azd runs %q, want exactly [%q] (the upn names the role: no management token)", args, want)
	}
}

// TestE2EAzureDeveloperCLIOneRunFor50Connections opens 50 connections at
// once through azure_credential=azure_developer_cli, then one more: the token
// cache makes that one `azd` process, not 51. azd is made slow so that the
// 50 surely overlap its run.
func TestE2EAzureDeveloperCLIOneRunFor50Connections(t *testing.T) {
	const n = 50
	env, u, azd, dir := e2eAZDUser(t, "dylan")
	if err := azd.SetDelay(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e2eAZDPath(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := e67Open(t, env.DSN(u.Name, "azure_credential=azure_developer_cli"))
	db.SetMaxOpenConns(n + 1)

	conns := e67HoldConns(t, ctx, db, n)
	for i, c := range conns {
		var who string
		if err := c.QueryRowContext(ctx, "select current_user").Scan(&who); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		if who != u.Name {
			t.Errorf("conn %d: current_user = %q, want %q", i, who, u.Name)
		}
	}
	// All n are held, so this is a new physical connection: a cached token.
	if got := e67Who(t, db); got != u.Name {
		t.Errorf("current_user = %q, want %q", got, u.Name)
	}
	if runs := azd.Runs(); runs != 1 {
		t.Errorf("azd ran %d times for %d connections, want exactly 1", runs, n+1)
	}
	if got := len(env.Front.Logins()); got != n+1 {
		t.Errorf("front saw %d logins, want %d", got, n+1)
	}
	e67CheckFront(t, env, u, u.Name)
}

// TestE2EAzureDeveloperCLINotLoggedIn: with azd logged out, the sql error
// names the credential, carries azd's own hint and azidentity's typed
// error, holds no token, and no login reaches the server.
func TestE2EAzureDeveloperCLINotLoggedIn(t *testing.T) {
	env, _, azd, dir := e2eAZDUser(t, "drew")
	if err := azd.SetError(entra.AZDNotLoggedIn); err != nil {
		t.Fatal(err)
	}
	e2eAZDPath(t, dir)
	db := e67Open(t, env.DSN("", "azure_credential=azure_developer_cli"))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := db.PingContext(ctx)
	if err == nil {
		t.Fatal("Ping succeeded with azd logged out")
	}
	msg := err.Error()
	for _, want := range []string{"azure_developer_cli", "AzureDeveloperCLICredential", "run `azd auth login` to login"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "eyJ") || strings.Contains(msg, "consoleMessage") {
		t.Errorf("error %q holds token text or azd's raw JSON", msg)
	}
	if afe := new(*azidentity.AuthenticationFailedError); !errors.As(err, afe) {
		t.Errorf("errors.As(err, *azidentity.AuthenticationFailedError) = false for %q", msg)
	}
	if n := len(env.Front.Logins()); n != 0 {
		t.Errorf("front saw %d logins, want 0 (no token, no login)", n)
	}
	if azd.Runs() != 1 {
		t.Errorf("azd ran %d times, want 1", azd.Runs())
	}
}

// TestE2EDefaultChainPicksAzureDeveloperCLI: the default chain restricted
// to developer tools (AZURE_TOKEN_CREDENTIALS=dev) logs in with azd when az
// is missing from PATH or signed out.
func TestE2EDefaultChainPicksAzureDeveloperCLI(t *testing.T) {
	tests := []struct {
		name  string
		extra []string // DSN keys
		// withAZ installs a signed-out fake az beside azd; else PATH must
		// hold no az at all.
		withAZ bool
	}{
		{name: "azure_credential=default, no az on PATH", extra: []string{"azure_credential=default"}},
		{name: "no azure_credential, az signed out", withAZ: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, u, azd, dir := e2eAZDUser(t, "dani")
			var az *entra.FakeAZ
			if tc.withAZ {
				var err error
				if az, err = entra.InstallFakeAZ(dir, env.Tenant, u); err != nil {
					t.Fatal(err)
				}
				if err := az.SetError("ERROR: Please run 'az login' to setup account."); err != nil {
					t.Fatal(err)
				}
			}
			// Only the fakes' dir and the system's: no real az, no other azd.
			t.Setenv("PATH", strings.Join([]string{dir, "/usr/bin", "/bin"}, string(os.PathListSeparator)))
			if p, err := exec.LookPath("azd"); err != nil || p != azd.Path() {
				t.Fatalf("azd on PATH = %q, %v; want the fake %q", p, err, azd.Path())
			}
			if p, err := exec.LookPath("az"); tc.withAZ != (err == nil) || (tc.withAZ && p != az.Path()) {
				t.Fatalf("az on PATH = %q, %v; the test needs the fake or none", p, err)
			}
			t.Setenv("AZURE_TOKEN_CREDENTIALS", "dev") // never managed identity

			db := e67Open(t, env.DSN("", tc.extra...))
			if got := e67Who(t, db); got != u.Name {
				t.Errorf("current_user = %q, want %q", got, u.Name)
			}
			e67CheckFront(t, env, u, u.Name)
			if azd.Runs() != 1 {
				t.Errorf("azd ran %d times, want 1: %q", azd.Runs(), azd.Args())
			}
			if az != nil && az.Runs() != 1 {
				t.Errorf("az ran %d times, want 1 (tried first, signed out)", az.Runs())
			}
		})
	}
}
