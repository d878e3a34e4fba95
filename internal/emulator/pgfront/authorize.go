package pgfront

// authorize decides, after the token validated, whether its bearer may log in as
// user, given the registry's mapping of that role (found is false when user is not
// an Entra role):
//
//   - a role mapped to the token's oid accepts it when the principal types agree
//     (a user token for a user role, an app token for a service role), else
//     refuses with MsgTypeMismatch;
//   - a group role accepts the token of any direct member, user or application
//     (Flexible Server lets service principals and managed identities log in
//     through groups too); nested groups are not followed;
//   - anything else — no such Entra role, a role mapped to another principal, a
//     group the oid is not a member of — is PostgreSQL's failed password, as on
//     Azure.
func authorize(user string, m roleMapping, found bool, id identity) *loginError {
	switch {
	case !found:
	case m.kind == TypeGroup:
		if m.member {
			return nil
		}
	case m.ownOID:
		if m.kind != id.kind {
			return refuse(CodeInvalidAuthorization, MsgTypeMismatch)
		}
		return nil
	}
	return refuse(CodeInvalidPassword, MsgPasswordFailed(user))
}
