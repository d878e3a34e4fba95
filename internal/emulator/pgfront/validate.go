package pgfront

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// loginError is a login refusal: the SQLSTATE and message of the FATAL ErrorResponse.
// Its text never contains the token.
type loginError struct {
	code, msg string
	reason    string // emulator's diagnosis when msg is Azure's generic text (Reason*)
}

func (e *loginError) Error() string {
	if e.reason != "" {
		return e.code + ": " + e.msg + " (" + e.reason + ")"
	}
	return e.code + ": " + e.msg
}

func refuse(code, msg string) *loginError { return &loginError{code: code, msg: msg} }

// refuseGeneric is Azure's generic validation failure, with the check that failed
// recorded for tests (Login.Reason) but not sent.
func refuseGeneric(reason string) *loginError {
	return &loginError{code: CodeInvalidAuthorization, msg: MsgValidationFailed, reason: reason}
}

// identity is what a valid token says about its bearer.
type identity struct {
	oid  string
	kind string // "user" or "service", comparable with the registry's principal type
	mfa  bool   // the token's amr lists "mfa"
}

// checkToken validates tok the way Azure does at login, in this order: JWT format,
// RS256 signature with a known kid, audience, issuer, tenant, nbf, exp. The role
// checks (oid → role, user, type) come after, against the registry.
func (c *Config) checkToken(tok string, now time.Time) (identity, *loginError) {
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithoutClaimsValidation(), // our own checks, in Azure's order, with our clock
		jwt.WithJSONNumber(),
	)
	claims := jwt.MapClaims{}
	_, err := parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token header has no kid")
		}
		key, err := c.Keys(kid)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		if key == nil {
			return nil, fmt.Errorf("no key for kid %q", kid)
		}
		return key, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return identity{}, refuse(CodeInvalidAuthorization, MsgInvalidFormat)
	default: // bad signature, wrong alg, unknown kid
		return identity{}, refuseGeneric(ReasonSignature)
	}

	aud, err := claims.GetAudience()
	if err != nil {
		return identity{}, refuse(CodeInvalidAuthorization, MsgInvalidFormat)
	}
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(c.Audiences, a) }) {
		return identity{}, refuse(CodeInvalidAuthorization, MsgInvalidAudience(c.Resource))
	}
	if iss, _ := claims["iss"].(string); iss != c.Issuer {
		return identity{}, refuseGeneric(ReasonIssuer)
	}
	if tid, _ := claims["tid"].(string); tid != c.TenantID {
		return identity{}, refuseGeneric(ReasonTenant)
	}
	nbf, err := claims.GetNotBefore()
	if err != nil {
		return identity{}, refuse(CodeInvalidAuthorization, MsgInvalidFormat)
	}
	if nbf != nil && nbf.After(now) {
		return identity{}, refuseGeneric(ReasonNotYetValid)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return identity{}, refuse(CodeInvalidAuthorization, MsgInvalidFormat)
	}
	if !exp.After(now) {
		return identity{}, refuse(CodeInvalidAuthorization, MsgTokenExpired)
	}
	oid, _ := claims["oid"].(string)
	if oid == "" {
		return identity{}, refuse(CodeInvalidAuthorization, MsgInvalidFormat)
	}
	return identity{oid: oid, kind: principalKind(claims), mfa: hasMFA(claims)}, nil
}

// hasMFA reports whether the token's amr (authentication methods) lists "mfa".
func hasMFA(claims jwt.MapClaims) bool {
	amr, _ := claims["amr"].([]any)
	for _, m := range amr {
		if s, _ := m.(string); s == "mfa" {
			return true
		}
	}
	return false
}

// principalKind maps the token to a registry principal type. idtyp ("user"/"app") is
// authoritative; tokens without it are users when they carry a delegated scope (scp)
// or a upn, and applications otherwise.
func principalKind(claims jwt.MapClaims) string {
	switch idtyp, _ := claims["idtyp"].(string); idtyp {
	case "user":
		return TypeUser
	case "app":
		return TypeService
	}
	if _, ok := claims["scp"]; ok {
		return TypeUser
	}
	if _, ok := claims["upn"]; ok {
		return TypeUser
	}
	return TypeService
}
