package emulator_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
)

// TestAdminSQLAsEntraAdministrator: docs/admin.sql, run with psql through
// the front by an Entra administrator that is neither superuser nor a
// member of the role (as on Azure), creates a role that logs in and
// creates its tables in its own schema; the statements the README used to
// give fail for that administrator.
func TestAdminSQLAsEntraAdministrator(t *testing.T) {
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := env.EntraAdmin(ctx, fmt.Sprintf("dba-%d@contoso.com", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	mi, err := env.Tenant.AddUserAssignedIdentity(fmt.Sprintf("id-admin-sql-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Register(ctx, mi); err != nil {
		t.Fatal(err)
	}

	// The old README statements, with the role already created.
	if _, err := env.PSQL(ctx, admin, "-c", fmt.Sprintf("select * from pgaadauth_create_principal('%s', false, false)", mi.Name)); err != nil {
		t.Fatal(err)
	}
	_, err = env.PSQL(ctx, admin, "-c", fmt.Sprintf(`CREATE SCHEMA "%[1]s" AUTHORIZATION "%[1]s"`, mi.Name))
	if want := fmt.Sprintf("must be member of role %q", mi.Name); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("CREATE SCHEMA ... AUTHORIZATION as the Entra administrator: %v; want %q", err, want)
	}

	file, err := emulator.AdminSQLFile()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := env.PSQL(ctx, admin, "-v", "role="+mi.Name, "-v", "db=postgres", "-f", file); err != nil {
		t.Fatal(err)
	} else if strings.Contains(string(out), "WARNING") {
		t.Errorf("docs/admin.sql warned:\n%s", out)
	}

	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: env.ClientOptions(), ID: azidentity.ClientID(mi.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := driver.NewConnector(env.DSN(mi.Name), driver.WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "create table notes (id int)"); err != nil {
		t.Fatalf("create table as the role: %v", err)
	}
	var schema, owner string
	if err := env.AdminDB.QueryRowContext(ctx, `select schemaname, tableowner from pg_tables where tablename = 'notes' and tableowner = $1`, mi.Name).Scan(&schema, &owner); err != nil || schema != mi.Name {
		t.Errorf("notes: schema %q owner %q, %v; want the role's schema and the role", schema, owner, err)
	}
	var member bool
	if err := env.AdminDB.QueryRowContext(ctx, "select pg_has_role($1, $2, 'member')", admin.Name, mi.Name).Scan(&member); err != nil || member {
		t.Errorf("the administrator is a member of the role: %t, %v", member, err)
	}
}
