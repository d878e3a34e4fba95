package entra

import (
	"crypto/rsa"
	"crypto/sha1" // #nosec G505 -- x5t thumbprints are SHA-1 by definition
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
)

// certFile is a parsed client certificate file.
type certFile struct {
	path string
	raw  []byte
	cert *x509.Certificate
	key  *rsa.PrivateKey
}

func readCertFile(t *testing.T, path string) certFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, key, err := azidentity.ParseCertificates(raw, nil)
	if err != nil {
		t.Fatalf("azidentity.ParseCertificates: %v", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if len(certs) != 1 || !ok {
		t.Fatalf("%d certificates, key %T; want 1 and an RSA key", len(certs), key)
	}
	return certFile{path: path, raw: raw, cert: certs[0], key: rk}
}

// TestWriteClientCertificateFile checks the file azidentity reads: mode 0600,
// a certificate and a PKCS#8 key that belong together, CN = the principal's
// name, validity around the tenant clock; every call makes a new file.
func TestWriteClientCertificateFile(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	dir := t.TempDir()
	path := must(f.tn.WriteClientCertificate(dir, f.sp))(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	c := readCertFile(t, path)
	var types []string
	for rest := c.raw; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		types = append(types, b.Type)
	}
	if strings.Join(types, ",") != "CERTIFICATE,PRIVATE KEY" {
		t.Errorf("PEM blocks %v, want CERTIFICATE, PRIVATE KEY", types)
	}
	if !c.key.PublicKey.Equal(c.cert.PublicKey) || c.key.N.BitLen() != 2048 {
		t.Errorf("key does not match the certificate or is not RSA-2048")
	}
	if c.cert.Subject.CommonName != f.sp.Name {
		t.Errorf("CN %q, want %q", c.cert.Subject.CommonName, f.sp.Name)
	}
	if now := f.tn.Now(); now.Before(c.cert.NotBefore) || now.After(c.cert.NotAfter) || c.cert.NotAfter.Sub(now) > 48*time.Hour {
		t.Errorf("validity %v – %v, want a short one around %v", c.cert.NotBefore, c.cert.NotAfter, now)
	}
	if other := must(f.tn.WriteClientCertificate(dir, f.sp))(t); other == path {
		t.Errorf("second certificate overwrote %s", path)
	}
}

// TestWriteClientCertificateNotServicePrincipal: only service principals of
// the tenant get certificates.
func TestWriteClientCertificateNotServicePrincipal(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	stranger := must(newTenant(t).AddServicePrincipal("stranger-api"))(t)
	for _, p := range []Principal{
		must(f.tn.AddUser("carol@contoso.com"))(t),
		must(f.tn.AddUserAssignedIdentity("id-orders"))(t),
		stranger,
		{},
	} {
		dir := t.TempDir()
		path, err := f.tn.WriteClientCertificate(dir, p)
		if err == nil || !strings.HasPrefix(err.Error(), "entra: ") || !strings.Contains(err.Error(), "not a service principal") {
			t.Errorf("%v: path %q, err %v; want an entra: not a service principal error", p, path, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%v: %d files written", p, len(ents))
		}
	}
}

// TestClientCertificateCredential logs in with azidentity's real
// ClientCertificateCredential (MSAL's PS256 assertion), with and without the
// certificate chain (x5c), with the second of two registered certificates,
// and gets a service-principal token with appidacr "2".
func TestClientCertificateCredential(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	first := readCertFile(t, must(f.tn.WriteClientCertificate(t.TempDir(), f.sp))(t))
	second := readCertFile(t, must(f.tn.WriteClientCertificate(t.TempDir(), f.sp))(t))
	// Transport only: the credential aims at login.microsoftonline.com, so
	// its assertion's aud is that host's token endpoint.
	public := azcore.ClientOptions{Transport: f.auth.Transport(), Retry: fastRetry}
	for _, tc := range []struct {
		name  string
		c     certFile
		chain bool
		copts azcore.ClientOptions
	}{
		{"first", first, false, f.copts},
		{"second", second, false, f.copts},
		{"with x5c", first, true, f.copts},
		{"public cloud host", first, false, public},
	} {
		cred := must(azidentity.NewClientCertificateCredential(f.tn.ID(), f.sp.AppID, []*x509.Certificate{tc.c.cert}, tc.c.key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: tc.copts, SendCertificateChain: tc.chain}))(t)
		at, err := getToken(t, cred, DatabaseScope)
		if err != nil {
			t.Fatalf("%s: GetToken: %v", tc.name, err)
		}
		if c := parse(t, f.tn, at.Token); c["oid"] != f.sp.ObjectID || c["appid"] != f.sp.AppID || c["appidacr"] != "2" || c["aud"] != DatabaseAudience {
			t.Errorf("%s: claims %v", tc.name, c)
		}
	}

	// A certificate the application does not know: the error names
	// AADSTS700027 and quotes neither key nor certificate.
	unknown := readCertFile(t, must(f.tn.WriteUnregisteredCertificate(t.TempDir(), f.sp.Name))(t))
	cred := must(azidentity.NewClientCertificateCredential(f.tn.ID(), f.sp.AppID, []*x509.Certificate{unknown.cert}, unknown.key,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: f.copts, DisableInstanceDiscovery: true}))(t)
	_, err := getToken(t, cred, DatabaseScope)
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || !strings.Contains(err.Error(), "AADSTS700027") {
		t.Fatalf("unregistered certificate: err = %v, want an AuthenticationFailedError with AADSTS700027", err)
	}
	if strings.Contains(err.Error(), pemBody(unknown.raw, "PRIVATE KEY")) || strings.Contains(err.Error(), pemBody(unknown.raw, "CERTIFICATE")) {
		t.Errorf("error quotes the certificate file: %v", err)
	}
}

// pemBody returns a line from the middle of the first PEM block of kind, to
// look for in error text.
func pemBody(raw []byte, kind string) string {
	s := string(raw)
	s = s[strings.Index(s, "-----BEGIN "+kind+"-----"):]
	return strings.Split(s, "\n")[3]
}

// assertion builds a client assertion shaped as MSAL Go v1.10.1 builds it
// (apps/internal/oauth/ops/accesstokens/accesstokens.go, Credential.JWT):
// PS256, header typ and x5t#S256 (standard base64 of the SHA-256 of the
// certificate's DER), claims aud = token endpoint, iss = sub = client ID,
// jti, nbf, exp = now + 10 minutes.
func assertion(cert *x509.Certificate, clientID, endpoint string, now time.Time) (jwt.SigningMethod, map[string]any, jwt.MapClaims) {
	sum := sha256.Sum256(cert.Raw)
	return jwt.SigningMethodPS256,
		map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.StdEncoding.EncodeToString(sum[:])},
		jwt.MapClaims{
			"aud": endpoint, "iss": clientID, "sub": clientID, "jti": newGUID(),
			"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		}
}

// TestCertificateAssertion posts client assertions to the token endpoint and
// checks Entra's answers: a good one (MSAL's shape, and RS256 with a
// base64url x5t) gets a token with appidacr "2"; each fault gets its AADSTS
// code, and no answer quotes the assertion.
func TestCertificateAssertion(t *testing.T) {
	t.Parallel()
	f := newAuth(t)
	reg := readCertFile(t, must(f.tn.WriteClientCertificate(t.TempDir(), f.sp))(t))
	other := readCertFile(t, must(f.tn.WriteClientCertificate(t.TempDir(), f.sp2))(t))
	unknown := readCertFile(t, must(f.tn.WriteUnregisteredCertificate(t.TempDir(), f.sp.Name))(t))
	endpoint := f.auth.URL() + "/" + f.tn.ID() + "/oauth2/v2.0/token"
	sha1x5t := func(c *x509.Certificate) string {
		s := sha1.Sum(c.Raw) // #nosec G401 -- thumbprint
		return base64.RawURLEncoding.EncodeToString(s[:])
	}

	tests := []struct {
		name string
		// edit changes the MSAL-shaped assertion; key signs it (nil: reg's key).
		edit   func(m *jwt.SigningMethod, h map[string]any, c jwt.MapClaims)
		key    any
		skew   time.Duration
		status int
		aadsts int
		msg    string
	}{
		{name: "MSAL shape: PS256, x5t#S256 in standard base64", status: 200},
		{name: "RS256 with base64url x5t", status: 200, edit: func(m *jwt.SigningMethod, h map[string]any, _ jwt.MapClaims) {
			*m = jwt.SigningMethodRS256
			h["alg"] = "RS256"
			delete(h, "x5t#S256")
			h["x5t"] = sha1x5t(reg.cert)
		}},
		{name: "both thumbprints", status: 200, edit: func(_ *jwt.SigningMethod, h map[string]any, _ jwt.MapClaims) {
			h["x5t"] = sha1x5t(reg.cert)
		}},
		{name: "aud is an array", status: 200, edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) {
			c["aud"] = []string{endpoint}
		}},
		{name: "unregistered certificate", key: unknown.key, status: 401, aadsts: 700027, msg: "not registered on application",
			edit: func(_ *jwt.SigningMethod, h map[string]any, _ jwt.MapClaims) {
				s := sha256.Sum256(unknown.cert.Raw)
				h["x5t#S256"] = base64.StdEncoding.EncodeToString(s[:])
			}},
		{name: "another application's certificate", key: other.key, status: 401, aadsts: 700027, msg: "not registered on application",
			edit: func(_ *jwt.SigningMethod, h map[string]any, _ jwt.MapClaims) {
				s := sha256.Sum256(other.cert.Raw)
				h["x5t#S256"] = base64.StdEncoding.EncodeToString(s[:])
			}},
		{name: "x5t and x5t#S256 name different certificates", status: 401, aadsts: 700027, msg: "not registered on application",
			edit: func(_ *jwt.SigningMethod, h map[string]any, _ jwt.MapClaims) { h["x5t"] = sha1x5t(unknown.cert) }},
		{name: "registered thumbprint, wrong key", key: unknown.key, status: 401, aadsts: 700027, msg: "failed signature validation"},
		{name: "HS256", key: []byte("0123456789abcdef0123456789abcdef"), status: 401, aadsts: 700027, msg: "not signed with RS256 or PS256",
			edit: func(m *jwt.SigningMethod, h map[string]any, _ jwt.MapClaims) {
				*m = jwt.SigningMethodHS256
				h["alg"] = "HS256"
			}},
		{name: "no thumbprint", status: 401, aadsts: 700027, msg: "names no certificate thumbprint",
			edit: func(_ *jwt.SigningMethod, h map[string]any, _ jwt.MapClaims) { delete(h, "x5t#S256") }},
		{name: "wrong aud: another tenant's endpoint", status: 401, aadsts: 700023,
			edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) {
				c["aud"] = f.auth.URL() + "/" + newGUID() + "/oauth2/v2.0/token"
			}},
		{name: "wrong aud: missing", status: 401, aadsts: 700023,
			edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) { delete(c, "aud") }},
		{name: "iss is another client", status: 401, aadsts: 700021,
			edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) { c["iss"] = f.sp2.AppID }},
		{name: "sub is another client", status: 401, aadsts: 700021,
			edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) { c["sub"] = f.sp2.AppID }},
		{name: "expired", status: 401, aadsts: 700024, msg: "not within its valid time range",
			edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) {
				c["exp"] = f.tn.Now().Add(-time.Minute).Unix()
				c["nbf"] = f.tn.Now().Add(-11 * time.Minute).Unix()
			}},
		{name: "no exp", status: 401, aadsts: 700024,
			edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) { delete(c, "exp") }},
		{name: "nbf in the future", status: 401, aadsts: 700024,
			edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) {
				c["nbf"] = f.tn.Now().Add(time.Hour).Unix()
				c["exp"] = f.tn.Now().Add(2 * time.Hour).Unix()
			}},
		{name: "no jti", status: 400, aadsts: 50027,
			edit: func(_ *jwt.SigningMethod, _ map[string]any, c jwt.MapClaims) { delete(c, "jti") }},
		{name: "certificate expired on the tenant clock", skew: 25 * time.Hour, status: 401, aadsts: 700027, msg: "key used is expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.tn.SetSkew(tc.skew)
			defer f.tn.SetSkew(0)
			m, h, c := assertion(reg.cert, f.sp.AppID, endpoint, f.tn.Now())
			if tc.edit != nil {
				tc.edit(&m, h, c)
			}
			key := tc.key
			if key == nil {
				key = reg.key
			}
			tok := jwt.NewWithClaims(m, c)
			tok.Header = h
			signed, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			status, body := postAssertion(t, f, f.sp.AppID, signed)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if strings.Contains(body, signed) || strings.Contains(body, strings.Split(signed, ".")[2]) {
				t.Errorf("answer quotes the assertion: %s", body)
			}
			if tc.status == 200 {
				var ok struct {
					AccessToken string `json:"access_token"`
				}
				if err := json.Unmarshal([]byte(body), &ok); err != nil {
					t.Fatal(err)
				}
				if cl := parse(t, f.tn, ok.AccessToken); cl["oid"] != f.sp.ObjectID || cl["appidacr"] != "2" {
					t.Errorf("claims %v", cl)
				}
				return
			}
			var fail struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
				Codes       []int  `json:"error_codes"`
			}
			if err := json.Unmarshal([]byte(body), &fail); err != nil {
				t.Fatal(err)
			}
			if len(fail.Codes) != 1 || fail.Codes[0] != tc.aadsts || !strings.Contains(fail.Description, tc.msg) {
				t.Errorf("answer %s; want AADSTS%d with %q", body, tc.aadsts, tc.msg)
			}
		})
	}
}

// postAssertion sends a client-credentials request authenticated by
// assertion and returns the status and body.
func postAssertion(t *testing.T, f authFixture, clientID, assertion string) (int, string) {
	t.Helper()
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"scope":                 {DatabaseScope},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertion},
	}
	resp, err := f.auth.Client().PostForm(f.auth.URL()+"/"+f.tn.ID()+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(b)
}
