package entra

import (
	"net/http"
	"strconv"
	"time"
)

// imdsError answers like IMDS: 4xx/5xx with {"error","error_description"}.
func imdsError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func imdsFault(w http.ResponseWriter, status int) {
	code := "server_error"
	if status == http.StatusTooManyRequests {
		code = "too_many_requests"
	} else if status < 500 {
		code = "invalid_request"
	}
	imdsError(w, status, code, http.StatusText(status))
}

// serveIMDS answers GET /metadata/identity/oauth2/token as the Azure Instance
// Metadata Service (api-version 2018-02-01) does.
func (s *IdentityServer) serveIMDS(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, found, selectors := s.identityFor(q.Get("client_id"), q.Get("object_id"), q.Get("msi_res_id"))
	s.count.add(p.ObjectID)
	fault := s.faults.next()
	if fault.apply(w, r, s.closing.ch, imdsFault) {
		return
	}
	switch {
	case r.Method != http.MethodGet:
		imdsError(w, http.StatusMethodNotAllowed, "invalid_request", "The requested method is not supported")
	case r.Header.Get("Metadata") != "true":
		imdsError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
	case q.Get("api-version") == "":
		imdsError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'api-version' is missing")
	case q.Get("resource") == "":
		imdsError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing")
	case selectors > 1:
		imdsError(w, http.StatusBadRequest, "invalid_request", "Only one of client_id, object_id or msi_res_id may be specified")
	case !found:
		imdsError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
	default:
		s.issueIMDS(w, p, q.Get("resource"), fault.Lifetime)
	}
}

func (s *IdentityServer) issueIMDS(w http.ResponseWriter, p Principal, resource string, lifetime time.Duration) {
	tok, exp, err := s.tenant.Mint(p, resource, lifetime)
	if err != nil {
		imdsError(w, http.StatusInternalServerError, "server_error", "token issuance failed")
		return
	}
	now := s.tenant.Now()
	secs := strconv.FormatInt(int64(exp.Sub(now).Round(time.Second)/time.Second), 10)
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token":   tok,
		"client_id":      p.AppID,
		"expires_in":     secs,
		"expires_on":     strconv.FormatInt(exp.Unix(), 10),
		"ext_expires_in": secs,
		"not_before":     strconv.FormatInt(now.Unix(), 10),
		"resource":       resource,
		"token_type":     "Bearer",
	})
}
