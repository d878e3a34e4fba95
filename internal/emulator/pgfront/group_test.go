package pgfront_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pgentra/pgentra/internal/emulator/pgfront"
)

// groupFixture is two group roles on one front: readers, created by name from
// the directory, and analysts, created with pgaadauth_create_principal_with_oid.
type groupFixture struct {
	e                         *env
	readers, analysts         string // role names
	readersOID, analystsOID   string
	userOID, userUPN, appOID  string // members of readers
	strangerOID, strangerUPN  string // a user in no group
	readersEntry, analystsDir pgfront.DirectoryEntry
}

func newGroupFixture(t *testing.T) *groupFixture {
	t.Helper()
	e := newEnv(t, nil)
	f := &groupFixture{e: e,
		readers: unique(t, "pg-readers"), readersOID: newOID(t),
		analysts: unique(t, "analysts"), analystsOID: newOID(t),
		userOID: newOID(t), userUPN: unique(t, "carol") + "@contoso.com", appOID: newOID(t),
		strangerOID: newOID(t), strangerUPN: unique(t, "mallory") + "@contoso.com",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Member oids in upper case: the directory, like Entra, ignores the case of GUIDs.
	f.readersEntry = pgfront.DirectoryEntry{Name: f.readers, ObjectID: f.readersOID, Type: pgfront.TypeGroup,
		Members: []string{strings.ToUpper(f.userOID), f.appOID, f.appOID}}
	f.analystsDir = pgfront.DirectoryEntry{Name: unique(t, "analysts-dir"), ObjectID: f.analystsOID, Type: pgfront.TypeGroup,
		Members: []string{f.appOID}}
	// Through InstallAADAuth (again: it is idempotent) and AddDirectoryEntry.
	if err := pgfront.InstallAADAuth(ctx, e.admin, tenant, []pgfront.DirectoryEntry{f.readersEntry}); err != nil {
		t.Fatal(err)
	}
	if err := pgfront.AddDirectoryEntry(ctx, e.admin, f.analystsDir); err != nil {
		t.Fatal(err)
	}
	got, err := e.sqlText(`SELECT * FROM pgaadauth_create_principal($1, false, false)`, f.readers)
	if err != nil || got != `Created role for "`+f.readers+`"` {
		t.Fatalf("pgaadauth_create_principal(group) = %q, %v", got, err)
	}
	e.principal(f.analysts, f.analystsOID, pgfront.TypeGroup, false)
	return f
}

// login tries role with a token for claims and returns the session's
// current_user, or the login error.
func (f *groupFixture) login(t *testing.T, role string, claims jwt.MapClaims) (string, error) {
	t.Helper()
	f.e.front.Reset()
	tok := f.e.token(claims)
	db, err := f.e.connect(f.e.dsn(role, tok, ""))
	if got := f.e.front.Passwords(); !slices.Equal(got, []string{tok}) {
		t.Errorf("front received %d passwords, want exactly the member's token", len(got))
	}
	if err != nil {
		return "", err
	}
	return currentUser(t, db), nil
}

// TestGroupLogin: a group role accepts the own tokens of the group's direct
// members, user or application, and nobody else's.
func TestGroupLogin(t *testing.T) {
	f := newGroupFixture(t)
	now := time.Now()
	user := userClaims(f.userOID, f.userUPN, now)
	app := appClaims(f.appOID, now)
	stranger := userClaims(f.strangerOID, f.strangerUPN, now)

	for _, tc := range []struct {
		name, role string
		claims     jwt.MapClaims
	}{
		{"member user, group created by name", f.readers, user},
		{"member service principal, group created by name", f.readers, app},
		{"member service principal, group created with oid", f.analysts, app},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.login(t, tc.role, tc.claims)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.role {
				t.Fatalf("current_user = %q, want the group role %q", got, tc.role)
			}
			want := pgfront.Login{User: tc.role, Database: "postgres", TLS: true, ServerName: "localhost", OK: true}
			if l := f.e.front.Logins(); len(l) != 1 || l[0] != want {
				t.Fatalf("logins = %+v, want [%+v]", l, want)
			}
		})
	}

	for _, tc := range []struct {
		name, role string
		claims     jwt.MapClaims
	}{
		{"non-member user", f.readers, stranger},
		{"non-member service principal", f.readers, appClaims(f.strangerOID, now)},
		{"member of another group", f.analysts, user},
		// Membership gives access to the group's role only: the member's own
		// name needs a role of its own.
		{"member with its own name and no own role", f.userUPN, user},
		// Entra never issues a token for a group; one carrying the group's
		// oid must not pass as "the group itself".
		{"token with the group's own oid", f.readers, set(app, "oid", f.readersOID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.login(t, tc.role, tc.claims)
			if err == nil {
				t.Fatal("login succeeded")
			}
			pqErr := asPQ(t, err)
			if want := pgfront.MsgPasswordFailed(tc.role); pqErr.Code != pgfront.CodeInvalidPassword || pqErr.Message != want || pqErr.Severity != "FATAL" {
				t.Fatalf("got %s %s %q, want FATAL %s %q", pqErr.Severity, pqErr.Code, pqErr.Message, pgfront.CodeInvalidPassword, want)
			}
		})
	}
}

// TestGroupMembershipUpdate: adding a group's directory entry again replaces
// its members, effective from the next login, and is idempotent.
func TestGroupMembershipUpdate(t *testing.T) {
	f := newGroupFixture(t)
	now := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	update := func(members ...string) {
		t.Helper()
		entry := f.readersEntry
		entry.Members = members
		for range 2 {
			if err := pgfront.AddDirectoryEntry(ctx, f.e.admin, entry); err != nil {
				t.Fatal(err)
			}
		}
	}
	update(f.strangerOID)
	if got, err := f.login(t, f.readers, userClaims(f.strangerOID, f.strangerUPN, now)); err != nil || got != f.readers {
		t.Fatalf("new member: current_user %q, %v", got, err)
	}
	if _, err := f.login(t, f.readers, userClaims(f.userOID, f.userUPN, now)); err == nil || asPQ(t, err).Code != pgfront.CodeInvalidPassword {
		t.Fatalf("removed member: %v, want 28P01", err)
	}
	update()
	if _, err := f.login(t, f.readers, userClaims(f.strangerOID, f.strangerUPN, now)); err == nil || asPQ(t, err).Code != pgfront.CodeInvalidPassword {
		t.Fatalf("member of an emptied group: %v, want 28P01", err)
	}
}

// TestGroupListedAsGroup: pgaadauth_list_principals reports group roles with
// principalType 'group' and the group's object ID.
func TestGroupListedAsGroup(t *testing.T) {
	f := newGroupFixture(t)
	rows, err := f.e.admin.Query(`SELECT rolname, principaltype, objectid, tenantid FROM pgaadauth_list_principals(false)
		WHERE rolname = ANY(ARRAY[$1, $2]::name[]) ORDER BY objectid = $3 DESC`, f.readers, f.analysts, f.readersOID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var role, typ, oid, tid string
		if err := rows.Scan(&role, &typ, &oid, &tid); err != nil {
			t.Fatal(err)
		}
		got = append(got, role+" "+typ+" "+oid+" "+tid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		f.readers + " group " + f.readersOID + " " + tenant,
		f.analysts + " group " + f.analystsOID + " " + tenant,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pgaadauth_list_principals = %q, want %q", got, want)
	}
}

// TestGroupDirectoryValidation: members belong to group entries only, and
// are checked before any SQL runs (so nothing is written).
func TestGroupDirectoryValidation(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name, oid := unique(t, "bad"), newOID(t)
	for what, entry := range map[string]pgfront.DirectoryEntry{
		"user with members":    {Name: name, ObjectID: oid, Type: pgfront.TypeUser, Members: []string{newOID(t)}},
		"service with members": {Name: name, ObjectID: oid, Type: pgfront.TypeService, Members: []string{newOID(t)}},
		"empty member":         {Name: name, ObjectID: oid, Type: pgfront.TypeGroup, Members: []string{""}},
		"group in itself":      {Name: name, ObjectID: oid, Type: pgfront.TypeGroup, Members: []string{strings.ToUpper(oid)}},
	} {
		if err := pgfront.AddDirectoryEntry(ctx, e.admin, entry); err == nil {
			t.Errorf("%s: AddDirectoryEntry accepted it", what)
		}
		if err := pgfront.InstallAADAuth(ctx, e.admin, tenant, []pgfront.DirectoryEntry{entry}); err == nil {
			t.Errorf("%s: InstallAADAuth accepted it", what)
		}
	}
	if n, err := e.sqlText(`SELECT count(*)::text FROM pgaadauth.directory WHERE name = $1`, name); err != nil || n != "0" {
		t.Fatalf("invalid entries were written: %s rows, %v", n, err)
	}
}
