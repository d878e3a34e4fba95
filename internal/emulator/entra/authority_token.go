package entra

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// aadError answers like Entra's token endpoint: an OAuth error code and an
// AADSTS-numbered description. Descriptions never echo secrets or assertions.
func aadError(w http.ResponseWriter, status int, code string, aadsts int, msg string) {
	now := time.Now().UTC()
	trace, corr := newGUID(), newGUID()
	writeJSON(w, status, map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			aadsts, msg, trace, corr, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":    []int{aadsts},
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
	})
}

func aadFault(w http.ResponseWriter, status int) {
	code := "temporarily_unavailable"
	if status < 500 && status != http.StatusTooManyRequests {
		code = "invalid_request"
	}
	aadError(w, status, code, 90000+status, "Emulated fault: "+http.StatusText(status)+".")
}

// resourceFromScope picks the one "<resource>/.default" scope out of MSAL's
// scope list (which also carries openid, profile, offline_access).
func resourceFromScope(scope string) (string, bool) {
	var res []string
	for _, s := range strings.Fields(scope) {
		switch s {
		case "openid", "profile", "offline_access":
			continue
		}
		res = append(res, s)
	}
	if len(res) != 1 || !strings.HasSuffix(res[0], "/.default") {
		return "", false
	}
	return res[0], true
}

// serveToken answers POST /{tenant}/oauth2/v2.0/token for the client
// credentials grant, authenticated by client_secret or by a
// client_assertion: a certificate assertion (private_key_jwt, see
// [Tenant.WriteClientCertificate]) or a workload-identity one.
func (a *Authority) serveToken(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	clientID := r.PostForm.Get("client_id")
	p, found := a.tenant.ByClientID(clientID)
	found = found && p.Kind == ServicePrincipal
	var oid string
	if found {
		oid = p.ObjectID
	}
	a.count.add(oid)
	fault := a.faults.next()
	if fault.apply(w, r, a.closing.ch, aadFault) {
		return
	}
	if r.Method != http.MethodPost {
		aadError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests.")
		return
	}
	if !a.knownTenant(w, r) {
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		aadError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%.40s'.", g))
		return
	}
	if !found {
		aadError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%.40s' was not found in the directory '%s'.", clientID, a.tenant.ID()))
		return
	}
	scope, ok := resourceFromScope(r.PostForm.Get("scope"))
	if !ok {
		aadError(w, http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	secret, assertion := r.PostForm.Get("client_secret"), r.PostForm.Get("client_assertion")
	appidacr := "1"
	switch {
	case secret != "":
		if subtle.ConstantTimeCompare([]byte(secret), []byte(p.ClientSecret)) != 1 || p.ClientSecret == "" {
			aadError(w, http.StatusUnauthorized, "invalid_client", 7000215,
				fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", p.AppID))
			return
		}
	case assertion != "":
		if r.PostForm.Get("client_assertion_type") != clientAssertionType {
			aadError(w, http.StatusBadRequest, "invalid_request", 50027, "Invalid client_assertion_type.")
			return
		}
		if isCertificateAssertion(assertion, p.AppID) {
			if e := a.tenant.verifyCertificateAssertion(assertion, p, base(r)+r.URL.Path); e != nil {
				aadError(w, e.status, e.code, e.aadsts, e.msg)
				return
			}
		} else if err := a.tenant.verifyAssertion(assertion, p); err != nil {
			aadError(w, http.StatusBadRequest, "invalid_client", 700211,
				fmt.Sprintf("No matching federated identity record found for presented assertion issuer for app '%s' (%v).", p.AppID, err))
			return
		}
		appidacr = "2"
	default:
		aadError(w, http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	tok, exp, err := a.tenant.mint(p, scope, fault.Lifetime, appidacr)
	if err != nil {
		aadError(w, http.StatusInternalServerError, "server_error", 90000, "Token issuance failed.")
		return
	}
	secs := int64(exp.Sub(a.tenant.Now()).Round(time.Second) / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}
