package entra

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// miCred builds a real ManagedIdentityCredential that reaches srv's IMDS.
func miCred(t *testing.T, srv *IdentityServer, id azidentity.ManagedIDKind) *azidentity.ManagedIdentityCredential {
	t.Helper()
	return must(azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: srv.Transport(), Retry: fastRetry},
		ID:            id,
	}))(t)
}

type imdsFixture struct {
	tn     *Tenant
	srv    *IdentityServer
	vm, ua Principal
}

func newIMDS(t *testing.T, opts IdentityServerOptions) imdsFixture {
	t.Helper()
	tn := newTenant(t)
	f := imdsFixture{tn: tn,
		vm: must(tn.AddSystemAssignedVM("vm-web-01"))(t),
		ua: must(tn.AddUserAssignedIdentity("id-orders"))(t),
	}
	f.srv = NewIdentityServer(tn, opts)
	t.Cleanup(f.srv.Close)
	return f
}

func TestIMDSManagedIdentityCredential(t *testing.T) {
	t.Parallel()
	f := newIMDS(t, IdentityServerOptions{})
	tests := []struct {
		name  string
		id    azidentity.ManagedIDKind
		want  Principal
		scope string
	}{
		{"system-assigned", nil, f.vm, DatabaseScope},
		{"system-assigned management", nil, f.vm, ManagementScope},
		{"client id", azidentity.ClientID(f.ua.AppID), f.ua, DatabaseScope},
		{"object id", azidentity.ObjectID(f.ua.ObjectID), f.ua, DatabaseScope},
		{"resource id", azidentity.ResourceID(f.ua.ResourceID), f.ua, DatabaseScope},
		{"resource id management", azidentity.ResourceID(f.ua.ResourceID), f.ua, ManagementScope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.srv.RequestsFor(tc.want)
			at, err := getToken(t, miCred(t, f.srv, tc.id), tc.scope)
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			c := parse(t, f.tn, at.Token)
			if c["oid"] != tc.want.ObjectID || c["aud"] != NormalizeAudience(tc.scope) {
				t.Errorf("oid %v aud %v, want %s %s", c["oid"], c["aud"], tc.want.ObjectID, NormalizeAudience(tc.scope))
			}
			_, hasMirid := c["xms_mirid"]
			if hasMirid != (tc.scope == ManagementScope) || (hasMirid && c["xms_mirid"] != tc.want.ResourceID) {
				t.Errorf("xms_mirid = %v for scope %s", c["xms_mirid"], tc.scope)
			}
			if d := time.Until(at.ExpiresOn); d < ShortTestLifetime-10*time.Second || d > ShortTestLifetime {
				t.Errorf("ExpiresOn in %v, want about %v", d, ShortTestLifetime)
			}
			if got := f.srv.RequestsFor(tc.want) - before; got != 1 {
				t.Errorf("%d requests for %s, want 1", got, tc.want.Name)
			}
		})
	}
}

// TestIMDSRetries: 429, 429, 200 ends in a token within milliseconds when
// ClientOptions.Retry is shortened; Retry-After (as retry-after-ms) is honoured.
func TestIMDSRetries(t *testing.T) {
	t.Parallel()
	f := newIMDS(t, IdentityServerOptions{})
	f.srv.Script(Fault{Status: http.StatusTooManyRequests, RetryAfter: 20 * time.Millisecond}, Fault{Status: http.StatusTooManyRequests}, Fault{Lifetime: 9 * time.Second})
	start := time.Now()
	at, err := getToken(t, miCred(t, f.srv, azidentity.ClientID(f.ua.AppID)), DatabaseScope)
	if err != nil {
		t.Fatalf("GetToken after 429s: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
	if f.srv.Requests() != 3 || f.srv.RequestsFor(f.ua) != 3 || f.srv.Pending() != 0 {
		t.Errorf("requests %d (for ua %d), pending %d; want 3, 3, 0", f.srv.Requests(), f.srv.RequestsFor(f.ua), f.srv.Pending())
	}
	if d := time.Until(at.ExpiresOn); d > 9*time.Second || d < 5*time.Second {
		t.Errorf("Fault.Lifetime not applied: expires in %v", d)
	}
	if f.tn.Minted(f.ua, DatabaseAudience) != 1 {
		t.Errorf("minted %d tokens, want 1", f.tn.Minted(f.ua, DatabaseAudience))
	}
}

func TestIMDSFaultsFail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault Fault
	}{
		{"endpoint down", Fault{Status: http.StatusServiceUnavailable}},
		{"connection dropped", Fault{Drop: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newIMDS(t, IdentityServerOptions{})
			f.srv.SetDefault(tc.fault)
			_, err := getToken(t, miCred(t, f.srv, nil), DatabaseScope)
			if err == nil {
				t.Fatal("GetToken succeeded against a failing endpoint")
			}
			if got := f.srv.Requests(); got != int(fastRetry.MaxRetries)+1 {
				t.Errorf("%d requests, want %d (1 + retries)", got, fastRetry.MaxRetries+1)
			}
			f.srv.SetDefault(Fault{})
			if _, err := getToken(t, miCred(t, f.srv, nil), DatabaseScope); err != nil {
				t.Errorf("GetToken after recovery: %v", err)
			}
		})
	}
}

func TestIMDSHangEndsAtDeadline(t *testing.T) {
	t.Parallel()
	f := newIMDS(t, IdentityServerOptions{})
	f.srv.Script(Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := miCred(t, f.srv, nil).GetToken(ctx, tokenOpts(DatabaseScope))
	if err == nil {
		t.Fatal("GetToken succeeded against a hanging endpoint")
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Errorf("returned after %v, want about 300ms", el)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("error does not mention the deadline: %v", err)
	}
}

// TestIMDSCloseReleasesHang: Close must not wait for a hung request's client.
func TestIMDSCloseReleasesHang(t *testing.T) {
	t.Parallel()
	f := newIMDS(t, IdentityServerOptions{})
	f.srv.SetDefault(Fault{Hang: true})
	cred := miCred(t, f.srv, nil)
	done := make(chan error, 1)
	go func() {
		_, err := cred.GetToken(context.Background(), tokenOpts(DatabaseScope))
		done <- err
	}()
	for f.srv.Requests() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { f.srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a hung request")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("GetToken succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GetToken did not return after Close")
	}
}

func TestIMDSRawErrors(t *testing.T) {
	t.Parallel()
	f := newIMDS(t, IdentityServerOptions{})
	noSystem := NewIdentityServer(f.tn, IdentityServerOptions{NoSystemAssigned: true})
	t.Cleanup(noSystem.Close)
	const res = "&resource=" + DatabaseAudience
	tests := []struct {
		name     string
		srv      *IdentityServer
		query    string
		metadata bool
		status   int
		body     string
	}{
		{"no metadata header", f.srv, "api-version=2018-02-01" + res, false, 400,
			`{"error":"invalid_request","error_description":"Required metadata header not specified"}`},
		{"unknown client id", f.srv, "api-version=2018-02-01&client_id=" + newGUID() + res, true, 400,
			`{"error":"invalid_request","error_description":"Identity not found"}`},
		{"no system-assigned identity", noSystem, "api-version=2018-02-01" + res, true, 400,
			`{"error":"invalid_request","error_description":"Identity not found"}`},
		{"missing resource", f.srv, "api-version=2018-02-01", true, 400, ""},
		{"ok", f.srv, "api-version=2018-02-01&object_id=" + f.ua.ObjectID + res, true, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tc.srv.URL()+IMDSPath+"?"+tc.query, nil)
			if tc.metadata {
				req.Header.Set("Metadata", "true")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || (tc.body != "" && string(body) != tc.body) {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status == 200 {
				for _, k := range []string{`"access_token":"ey`, `"client_id":"` + f.ua.AppID, `"expires_in":"`, `"expires_on":"`,
					`"ext_expires_in":"`, `"not_before":"`, `"resource":"` + DatabaseAudience, `"token_type":"Bearer"`} {
					if !strings.Contains(string(body), k) {
						t.Errorf("success body lacks %s: %s", k, body)
					}
				}
			}
		})
	}
	// The real credential reports a missing identity as an error, not a token.
	if _, err := getToken(t, miCred(t, noSystem, nil), DatabaseScope); err == nil {
		t.Error("GetToken succeeded without a system-assigned identity")
	}
	if _, err := getToken(t, miCred(t, f.srv, azidentity.ClientID(newGUID())), DatabaseScope); err == nil {
		t.Error("GetToken succeeded for an unknown client ID")
	}
}
