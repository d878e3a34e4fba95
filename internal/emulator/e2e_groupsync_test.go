package emulator_test

// Group sync end to end through pgentra: with the server parameter
// pgaadauth.enable_group_sync on, select * from
// pgaadauth_sync_roles_for_group_members(); gives each member of a group role
// a role of its own, so members log in as themselves; with it off only the
// group's role takes their tokens. ALTER ROLE <group> NOLOGIN stops group
// logins. (ADD security-entra-concepts.md, security-entra-configure.md.)

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
)

func TestE2EGroupSync(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tn := env.Tenant
	member, err := tn.AddUser(e67Name("dana") + "@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := tn.AddServicePrincipal(e67Name("billing-api"))
	if err != nil {
		t.Fatal(err)
	}
	group, err := tn.AddGroup(e67Name("pg-writers"), member, sp)
	if err != nil {
		t.Fatal(err)
	}
	// The server's directory knows the members (Azure asks Graph); only the
	// group gets a role from the administrator.
	if err := env.Register(ctx, member); err != nil {
		t.Fatal(err)
	}
	if err := env.Register(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(ctx, group, false); err != nil {
		t.Fatal(err)
	}
	sync := func() {
		t.Helper()
		if _, err := env.AdminDB.ExecContext(ctx, `select * from pgaadauth_sync_roles_for_group_members();`); err != nil {
			t.Fatalf("pgaadauth_sync_roles_for_group_members: %v", err)
		}
	}
	asSelf := env.DSN("", "azure_credential=azure_cli") // user derived: the member's UPN
	asGroup := env.DSN(group.Name, "azure_credential=azure_cli")
	spAsSelf := env.DSN(sp.Name, "azure_credential=client_secret", "azure_client_id="+sp.AppID, "azure_tenant_id="+tn.ID())
	groupSignIn(t, env, member)
	t.Setenv("AZURE_CLIENT_SECRET", sp.ClientSecret)

	t.Run("sync off: members log in only through the group", func(t *testing.T) {
		sync() // does nothing while pgaadauth.enable_group_sync is off
		env.Front.Reset()
		le := groupLoginError(t, env, asSelf, member.Name)
		if !strings.Contains(le.Hint, "pgaadauth_create_principal('"+member.Name+"', false, false)") {
			t.Errorf("hint %q", le.Hint)
		}
		if got := e67Who(t, e67Open(t, asGroup)); got != group.Name {
			t.Errorf("current_user = %q, want the group role %q", got, group.Name)
		}
	})

	t.Run("sync on: members log in as themselves", func(t *testing.T) {
		if err := pgfront.SetGroupSync(ctx, env.AdminDB, true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pgfront.SetGroupSync(context.Background(), env.AdminDB, false) }) // the cluster is shared
		sync()
		sync() // idempotent
		env.Front.Reset()
		if got := e67Who(t, e67Open(t, asSelf)); got != member.Name {
			t.Errorf("current_user = %q, want the member's own role %q", got, member.Name)
		}
		e67CheckFront(t, env, member, member.Name)
		env.Front.Reset()
		if got := e67Who(t, e67Open(t, spAsSelf, driver.WithClientOptions(env.ClientOptions()))); got != sp.Name {
			t.Errorf("current_user = %q, want the service principal's own role %q", got, sp.Name)
		}
		// The synced roles are members of the group role, and typed like their principals.
		for _, p := range []struct{ role, typ string }{{member.Name, "user"}, {sp.Name, "service"}} {
			var isMember bool
			var typ string
			err := env.AdminDB.QueryRowContext(ctx, `select pg_has_role($1, $2, 'MEMBER'),
				(select principalType from pgaadauth_list_principals(false) where rolname = $1)`, p.role, group.Name).Scan(&isMember, &typ)
			if err != nil || !isMember || typ != p.typ {
				t.Errorf("role %q: member of %q = %v, principal type %q, err %v; want true, %q", p.role, group.Name, isMember, typ, err, p.typ)
			}
		}
		// And the group's role still takes the member's token.
		if got := e67Who(t, e67Open(t, asGroup)); got != group.Name {
			t.Errorf("current_user = %q, want the group role %q", got, group.Name)
		}
	})

	t.Run("ALTER ROLE NOLOGIN stops group logins", func(t *testing.T) {
		if _, err := env.AdminDB.ExecContext(ctx, "ALTER ROLE "+pq.QuoteIdentifier(group.Name)+" NOLOGIN"); err != nil {
			t.Fatal(err)
		}
		env.Front.Reset()
		err := e67Open(t, asGroup).PingContext(ctx)
		var le *driver.LoginError
		var pe *pq.Error
		if !errors.As(err, &le) || !errors.As(err, &pe) {
			t.Fatalf("group login with NOLOGIN: %v; want a LoginError wrapping *pq.Error", err)
		}
		if want := `role "` + group.Name + `" is not permitted to log in`; pe.Code != "28000" || pe.Message != want {
			t.Errorf("server said %s %q, want 28000 %q", pe.Code, pe.Message, want)
		}
		if !strings.Contains(le.Hint, "NOLOGIN") || !strings.Contains(le.Hint, "own role name") {
			t.Errorf("hint %q does not explain NOLOGIN and own-role logins", le.Hint)
		}
		// The members' own logins go on.
		if got := e67Who(t, e67Open(t, asSelf)); got != member.Name {
			t.Errorf("current_user = %q, want %q", got, member.Name)
		}
	})
}
