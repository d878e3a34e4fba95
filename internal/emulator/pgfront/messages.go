package pgfront

import "fmt"

// SQLSTATE codes the front answers failed logins with. Tests (and the driver's retry
// logic, which retries class 28) match on them.
const (
	// CodeInvalidAuthorization is invalid_authorization_specification: the token
	// itself is unacceptable (format, signature, audience, issuer, tenant, validity
	// window, principal type, MFA) or the connection is not encrypted. Azure's token
	// refusals carry it (docs/azure-behavior.md: asyncpg raises
	// InvalidAuthorizationSpecificationError for them).
	CodeInvalidAuthorization = "28000"
	// CodeInvalidPassword is invalid_password: the token is fine but no role is
	// mapped to its oid, or the startup user names another principal's role or a
	// group's role the oid is not a member of.
	CodeInvalidPassword = "28P01"
	// CodeProtocolViolation answers malformed startup traffic.
	CodeProtocolViolation = "08P01"
	// CodeInternalError answers failures of the emulator itself (registry lookup,
	// backend unreachable). Never a client's fault.
	CodeInternalError = "XX000"
)

// Messages the front sends in FATAL ErrorResponses. They are exported so that tests of
// the driver can match the server side exactly.
//
// Each one is Azure Database for PostgreSQL Flexible Server's own text, as quoted from
// server logs and Microsoft's documentation (docs/azure-behavior.md names the
// public source of each). Where Azure's text for a check is not known — signature,
// issuer, tenant, not-yet-valid, a user token for a service role, a non-MFA token for an
// MFA role — the front sends Azure's generic MsgValidationFailed and records the
// emulator's own diagnosis in Login.Reason, which is emulator wording and never sent.
const (
	// MsgTokenExpired: exp is not after now. Azure's text (darold/ora2pg#1851).
	MsgTokenExpired = "The access token has expired. Please acquire a new token and retry."
	// MsgInvalidFormat: the password is not a JWT, or a required claim is missing or
	// has the wrong type. Azure's text (Azure-Samples/rag-postgres-openai-python#161).
	MsgInvalidFormat = "The access token has invalid format. Please ensure the token is passed exactly as returned by the authentication endpoint and retry."
	// MsgValidationFailed: Azure's generic refusal of a token whose validation failed
	// (cyrilgdn/terraform-provider-postgresql#60; note: no final period). The front
	// sends it for every check whose own Azure text is unknown; see Login.Reason.
	MsgValidationFailed = "An error occurred while validating the access token. Please acquire a new token and retry"
	// MsgNoUser: the startup packet carried no user (PostgreSQL's own message).
	MsgNoUser = "no PostgreSQL user name specified in startup packet"
)

// Reasons the front records in Login.Reason for refusals whose message does not say
// which check failed (MsgValidationFailed). They are emulator wording: Azure does not
// send them, tests use them to tell the checks apart.
const (
	ReasonSignature   = "signature"                     // not RS256, no or unknown kid, bad signature
	ReasonIssuer      = "issuer"                        // iss is not Config.Issuer
	ReasonTenant      = "tenant"                        // tid is not Config.TenantID
	ReasonNotYetValid = "not yet valid"                 // nbf is after now
	ReasonUserToken   = "user token for a service role" // idtyp user, role type service
	ReasonMFA         = "no MFA"                        // the role was created with isMfa, the token's amr lacks "mfa"
)

// MsgInvalidAudience is Azure's refusal of a token whose aud is not the server's
// resource; it names the server's own resource (Config.Resource), e.g.
// "https://ossrdbms-aad.database.windows.net" in the public cloud. (Sources:
// microsoft/azuredatastudio-postgresql#505, Azure/azure-sdk-for-java#42310.)
func MsgInvalidAudience(resource string) string {
	return fmt.Sprintf("The access token does not have a valid audience claim. Please acquire a new token for the resource %q.", resource)
}

// MsgServicePrincipalForUserRole is Azure's refusal of a service principal's (app)
// token for a role created as a user: the newer form of the message (Azure/ARO-HCP#348;
// the 2024 form was "Service Principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER
// tokens for role[<role>]").
func MsgServicePrincipalForUserRole(role string) string {
	return `Service principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role "` + role + `"`
}

// MsgManagedIdentityForUserRole is Azure's refusal of a managed identity's token for a
// role created as a user (or an administrator created as a user). (Microsoft Learn's
// Java/Spring Container Apps module; the older form began "Azure AD user token for
// role[<role>]".)
func MsgManagedIdentityForUserRole(role string) string {
	return `Microsoft Entra user token for role "` + role + `" is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token.`
}

// MsgPasswordFailed is PostgreSQL's message for a failed password login, which Azure
// also sends when no role is mapped to the token's oid or the startup user names a
// role mapped to another principal (including a group the oid is not a member of).
func MsgPasswordFailed(user string) string {
	return `password authentication failed for user "` + user + `"`
}

// MsgNoEncryption is PostgreSQL's pg_hba rejection of an unencrypted connection, which
// Azure sends for cleartext logins while require_secure_transport is on.
func MsgNoEncryption(host, user, database string) string {
	return fmt.Sprintf(`no pg_hba.conf entry for host "%s", user "%s", database "%s", no encryption`, host, user, database)
}
