package entra

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"
)

// appServiceError answers like the App Service identity endpoint, whose
// errors are {"statusCode","message","correlationId"}.
func appServiceError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "correlationId": newGUID()})
}

func appServiceFault(w http.ResponseWriter, status int) {
	appServiceError(w, status, http.StatusText(status))
}

// serveAppService answers GET IDENTITY_ENDPOINT?api-version=2019-08-01 as
// App Service does. MSAL names a user-assigned identity by client_id,
// object_id or mi_res_id; principal_id (the documented alias of object_id)
// is accepted too.
func (s *IdentityServer) serveAppService(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	byObject := q.Get("object_id")
	if byObject == "" {
		byObject = q.Get("principal_id")
	}
	p, found, selectors := s.identityFor(q.Get("client_id"), byObject, q.Get("mi_res_id"))
	s.count.add(p.ObjectID)
	fault := s.faults.next()
	if fault.apply(w, r, s.closing.ch, appServiceFault) {
		return
	}
	secret := r.Header.Get("X-IDENTITY-HEADER")
	switch {
	case r.Method != http.MethodGet:
		appServiceError(w, http.StatusMethodNotAllowed, "The requested method is not supported")
	case secret == "":
		appServiceError(w, http.StatusBadRequest, "The X-IDENTITY-HEADER header is missing")
	case subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.AppServiceSecret)) != 1:
		appServiceError(w, http.StatusUnauthorized, "The X-IDENTITY-HEADER header is invalid")
	case q.Get("api-version") != "2019-08-01":
		appServiceError(w, http.StatusBadRequest, "The api-version must be 2019-08-01")
	case q.Get("resource") == "":
		appServiceError(w, http.StatusBadRequest, "The resource parameter is missing")
	case selectors > 1 || !found:
		appServiceError(w, http.StatusBadRequest, "Unable to load the proper Managed Identity.")
	default:
		s.issueAppService(w, p, q.Get("resource"), fault.Lifetime)
	}
}

func (s *IdentityServer) issueAppService(w http.ResponseWriter, p Principal, resource string, lifetime time.Duration) {
	tok, exp, err := s.tenant.Mint(p, resource, lifetime)
	if err != nil {
		appServiceError(w, http.StatusInternalServerError, "token issuance failed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(exp.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    p.AppID,
	})
}
