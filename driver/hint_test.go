package driver

import (
	"errors"
	"strings"
	"testing"

	"github.com/lib/pq"
)

func TestLoginHint(t *testing.T) {
	tests := []struct {
		code, msg, want string
	}{
		{"28000", "The access token has expired. Acquire a new token and retry.", "clock"},
		{"28000", "The access token does not have a valid audience claim. Please ensure that the token is obtained for the correct resource.", "https://ossrdbms-aad.database.windows.net/.default"},
		{"28000", "The access token has invalid format.", "not an Entra access token"},
		{"28000", "The access token is not yet valid. Check the clock and retry.", "clock skew"},
		{"28000", "The access token was issued for a different tenant.", "azure_tenant_id"},
		{"28000", "Token type does not match the role type.", "pgaadauth_create_principal_with_oid"},
		{"28P01", `password authentication failed for user "app"`, "pgaadauth_create_principal('app', false, false)"},
		{"28000", "something else", "pgaadauth_list_principals"},
	}
	for _, tt := range tests {
		err := &pq.Error{Code: pq.ErrorCode(tt.code), Message: tt.msg}
		if got := loginHint(err, "app", "https://ossrdbms-aad.database.windows.net/.default"); !strings.Contains(got, tt.want) {
			t.Errorf("hint for %q = %q, want it to mention %q", tt.msg, got, tt.want)
		}
	}
	if got := loginHint(errors.New("dial tcp: connection refused"), "app", ""); !strings.Contains(got, "reached") {
		t.Errorf("hint for a network error = %q", got)
	}
}
