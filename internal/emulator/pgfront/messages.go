package pgfront

import "fmt"

// SQLSTATE codes the front answers failed logins with. Tests (and the driver's retry
// logic, which retries class 28) match on them.
const (
	// CodeInvalidAuthorization is invalid_authorization_specification: the token
	// itself is unacceptable (format, signature, audience, issuer, tenant, validity
	// window, principal type) or the connection is not encrypted.
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

// Messages the front sends in FATAL ErrorResponses. Export them so tests of the driver
// can match the server side exactly.
//
// Azure's own wording could not be confirmed from offline sources. MsgTokenExpired,
// MsgInvalidAudience and MsgInvalidFormat use the phrases the design document says
// Azure sends ("The access token has expired", "...does not have a valid audience
// claim...", "...has invalid format..."); the other texts are this emulator's own,
// written in the same style. Treat them as the emulator's contract, not Azure's.
const (
	// MsgTokenExpired: exp is not after now.
	MsgTokenExpired = "The access token has expired. Acquire a new token and retry."
	// MsgInvalidAudience: aud is not one of Config.Audiences (e.g. a token for
	// https://management.azure.com/ sent to the database).
	MsgInvalidAudience = "The access token does not have a valid audience claim. Please ensure that the token is obtained for the correct resource."
	// MsgInvalidFormat: the password is not a JWT, or a required claim is missing or
	// has the wrong type.
	MsgInvalidFormat = "The access token has invalid format."
	// MsgInvalidSignature: not RS256, unknown kid, or the signature does not verify.
	// (Emulator wording.)
	MsgInvalidSignature = "The access token signature could not be validated."
	// MsgInvalidIssuer: iss is not Config.Issuer. (Emulator wording.)
	MsgInvalidIssuer = "The access token has an invalid issuer."
	// MsgInvalidTenant: tid is not Config.TenantID. (Emulator wording.)
	MsgInvalidTenant = "The access token was issued for a different tenant."
	// MsgNotYetValid: nbf is after now. (Emulator wording.)
	MsgNotYetValid = "The access token is not yet valid. Check the clock and retry."
	// MsgTypeMismatch: the token's idtyp (user/app) does not match the type the role
	// was registered with (user/service).
	MsgTypeMismatch = "Token type does not match the role type."
	// MsgNoUser: the startup packet carried no user (PostgreSQL's own message).
	MsgNoUser = "no PostgreSQL user name specified in startup packet"
)

// MsgPasswordFailed is PostgreSQL's message for a failed password login, which Azure
// also sends when no role is mapped to the token's oid or the startup user names a
// role mapped to another principal (including a group the oid is not a member of).
func MsgPasswordFailed(user string) string {
	return fmt.Sprintf("password authentication failed for user %q", user)
}

// MsgNoEncryption is PostgreSQL's pg_hba rejection of an unencrypted connection, which
// Azure sends for cleartext logins while require_secure_transport is on.
func MsgNoEncryption(host, user, database string) string {
	return fmt.Sprintf("no pg_hba.conf entry for host %q, user %q, database %q, no encryption", host, user, database)
}
