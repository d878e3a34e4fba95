package pgfront

import "testing"

// TestAuthorize is the decision table of authorize, without a database.
func TestAuthorize(t *testing.T) {
	user := identity{oid: "u", kind: TypeUser}
	app := identity{oid: "a", kind: TypeService}
	const role = "r"
	for _, tc := range []struct {
		name  string
		m     roleMapping
		found bool
		id    identity
		code  string // "" = accepted
	}{
		{"own user role", roleMapping{kind: TypeUser, ownOID: true}, true, user, ""},
		{"own service role", roleMapping{kind: TypeService, ownOID: true}, true, app, ""},
		{"own role, wrong type", roleMapping{kind: TypeUser, ownOID: true}, true, app, CodeInvalidAuthorization},
		{"another principal's role", roleMapping{kind: TypeUser}, true, user, CodeInvalidPassword},
		{"no such Entra role", roleMapping{}, false, user, CodeInvalidPassword},
		{"group, member user", roleMapping{kind: TypeGroup, member: true}, true, user, ""},
		{"group, member app", roleMapping{kind: TypeGroup, member: true}, true, app, ""},
		{"group, non-member", roleMapping{kind: TypeGroup}, true, user, CodeInvalidPassword},
		{"group, token with the group's oid", roleMapping{kind: TypeGroup, ownOID: true}, true, app, CodeInvalidPassword},
	} {
		got := authorize(role, tc.m, tc.found, tc.id)
		switch {
		case tc.code == "" && got != nil:
			t.Errorf("%s: refused with %v", tc.name, got)
		case tc.code != "" && got == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.code != "" && got.code != tc.code:
			t.Errorf("%s: refused with %v, want code %s", tc.name, got, tc.code)
		case tc.code == CodeInvalidPassword && got.msg != MsgPasswordFailed(role):
			t.Errorf("%s: message %q", tc.name, got.msg)
		}
	}
}
