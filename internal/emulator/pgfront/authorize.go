package pgfront

// authorize decides, after the token validated, whether its bearer may log in as
// user, given the registry's mapping of that role (found is false when user is not
// an Entra role):
//
//   - a role mapped to the token's oid accepts it when the principal types agree
//     (a user token for a user role, an app token for a service role); an app
//     token for a user role gets Azure's AAD_AUTH_TOKENTYPE_APP_USER refusals
//     (MsgManagedIdentityForUserRole for a managed identity, else
//     MsgServicePrincipalForUserRole), a user token for a service role Azure's
//     generic MsgValidationFailed (its own Azure text is unknown);
//   - a role created with isMfa refuses a token whose amr lacks "mfa", with
//     MsgValidationFailed (Azure's text for it is unknown);
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
			return checkMFA(m, id)
		}
	case m.ownOID:
		switch {
		case m.kind == TypeUser && id.kind == TypeService && m.tokenMI:
			return refuse(CodeInvalidAuthorization, MsgManagedIdentityForUserRole(user))
		case m.kind == TypeUser && id.kind == TypeService:
			return refuse(CodeInvalidAuthorization, MsgServicePrincipalForUserRole(user))
		case m.kind != id.kind:
			return refuseGeneric(ReasonUserToken)
		}
		return checkMFA(m, id)
	}
	return refuse(CodeInvalidPassword, MsgPasswordFailed(user))
}

// checkMFA refuses a token without MFA for a role created with isMfa.
func checkMFA(m roleMapping, id identity) *loginError {
	if m.mfa && !id.mfa {
		return refuseGeneric(ReasonMFA)
	}
	return nil
}
