package driver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/token"
)

// LoginError is a failed login with the token pgentra supplied, with a hint
// that says what is most likely wrong. The server's error stays reachable:
// errors.As(err, new(*pq.Error)) works.
type LoginError struct {
	User      string // the role pgentra logged in as
	Derived   bool   // User was derived from the token, not given
	Principal string // the token's identity: oid, upn, appid (never the token)
	// Hint is the full explanation: the likely cause, how to check it and the
	// fix, with the SQL or commands to run. Error() gives only its first line
	// and a link to the troubleshooting page.
	Hint string
	Err  error

	summary string // the one-line hint Error() shows; "" → Hint
	anchor  anchor // the troubleshooting page's section; "" → none
}

// Error gives the role, the server's error, a one-line hint and a link to
// the troubleshooting page's section (never the token). The full hint is
// in Hint.
func (e *LoginError) Error() string {
	// The server's error without pq's "pq: ": the message says whose it is.
	return "pgentra: " + e.frame() + ": " + strings.TrimPrefix(errorText(e.Err), "pq: ") + hintLine(e.summary, e.Hint, e.anchor)
}

// frame says what failed: the login, or, once the server accepted the token
// (a database that does not exist), the connection.
func (e *LoginError) frame() string {
	if e.anchor == anchorNoDatabase {
		return fmt.Sprintf("connecting as %q (the token was accepted)", e.User)
	}
	return fmt.Sprintf("login as %q", e.User)
}

// setHint sets the full hint, its one-line summary and its section.
func (e *LoginError) setHint(h hint) { e.Hint, e.summary, e.anchor = h.full, h.summary, h.anchor }

// Unwrap returns the server's error.
func (e *LoginError) Unwrap() error { return e.Err }

// isAuthFailure reports a login refused by the server's authentication
// (SQLSTATE class 28): the case where a new token may help.
func isAuthFailure(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && codeClass(pe) == "28"
}

// codeClass is pe's SQLSTATE class ("28"), or "" when the code is too short
// to have one. pq's Code.Class slices the first two bytes and panics on a
// shorter code, which a server or pooler that breaks the protocol (an
// ErrorResponse without its SQLSTATE field) makes pq produce.
func codeClass(pe *pq.Error) string {
	if len(pe.Code) < 2 {
		return ""
	}
	return string(pe.Code.Class())
}

// hintInput is what loginHint knows about a failed login besides the error.
type hintInput struct {
	User  string // the role pgentra logged in as
	Given bool   // User came from the configuration, not from the token
	Scope string // the scope the token was requested for
	Token string // the access token sent (only its claims are read; never quoted)
	Port  uint16 // the server port dialed (the first host's)
	Host  string // the server's name (the first host's)
	// TokenRole is the role the token maps to when the token names no one
	// (the management-scope lookup's answer); "" when unknown.
	TokenRole string
	// TLS is set when pgentra verified the connection as verify-full
	// although its string asked for less.
	TLS tlsUpgrade
}

// Fixed parts of Azure's login refusals (docs/azure-behavior.md). Matching uses only these,
// anchored at the start or the end of the message, so that words inside a role name
// ("tenant_42_app", "audience-api") never decide a hint.
const (
	azExpired       = "The access token has expired."
	azAudience      = "The access token does not have a valid audience claim."
	azAudienceFor   = "Please acquire a new token for the resource \""
	azInvalidFormat = "The access token has invalid format."
	azValidation    = "An error occurred while validating the access token."
	azSPUserRole    = "Service principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role"
	azMIUserRole    = "is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token."
	azEntraUserTok  = "Microsoft Entra user token for role"
	azOldUserTok    = "Azure AD user token for role" // the older form
	pgNoHBA         = "no pg_hba.conf entry for "
	pgPasswordFail  = "password authentication failed for user \""
	bouncerPartial  = "client sent partial pkt in startup phase"
	bouncerPassword = "password too long"
)

// azureRoots names the roots Azure Database for PostgreSQL chains to (public
// regions; China regions and some read replicas still the older DigiCert root).
const azureRoots = "DigiCert Global Root G2, DigiCert Global Root CA and Microsoft RSA Root CA 2017"

// troubleshootingURL is the troubleshooting page; an anchor names its section.
const troubleshootingURL = "https://github.com/pgentra/pgentra/blob/main/docs/troubleshooting.md"

// anchor is a section of the troubleshooting page (its heading's slug). The
// page's headings are a contract: an anchor used here must be one of them.
type anchor string

// The troubleshooting page's sections that errors link to.
const (
	anchorNoCredential    anchor = "no-credential-available"
	anchorEndpoint        anchor = "identity-endpoint-unreachable"
	anchorNotAssigned     anchor = "managed-identity-not-assigned"
	anchorDeveloperCLI    anchor = "developer-cli-not-signed-in"
	anchorTokenRequest    anchor = "token-request-failed"
	anchorNoRole          anchor = "password-authentication-failed"
	anchorWrongUser       anchor = "user-is-not-the-tokens-role"
	anchorNoUser          anchor = "no-user-name"
	anchorExpired         anchor = "token-expired"
	anchorExpiredInFlight anchor = "token-expired-in-flight"
	anchorClockSkew       anchor = "clock-skew"
	anchorAudience        anchor = "wrong-audience"
	anchorInvalidFormat   anchor = "invalid-token-format"
	anchorValidation      anchor = "token-validation-error"
	anchorTokenType       anchor = "token-type-does-not-match-role"
	anchorNoDatabase      anchor = "database-does-not-exist"
	anchorCertificate     anchor = "certificate-verification-failed"
	anchorPlainText       anchor = "plain-text-refused"
	anchorPgBouncer       anchor = "pgbouncer"
)

// url is the link to the section.
func (a anchor) url() string { return troubleshootingURL + "#" + string(a) }

// hint is what an error says about its likely cause: one line for Error(),
// the full explanation for the Hint field, and the section that explains it.
type hint struct {
	summary string
	full    string
	anchor  anchor
}

// hintLine is the end of an error message: "; hint: <one line> (see <link>)".
// Without a link, summary falls back to full; with one, an empty summary
// leaves only the link (the cause says it all).
func hintLine(summary, full string, a anchor) string {
	if summary == "" && a == "" {
		summary = full
	}
	s := ""
	if summary != "" {
		s = "; hint: " + summary
	}
	if a != "" {
		s += " (see " + a.url() + ")"
	}
	return s
}

// loginHint is the full hint for a failed login (diagnose).
func loginHint(err error, in hintInput) string { return diagnose(err, in).full }

// diagnose maps a failed login to its likely cause and fix. Azure's messages are
// recognised by the fixed parts of their text, never by words that could be part of
// a role name; the SQL it suggests quotes the role as a string literal.
func diagnose(err error, in hintInput) hint {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return transportHint(err, in)
	}
	msg := pe.Message
	claims, _ := token.ParseClaims(in.Token) // zero Claims when unreadable
	role := sqlString(in.User)
	oid := "'<object-id>'"
	if claims.ObjectID != "" {
		oid = sqlString(claims.ObjectID)
	}
	switch {
	case hasPrefixFold(msg, azExpired):
		return hint{"check this machine's clock (NTP)", "the server saw an expired token: check this machine's clock (NTP) — pgentra fetches a refreshed token by itself before expiry and retries a refused cached token once with a new one, so an expired token that persists means the clocks disagree", anchorExpired}
	case hasPrefixFold(msg, azAudience):
		return hint{"fix azure_scope", audienceHint(msg, in), anchorAudience}
	case hasPrefixFold(msg, azInvalidFormat):
		return hint{`not an Entra token: open the database with driver "pgentra"`, "the password the server got was not an Entra access token as issued: if pgentra made this connection, check the credential passed with WithCredential; a static password, a truncated or quoted token, or a program that opened the database with \"postgres\" (sql.Open, GORM without DriverName \"pgentra\") instead of \"pgentra\" send something else", anchorInvalidFormat}
	case hasPrefixFold(msg, azValidation):
		return hint{"check the tenant, the cloud and the clock", "the server could not validate the token (Azure does not say which check failed): check that the identity is in the server's Entra tenant (azure_tenant_id or AZURE_TENANT_ID for the CLI and service principals), that the token comes from the server's cloud and authority (azure_scope for sovereign clouds), that this machine's clock is right (NTP); also that the sign-in used MFA for a role created with isMfa, and that a user's token is not used for a role created as 'service'", anchorValidation}
	case hasPrefixFold(msg, azSPUserRole):
		return hint{"recreate the role as type 'service'", fmt.Sprintf("the role was created as a user, but a service principal's (app) token can only log in to a role of type 'service': as an Entra administrator, in the postgres database, drop role %s and recreate it with select * from pgaadauth_create_principal_with_oid(%s, %s, 'service', false, false); (for a user's token the type is 'user')", quoteIdent(in.User), role, oid), anchorTokenType}
	case (hasPrefixFold(msg, azEntraUserTok) || hasPrefixFold(msg, azOldUserTok)) && hasSuffixFold(msg, azMIUserRole):
		return hint{"recreate the role as type 'service'", fmt.Sprintf("the role was created as a user (or a user administrator), but a managed identity's token is an app token and needs a role of type 'service': as an Entra administrator, in the postgres database, drop role %s and recreate it with select * from pgaadauth_create_principal_with_oid(%s, %s, 'service', false, false); (or pgaadauth_create_principal with the identity's name)", quoteIdent(in.User), role, oid), anchorTokenType}
	case strings.HasPrefix(msg, pgNoHBA) && (strings.HasSuffix(msg, "no encryption") || strings.HasSuffix(msg, "SSL off")):
		return hint{"use sslmode=verify-full", "the server requires an encrypted connection and this one was not: use sslmode=verify-full (pgentra's default when sslmode is not set) instead of sslmode=disable, allow or prefer", anchorPlainText}
	case pe.Code == "08P01" && strings.Contains(msg, bouncerPartial),
		strings.HasPrefix(msg, bouncerPassword):
		return hint{"PgBouncer refused the token's length: connect to port 5432", bouncerHint(in), anchorPgBouncer}
	case pe.Code == "3D000":
		return hint{"set dbname (or PGDATABASE) to an existing database", noDatabaseHint, anchorNoDatabase}
	case pe.Code == "28P01" || strings.HasPrefix(msg, pgPasswordFail):
		return noRoleHint(in, claims, role)
	case pe.Code == "28000" && strings.HasPrefix(msg, `role "`) && strings.HasSuffix(msg, `" is not permitted to log in`):
		return hint{"the role has NOLOGIN", fmt.Sprintf("role %s exists but has NOLOGIN: if it is an Entra group's role, group logins were turned off (ALTER ROLE ... NOLOGIN); with pgaadauth.enable_group_sync on, members log in with their own role name instead (select * from pgaadauth_sync_roles_for_group_members();)", quoteIdent(in.User)), anchorNoRole}
	case codeClass(pe) == "28":
		return hint{"check Entra authentication and this identity's role", "the server refused the identity: check that the server has Entra authentication enabled (az postgres flexible-server update --microsoft-entra-auth Enabled) and that a role maps to this identity (select * from pgaadauth_list_principals(false); in the postgres database)", anchorNoRole}
	}
	return hint{full: "see the server's message"}
}

// noDatabaseHint explains 3D000: the token was accepted, the database name is wrong.
const noDatabaseHint = "the server accepted the token but has no database of that name: set dbname in the connection string " +
	"(or PGDATABASE when it names none; without either, the database is the user's name) to an existing database; " +
	"list them with psql \"host=... user=... sslmode=verify-full\" -l, or select datname from pg_database; " +
	"on Azure, create one with az postgres flexible-server db create"

// noRoleHint explains a 28P01: no role named in.User maps to the token's
// identity. With a given user, the role this token maps to (its name in the
// token, or in.TokenRole from the management-scope lookup) is named; a role
// named after the given user is never suggested, since that user may be
// someone else's role.
func noRoleHint(in hintInput, claims token.Claims, role string) hint {
	name := claims.PrincipalName()
	if strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		name = "" // an untrusted claim is not suggested raw; describe quotes it
	}
	if name == "" {
		name = in.TokenRole
	}
	switch {
	case in.Given && name != "" && name != in.User:
		return hint{fmt.Sprintf("this token maps to role %q: set user to it", name),
			fmt.Sprintf("role %s does not map to this token's identity; this token's identity maps to role %q: set user=%s, or leave user out and pgentra derives it (if that role does not exist yet, an Entra administrator creates it: select * from pgaadauth_create_principal(%s, false, false);); if %s is an Entra group's role, this identity must be a direct member of the group", quoteIdent(in.User), name, name, sqlString(name), quoteIdent(in.User)),
			anchorWrongUser}
	case in.Given && name == "":
		return hint{fmt.Sprintf("role %q does not map to this token's identity", in.User),
			fmt.Sprintf("role %s does not map to this token's identity (%s): find the role that does, as an Entra administrator in the postgres database: select * from pgaadauth_list_principals(false); and compare its objectId with the token's oid; set user to that role, or, if there is none, have the administrator create this identity's role with pgaadauth_create_principal (a managed identity's role is named after the identity, a service principal's after its app; leave user out and pgentra derives a managed identity's name) (if %s is an Entra group's role, this identity must be a direct member of the group)", quoteIdent(in.User), describe(claims), quoteIdent(in.User)),
			anchorWrongUser}
	}
	return hint{"create the role with pgaadauth_create_principal",
		fmt.Sprintf("no role named %s maps to this identity; an Entra administrator must run, in the postgres database: select * from pgaadauth_create_principal(%s, false, false); and the DSN's user must be that role name (if %s is an Entra group's role, this identity must be a direct member of the group)", quoteIdent(in.User), role, quoteIdent(in.User)),
		anchorNoRole}
}

// bouncerHint explains PgBouncer refusing a long password (an Entra token).
func bouncerHint(in hintInput) string {
	where := "this server's connection pooler"
	if in.Port == 6432 {
		where = "the PgBouncer on port 6432"
	}
	return fmt.Sprintf("%s could not take the access token as a password (%d bytes): upstream PgBouncer (1.25.1 and earlier) caps passwords at 2047 bytes, and older versions failed long user tokens with \"client sent partial pkt in startup phase\"; connect to port 5432 (PostgreSQL itself) or ask for a PgBouncer version that accepts tokens this size", where, len(in.Token))
}

// audienceHint explains Azure's wrong-audience refusal. It suggests as
// azure_scope only one of the four database scopes (those the DSN accepts):
// a server that asks for a token of another resource (Key Vault, Resource
// Manager, Graph) is told it will not get one, and the scope for the host is
// named instead.
func audienceHint(msg string, in hintInput) string {
	h := fmt.Sprintf("the token was issued for another resource than this server's; this connection asked for scope %q", in.Scope)
	r := resourceIn(msg)
	if r == "" {
		return h + "; set azure_scope to the server's scope only for a non-standard host name or another cloud"
	}
	scope, ok := databaseScopeOf(r)
	switch {
	case !ok:
		host := in.Host
		if host == "" {
			host = "(none)"
		}
		return h + fmt.Sprintf("; the server expects a token for %q, a resource pgentra will not request (azure_scope takes only the four database scopes: a token for anything else would be handed to whatever host the connection string names); "+
			"the scope for host %s is %s: check that the host is an Azure Database for PostgreSQL server", r, host, token.ScopeForHost(in.Host))
	case strings.EqualFold(scope, in.Scope):
		return h + "; set azure_scope to the server's scope only for a non-standard host name or another cloud"
	}
	return h + fmt.Sprintf("; the server wants %q: set azure_scope=%s (needed for a custom DNS name or another cloud's server)", r, scope)
}

// databaseScopeOf returns the database scope (one azure_scope accepts) of
// the resource a refusal names, and false when it is no database resource.
func databaseScopeOf(resource string) (string, bool) {
	want := strings.TrimRight(resource, "/") + "/.default"
	for _, s := range dsnScopes {
		if strings.EqualFold(s, want) {
			return s, true
		}
	}
	return "", false
}

// transportHint explains a failure before the server's answer: dial or TLS.
// When pgentra verified a connection its string asked to verify less
// (in.TLS), a failed verification also says why it did and how to add
// roots.
func transportHint(err error, in hintInput) hint {
	h, verification := transportCause(err)
	if verification && in.TLS.from != "" {
		h.full += "; " + in.TLS.hint()
	}
	return h
}

// transportCause explains a dial or TLS failure, and reports whether the
// server's certificate failed verification.
func transportCause(err error) (h hint, verification bool) {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	var pe *fs.PathError
	msg := err.Error()
	switch {
	case errors.As(err, &ua) || strings.Contains(msg, "certificate signed by unknown authority"):
		return hint{"set sslrootcert to the server's CA", "the server's TLS certificate chain is not trusted here: install the system CA roots (ca-certificates), or set sslrootcert to a PEM file holding Azure's roots — " + azureRoots + " — (for a test server: its CA); a TLS-intercepting proxy needs its own CA", anchorCertificate}, true
	case errors.As(err, &he) || strings.Contains(msg, "certificate is valid for"):
		return hint{"connect by the server's name (or hostaddr=<ip> with host=<name>)", "the server's TLS certificate does not name the host dialed: connect by the server's name (<server>.postgres.database.azure.com, through private DNS), or set hostaddr=<ip> with host= the server's name", anchorCertificate}, true
	case errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist), strings.Contains(msg, "couldn't parse pem from sslrootcert"):
		return hint{"fix sslrootcert (a PEM file) or leave it out", "the sslrootcert file cannot be used: point sslrootcert at a PEM file holding " + azureRoots + ", or leave it out to use the system roots", anchorCertificate}, false
	case errors.As(err, &ce) || errors.As(err, &ve):
		return hint{"check the certificate's dates and this machine's clock", "the server's TLS certificate failed verification (see the error): check its validity dates and this machine's clock", anchorCertificate}, true
	}
	return hint{full: "the server could not be reached or the TLS handshake failed; check host, port, sslmode and sslrootcert"}, false
}

// resourceIn returns the resource Azure's wrong-audience message names ("" when it
// names none, e.g. Cosmos DB for PostgreSQL's literal "%s").
func resourceIn(msg string) string {
	i := strings.Index(msg, azAudienceFor)
	if i < 0 {
		return ""
	}
	rest := msg[i+len(azAudienceFor):]
	j := strings.IndexByte(rest, '"')
	if j < 0 || !strings.HasPrefix(rest[:j], "https://") {
		return ""
	}
	return rest[:j]
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// sqlString quotes s as an SQL string literal: 'o”brien@contoso.com'.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// quoteIdent quotes s as an SQL identifier: "o'brien@contoso.com".
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func principalOf(tok string) string {
	c, err := token.ParseClaims(tok)
	if err != nil {
		return "an unreadable token"
	}
	return describe(c)
}
