package driver

import (
	"errors"
	"fmt"
	"strings"

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
	Hint      string
	Err       error
}

// Error gives the role, how it was chosen, the token's identity (never the
// token), the server's error and the hint.
func (e *LoginError) Error() string {
	how := "given"
	if e.Derived {
		how = "derived from the token"
	}
	return fmt.Sprintf("pgentra: login as %q (%s; token for %s) failed: %v; hint: %s", e.User, how, e.Principal, e.Err, e.Hint)
}

// Unwrap returns the server's error.
func (e *LoginError) Unwrap() error { return e.Err }

// isAuthFailure reports a login refused by the server's authentication
// (SQLSTATE class 28): the case where a new token may help.
func isAuthFailure(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code.Class() == "28"
}

// loginHint maps a server's authentication error to its likely cause.
// Azure's messages are matched by their stable phrases.
func loginHint(err error, user, scope string) string {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return "the server could not be reached or the TLS handshake failed; check host, port, sslmode and sslrootcert"
	}
	msg := strings.ToLower(pe.Message)
	switch {
	case strings.Contains(msg, "token has expired"):
		return "the server saw an expired token: check this machine's clock, and lower azure_refresh_margin if tokens are short-lived"
	case strings.Contains(msg, "not yet valid"):
		return "the token's not-before time is in the future for the server: this machine's clock or the server's is off (clock skew)"
	case strings.Contains(msg, "tenant") || strings.Contains(msg, "issuer"):
		return "the token comes from another Entra tenant than the server's; set azure_tenant_id (or AZURE_TENANT_ID) to the server's tenant"
	case strings.Contains(msg, "audience"):
		return fmt.Sprintf("the token was issued for another resource; this server needs scope %q (set azure_scope only for a non-standard host)", scope)
	case strings.Contains(msg, "invalid format"):
		return "the password was not an Entra access token; check the credential passed with WithCredential"
	case strings.Contains(msg, "does not match"):
		return "the role was created for another kind of principal (user vs. service); recreate it with pgaadauth_create_principal_with_oid and the right type"
	case pe.Code == "28P01" || strings.Contains(msg, "password authentication failed"):
		return fmt.Sprintf("no role named %q maps to this identity; an Entra administrator must run, in the postgres database: select * from pgaadauth_create_principal('%s', false, false); and the DSN's user must be that role name (if %q is an Entra group's role, this identity must be a direct member of the group)", user, user, user)
	case pe.Code.Class() == "28":
		return "the server refused the identity; check the server's Entra authentication is enabled and the role exists (pgaadauth_list_principals)"
	}
	return "see the server's message"
}

func principalOf(tok string) string {
	c, err := token.ParseClaims(tok)
	if err != nil {
		return "an unreadable token"
	}
	return describe(c)
}
