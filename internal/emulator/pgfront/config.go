package pgfront

import (
	"crypto/rsa"
	"crypto/tls"
	"database/sql"
	"errors"
	"time"
)

// Config configures a Front. All fields except TLS, RequireTLS, Resource, Now and Logf
// are required.
type Config struct {
	// BackendNetwork and BackendAddr say how the front logs the mapped role in to the
	// real server after a token passed. Use its unix socket, which trusts local users:
	// BackendNetwork "unix", BackendAddr "<socketdir>/.s.PGSQL.<port>". A backend that
	// asks for a password makes every login fail with an internal error.
	BackendNetwork, BackendAddr string

	// AdminDB is a superuser connection to the database holding the principal
	// registry (where InstallAADAuth ran, normally "postgres"). The front queries it
	// on every login, so registrations made during a test take effect at once.
	AdminDB *sql.DB

	// TLS is offered in answer to SSLRequest. Nil refuses TLS ('N'), which makes
	// sslmode=require/verify-* clients fail before sending anything.
	TLS *tls.Config

	// RequireTLS rejects cleartext logins before asking for the password, like Azure
	// with require_secure_transport=on. It needs TLS.
	RequireTLS bool

	// TenantID is the only accepted tid; Issuer the only accepted iss (Azure:
	// "https://sts.windows.net/<tid>/").
	TenantID, Issuer string

	// Audiences lists the accepted aud values, e.g.
	// "https://ossrdbms-aad.database.windows.net". A token passes if any of its
	// audiences is listed.
	Audiences []string

	// Resource is the server's own resource, which Azure names in its wrong-audience
	// message (MsgInvalidAudience): "https://ossrdbms-aad.database.windows.net" in the
	// public cloud, "https://ossrdbms-aad.database.chinacloudapi.cn" in Azure China,
	// "https://ossrdbms-aad.database.usgovcloudapi.net" in Azure Government. Default:
	// Audiences[0].
	Resource string

	// Keys returns the RSA public key for a JWT header's kid, or an error when the
	// kid is unknown (the login then fails with MsgValidationFailed, Login.Reason ReasonSignature). It is called
	// from many goroutines at once.
	Keys func(kid string) (*rsa.PublicKey, error)

	// Now is the front's clock for nbf/exp checks, to test clock skew. Default
	// time.Now.
	Now func() time.Time

	// Logf receives one line per login and per internal failure (never a token).
	// Default: discard. It is called from many goroutines at once.
	Logf func(format string, args ...any)
}

// withDefaults validates c and fills in the optional fields.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.BackendNetwork == "" || c.BackendAddr == "" {
		errs = append(errs, errors.New("config: BackendNetwork and BackendAddr are required"))
	}
	if c.AdminDB == nil {
		errs = append(errs, errors.New("config: AdminDB is required"))
	}
	if c.TenantID == "" || c.Issuer == "" {
		errs = append(errs, errors.New("config: TenantID and Issuer are required"))
	}
	if len(c.Audiences) == 0 {
		errs = append(errs, errors.New("config: at least one audience is required"))
	}
	if c.Keys == nil {
		errs = append(errs, errors.New("config: Keys is required"))
	}
	if c.RequireTLS && c.TLS == nil {
		errs = append(errs, errors.New("config: RequireTLS needs TLS"))
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	c.Audiences = append([]string(nil), c.Audiences...)
	if c.Resource == "" {
		c.Resource = c.Audiences[0]
	}
	return c, nil
}
