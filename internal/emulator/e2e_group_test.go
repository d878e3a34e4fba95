package emulator_test

// End-to-end tests of Entra group logins, as Azure Database for PostgreSQL
// Flexible Server does them: an Entra administrator creates a role for a
// group (pgaadauth_create_principal('<group>', false, false)), and a member
// of the group — a user, a service principal or a managed identity — logs
// in with user = the group's name and its OWN access token as password.
// current_user is then the group role.

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
)

// groupSignIn signs p in with the stand-in az, put first on PATH for the test.
func groupSignIn(t *testing.T, env *emulator.Env, p entra.Principal) {
	t.Helper()
	dir := t.TempDir()
	if _, err := entra.InstallFakeAZ(dir, env.Tenant, p); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// groupLoginError pings db, expects the login to be refused with 28P01, and
// returns the driver's *LoginError.
func groupLoginError(t *testing.T, env *emulator.Env, dsn, wantUser string) *driver.LoginError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := e67Open(t, dsn).PingContext(ctx)
	if err == nil {
		t.Fatal("login succeeded")
	}
	var le *driver.LoginError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not a *driver.LoginError", err, err)
	}
	var pe *pq.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v does not wrap a *pq.Error", err)
	}
	if pe.Code != pgfront.CodeInvalidPassword || pe.Message != pgfront.MsgPasswordFailed(wantUser) {
		t.Fatalf("server error %s %q, want %s %q", pe.Code, pe.Message, pgfront.CodeInvalidPassword, pgfront.MsgPasswordFailed(wantUser))
	}
	if le.User != wantUser {
		t.Errorf("LoginError.User = %q, want %q", le.User, wantUser)
	}
	for _, l := range env.Front.Logins() {
		if l.OK || l.User != wantUser {
			t.Errorf("front login %+v, want a refusal for %q", l, wantUser)
		}
	}
	return le
}

func TestE2EGroupLogin(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tn := env.Tenant
	member, err := tn.AddUser(e67Name("carol") + "@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := tn.AddUser(e67Name("mallory") + "@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := tn.AddServicePrincipal(e67Name("reports-api"))
	if err != nil {
		t.Fatal(err)
	}
	group, err := tn.AddGroup(e67Name("pg-readers"), member, sp)
	if err != nil {
		t.Fatal(err)
	}
	// Only the group gets a role; its members have none of their own.
	if msg, err := env.CreatePrincipal(ctx, group, false); err != nil || msg != `Created role for "`+group.Name+`"` {
		t.Fatalf("create principal for the group: %q, %v", msg, err)
	}
	// The stranger is in the server's directory, but in no group.
	if err := env.Register(ctx, stranger); err != nil {
		t.Fatal(err)
	}

	t.Run("member user via azure cli", func(t *testing.T) {
		env.Front.Reset()
		groupSignIn(t, env, member)
		// az needs no transport: plain sql.Open.
		db := e67Open(t, env.DSN(group.Name, "azure_credential=azure_cli"))
		if got := e67Who(t, db); got != group.Name {
			t.Errorf("current_user = %q, want the group role %q", got, group.Name)
		}
		// The password was the user's own token (oid = the user's), not a
		// token of the group: Entra issues none.
		e67CheckFront(t, env, member, group.Name)
	})

	t.Run("member service principal via client secret", func(t *testing.T) {
		env.Front.Reset()
		t.Setenv("AZURE_CLIENT_SECRET", sp.ClientSecret)
		// The authority's TLS certificate is trusted only by the emulator's
		// transport: NewConnector + WithClientOptions.
		db := e67Open(t, env.DSN(group.Name, "azure_credential=client_secret", "azure_client_id="+sp.AppID, "azure_tenant_id="+tn.ID()),
			driver.WithClientOptions(env.ClientOptions()))
		if got := e67Who(t, db); got != group.Name {
			t.Errorf("current_user = %q, want the group role %q", got, group.Name)
		}
		e67CheckFront(t, env, sp, group.Name)
	})

	t.Run("non-member refused", func(t *testing.T) {
		env.Front.Reset()
		groupSignIn(t, env, stranger)
		le := groupLoginError(t, env, env.DSN(group.Name, "azure_credential=azure_cli"), group.Name)
		if le.Derived {
			t.Error("LoginError.Derived with the user given")
		}
		if !strings.Contains(le.Hint, "pgaadauth_create_principal") || !strings.Contains(le.Hint, "direct member of the group") {
			t.Errorf("hint %q does not mention pgaadauth_create_principal and group membership", le.Hint)
		}
	})

	t.Run("derived user is the member's own UPN", func(t *testing.T) {
		// Group logins need user=<group> in the DSN: without it pgentra
		// derives the user from the token, which names the member (its UPN),
		// never a group — and the member has no role of its own, so the
		// server refuses the login.
		env.Front.Reset()
		groupSignIn(t, env, member)
		le := groupLoginError(t, env, env.DSN("", "azure_credential=azure_cli"), member.Name)
		if !le.Derived {
			t.Error("LoginError.Derived = false, want the user derived from the token")
		}
	})

	t.Run("membership change applies after Register", func(t *testing.T) {
		groupSignIn(t, env, member)
		dsn := env.DSN(group.Name, "azure_credential=azure_cli")
		if err := tn.RemoveGroupMember(group, member); err != nil {
			t.Fatal(err)
		}
		if err := env.Register(ctx, group); err != nil {
			t.Fatal(err)
		}
		env.Front.Reset()
		groupLoginError(t, env, dsn, group.Name)

		if err := tn.AddGroupMember(group, member); err != nil {
			t.Fatal(err)
		}
		if err := env.Register(ctx, group); err != nil {
			t.Fatal(err)
		}
		env.Front.Reset()
		if got := e67Who(t, e67Open(t, dsn)); got != group.Name {
			t.Errorf("current_user = %q after re-adding the member, want %q", got, group.Name)
		}
	})
}
