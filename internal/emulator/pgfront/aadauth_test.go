package pgfront_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgentra/pgentra/internal/emulator/pgfront"
)

func TestCreatePrincipal(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name, oid := unique(t, "erin")+"@contoso.com", newOID(t)
	if err := pgfront.AddDirectoryEntry(ctx, e.admin, pgfront.DirectoryEntry{Name: name, ObjectID: oid, Type: pgfront.TypeUser}); err != nil {
		t.Fatal(err)
	}
	got, err := e.sqlText(`SELECT * FROM pgaadauth_create_principal($1, false, true)`, name)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`Created role for "%s"`, name); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The new role logs in through the front with a token carrying the directory oid.
	db, err := e.connect(e.dsn(name, e.token(userClaims(oid, name, time.Now())), ""))
	if err != nil {
		t.Fatal(err)
	}
	if u := currentUser(t, db); u != name {
		t.Fatalf("current_user = %q", u)
	}

	missing := unique(t, "nobody") + "@contoso.com"
	_, err = e.sqlText(`SELECT pg_catalog.pgaadauth_create_principal($1, false, false)`, missing)
	want := fmt.Sprintf("Could not validate AAD user %s because its name is not found in the tenant.", missing)
	if pqErr := asPQ(t, err); pqErr.Message != want {
		t.Fatalf("got %q, want %q", pqErr.Message, want)
	}
	if _, err := e.sqlText(`SELECT pgaadauth_create_principal($1, false, false)`, name); err == nil {
		t.Fatal("creating the same principal twice succeeded")
	}
	if _, err := e.sqlText(`SELECT pgaadauth_create_principal_with_oid($1, $2, 'robot', false, false)`, unique(t, "r"), newOID(t)); err == nil {
		t.Fatal("objectType robot was accepted")
	}
}

func TestAdminPrincipalAndList(t *testing.T) {
	e := newEnv(t, nil)
	adminName, adminOID := unique(t, "admin"), newOID(t)
	svcName, svcOID := unique(t, "svc"), newOID(t)
	e.principal(adminName, adminOID, pgfront.TypeUser, true)
	e.principal(svcName, svcOID, pgfront.TypeService, false)

	var createRole, createDB, member bool
	err := e.admin.QueryRow(`SELECT rolcreaterole, rolcreatedb, pg_has_role(rolname, 'azure_pg_admin', 'MEMBER')
		FROM pg_roles WHERE rolname = $1`, adminName).Scan(&createRole, &createDB, &member)
	if err != nil || !createRole || !createDB || !member {
		t.Fatalf("admin role: createrole=%v createdb=%v member=%v err=%v", createRole, createDB, member, err)
	}
	if err := e.admin.QueryRow(`SELECT rolcreaterole OR pg_has_role(rolname, 'azure_pg_admin', 'MEMBER')
		FROM pg_roles WHERE rolname = $1`, svcName).Scan(&member); err != nil || member {
		t.Fatalf("non-admin role has admin rights (%v, %v)", member, err)
	}

	type row struct {
		rolname, typ, oid, tenant string
		mfa, admin                int
	}
	list := func(adminOnly bool) map[string]row {
		rows, err := e.admin.Query(`SELECT rolname, principaltype, objectid, tenantid, ismfa, isadmin FROM pgaadauth_list_principals($1)`, adminOnly)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]row{}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.rolname, &r.typ, &r.oid, &r.tenant, &r.mfa, &r.admin); err != nil {
				t.Fatal(err)
			}
			out[r.rolname] = r
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := list(false)
	if got, want := all[adminName], (row{adminName, "user", adminOID, tenant, 0, 1}); got != want {
		t.Fatalf("list(false)[admin] = %+v, want %+v", got, want)
	}
	if got, want := all[svcName], (row{svcName, "service", svcOID, tenant, 0, 0}); got != want {
		t.Fatalf("list(false)[svc] = %+v, want %+v", got, want)
	}
	admins := list(true)
	if _, ok := admins[adminName]; !ok {
		t.Fatal("list(true) misses the admin")
	}
	if _, ok := admins[svcName]; ok {
		t.Fatal("list(true) lists a non-admin")
	}

	// The Entra admin, logged in through the front, can create principals itself.
	adminDB, err := e.connect(e.dsn(adminName, e.token(userClaims(adminOID, adminName, time.Now())), ""))
	if err != nil {
		t.Fatal(err)
	}
	child := unique(t, "child")
	var got string
	if err := adminDB.QueryRow(`SELECT pgaadauth_create_principal_with_oid($1, $2, 'service', false, false)`, child, newOID(t)).Scan(&got); err != nil {
		t.Fatalf("Entra admin could not create a principal: %v", err)
	}
	// A plain principal cannot.
	svcDB, err := e.connect(e.dsn(svcName, e.token(appClaims(svcOID, time.Now())), ""))
	if err != nil {
		t.Fatal(err)
	}
	err = svcDB.QueryRow(`SELECT pgaadauth_create_principal_with_oid($1, $2, 'service', false, false)`, unique(t, "x"), newOID(t)).Scan(&got)
	if pqErr := asPQ(t, err); pqErr.Code != "42501" {
		t.Fatalf("non-admin create: got %s %q, want 42501", pqErr.Code, pqErr.Message)
	}
}

func TestInstallValidation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tenant string
		dir    []pgfront.DirectoryEntry
	}{
		{"no tenant", "", nil},
		{"bad type", tenant, []pgfront.DirectoryEntry{{Name: "a", ObjectID: "b", Type: "robot"}}},
		{"no oid", tenant, []pgfront.DirectoryEntry{{Name: "a", Type: pgfront.TypeUser}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Validation happens before any SQL, so no database is needed.
			if err := pgfront.InstallAADAuth(ctx, nil, tc.tenant, tc.dir); err == nil {
				t.Fatal("InstallAADAuth accepted invalid input")
			}
		})
	}
	if err := pgfront.AddDirectoryEntry(ctx, nil, pgfront.DirectoryEntry{Name: "a", ObjectID: "b", Type: "user"}); err == nil {
		t.Fatal("AddDirectoryEntry accepted a nil DB")
	}
}
