package pgfront_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/pgentra/pgentra/internal/emulator/pgfront"
)

// TestGroupSync: pgaadauth_sync_roles_for_group_members() does nothing while
// pgaadauth.enable_group_sync is off; with it on, each direct member of a
// group role that the directory knows gets a login role of its own, of its
// principal type and mapped to its oid, granted the group role; it is for
// Entra administrators only, and running it again changes nothing.
func TestGroupSync(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now()
	userOID, userUPN := newOID(t), unique(t, "sync-user")+"@contoso.com"
	miOID, miName := newOID(t), unique(t, "id-sync")
	ghostOID := newOID(t) // a member the server's directory does not know
	group, groupOID := unique(t, "sync-group"), newOID(t)
	for _, d := range []pgfront.DirectoryEntry{
		{Name: userUPN, ObjectID: userOID, Type: pgfront.TypeUser},
		{Name: miName, ObjectID: miOID, Type: pgfront.TypeService, ManagedIdentity: true},
		{Name: group, ObjectID: groupOID, Type: pgfront.TypeGroup, Members: []string{userOID, miOID, ghostOID}},
	} {
		if err := pgfront.AddDirectoryEntry(ctx, e.admin, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.sqlText(`SELECT * FROM pgaadauth_create_principal($1, false, false)`, group); err != nil {
		t.Fatal(err)
	}
	sync := func(db interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}) error {
		_, err := db.ExecContext(ctx, `select * from pgaadauth_sync_roles_for_group_members();`)
		return err
	}
	roleOf := func(role string) (typ string, inGroup bool) {
		t.Helper()
		err := e.admin.QueryRowContext(ctx, `SELECT principalType, pg_has_role(rolname, $2, 'MEMBER')
			FROM pgaadauth_list_principals(false) WHERE rolname = $1`, role, group).Scan(&typ, &inGroup)
		if errors.Is(err, sql.ErrNoRows) {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		return typ, inGroup
	}

	if err := pgfront.SetGroupSync(ctx, e.admin, false); err != nil {
		t.Fatal(err)
	}
	if err := sync(e.admin); err != nil {
		t.Fatal(err)
	}
	if typ, _ := roleOf(userUPN); typ != "" {
		t.Fatalf("with group sync off, the member got a role of type %q", typ)
	}

	if err := pgfront.SetGroupSync(ctx, e.admin, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pgfront.SetGroupSync(context.Background(), e.admin, false) }) // shared cluster

	// Not for a role that is not an Entra administrator.
	plain := unique(t, "plain")
	if _, err := e.admin.ExecContext(ctx, `CREATE ROLE `+pq.QuoteIdentifier(plain)+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	conn, err := e.admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `SET SESSION AUTHORIZATION `+pq.QuoteIdentifier(plain)); err != nil {
		t.Fatal(err)
	}
	err = sync(conn)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("sync as a plain role: %v, want permission denied (42501)", err)
	}
	_, _ = conn.ExecContext(ctx, `RESET SESSION AUTHORIZATION`)
	_ = conn.Close()

	for range 2 { // the second run changes nothing
		if err := sync(e.admin); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ role, typ string }{{userUPN, pgfront.TypeUser}, {miName, pgfront.TypeService}} {
		if typ, in := roleOf(tc.role); typ != tc.typ || !in {
			t.Errorf("synced role %q: type %q, member of the group %v; want %q, true", tc.role, typ, in, tc.typ)
		}
	}
	var n int
	if err := e.admin.QueryRowContext(ctx, `SELECT count(*) FROM pgaadauth_list_principals(false) WHERE objectId = $1`, ghostOID).Scan(&n); err != nil || n != 0 {
		t.Errorf("the member unknown to the directory got %d roles (%v), want 0", n, err)
	}

	// The members log in as themselves through the front.
	db, err := e.connect(e.dsn(userUPN, e.token(userClaims(userOID, userUPN, now)), ""))
	if err != nil {
		t.Fatalf("member's own login after sync: %v", err)
	}
	if got := currentUser(t, db); got != userUPN {
		t.Errorf("current_user = %q, want %q", got, userUPN)
	}
	db, err = e.connect(e.dsn(miName, e.token(appClaims(miOID, now)), ""))
	if err != nil {
		t.Fatalf("managed identity's own login after sync: %v", err)
	}
	if got := currentUser(t, db); got != miName {
		t.Errorf("current_user = %q, want %q", got, miName)
	}
}
