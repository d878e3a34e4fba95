package entra

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestNewTenantOptions(t *testing.T) {
	t.Parallel()
	if _, err := NewTenant(TenantOptions{TenantID: "contoso"}); err == nil {
		t.Error("NewTenant accepted a non-GUID tenant ID")
	}
	const tid = "72F988BF-0000-0000-0000-2D7CD011DB47"
	tn := must(NewTenant(TenantOptions{TenantID: tid, TokenLifetime: 7 * time.Second}))(t)
	if tn.ID() != strings.ToLower(tid) {
		t.Errorf("ID() = %q", tn.ID())
	}
	if want := "https://sts.windows.net/" + strings.ToLower(tid) + "/"; tn.Issuer() != want {
		t.Errorf("Issuer() = %q, want %q", tn.Issuer(), want)
	}
	if _, err := tn.PublicKey("nope"); err == nil {
		t.Error("PublicKey accepted an unknown kid")
	}
	u := must(tn.AddUser("carol@contoso.com"))(t)
	_, exp := must2(tn.Mint(u, DatabaseScope, 0))(t)
	if d := time.Until(exp); d < 5*time.Second || d > 8*time.Second {
		t.Errorf("tenant lifetime not applied: expires in %v", d)
	}
}

func TestPrincipals(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	ua := must(tn.AddUserAssignedIdentity("id-orders"))(t)
	vm := must(tn.AddSystemAssignedVM("vm-web-01"))(t)
	app := must(tn.AddSystemAssignedWebApp("app-orders"))(t)
	u := must(tn.AddUser("carol@contoso.com"))(t)
	sp := must(tn.AddServicePrincipal("Orders API"))(t)

	prefix := "/subscriptions/" + tn.SubscriptionID() + "/resourcegroups/rg-app/providers/"
	tests := []struct {
		p                  Principal
		kind               Kind
		name, typ, resID   string
		secret, federation bool
	}{
		{ua, UserAssignedIdentity, "id-orders", "service", prefix + "Microsoft.ManagedIdentity/userAssignedIdentities/id-orders", false, false},
		{vm, SystemAssignedIdentity, "vm-web-01", "service", prefix + "Microsoft.Compute/virtualMachines/vm-web-01", false, false},
		{app, SystemAssignedIdentity, "app-orders", "service", prefix + "Microsoft.Web/sites/app-orders", false, false},
		{u, User, "carol@contoso.com", "user", "", false, false},
		{sp, ServicePrincipal, "Orders API", "service", "", true, true},
	}
	for _, tc := range tests {
		p := tc.p
		if p.Kind != tc.kind || p.Name != tc.name || p.Type() != tc.typ || p.ResourceID != tc.resID {
			t.Errorf("%v: got kind %v name %q type %q resource %q", tc.name, p.Kind, p.Name, p.Type(), p.ResourceID)
		}
		if !isGUID(p.ObjectID) || !isGUID(p.AppID) {
			t.Errorf("%v: ids %q %q are not GUIDs", tc.name, p.ObjectID, p.AppID)
		}
		if (p.ClientSecret != "") != tc.secret || (p.FederatedSubject != "") != tc.federation {
			t.Errorf("%v: secret/federation presence wrong", tc.name)
		}
		if got, ok := tn.ByName(strings.ToUpper(p.Name)); !ok || got.ObjectID != p.ObjectID {
			t.Errorf("ByName(%q) failed", p.Name)
		}
		if got, ok := tn.ByObjectID(p.ObjectID); !ok || got.Name != p.Name {
			t.Errorf("ByObjectID(%q) failed", p.Name)
		}
		if got, ok := tn.ByClientID(p.AppID); ok != (p.Kind != User) || (ok && got.Name != p.Name) {
			t.Errorf("ByClientID(%q) = %v, %v", p.Name, got, ok)
		}
		if p.ResourceID != "" {
			if got, ok := tn.ByResourceID(strings.ToUpper(p.ResourceID)); !ok || got.Name != p.Name {
				t.Errorf("ByResourceID(%q) failed", p.Name)
			}
		}
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			if p.ClientSecret != "" && strings.Contains(fmt.Sprintf(format, p), p.ClientSecret) {
				t.Errorf("%s of a principal prints its client secret", format)
			}
		}
	}
	if got := len(tn.Principals()); got != len(tests) {
		t.Errorf("Principals() has %d entries, want %d", got, len(tests))
	}
	if _, err := tn.AddUserAssignedIdentity("ID-ORDERS"); err == nil {
		t.Error("duplicate name accepted")
	}
	for _, bad := range []func() (Principal, error){
		func() (Principal, error) { return tn.AddUser("no-at-sign") },
		func() (Principal, error) { return tn.AddUserAssignedIdentity("a/b") },
		func() (Principal, error) { return tn.AddSystemAssignedVM("") },
		func() (Principal, error) { return tn.AddServicePrincipal(" ") },
	} {
		if p, err := bad(); err == nil {
			t.Errorf("invalid principal accepted: %v", p)
		}
	}
}

func TestNormalizeAudience(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		DatabaseScope:                                      DatabaseAudience,
		DatabaseAudience:                                   DatabaseAudience,
		ManagementScope:                                    ManagementAudience,
		"https://management.azure.com":                     ManagementAudience,
		"https://management.azure.com/":                    ManagementAudience,
		"api://my-app/.default":                            "api://my-app",
		"https://token.postgres.cosmos.azure.com/.default": "https://token.postgres.cosmos.azure.com",
	} {
		if got := NormalizeAudience(in); got != want {
			t.Errorf("NormalizeAudience(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMintClaimsByKind checks the claim shapes of Azure's tokens, including the
// trap: managed-identity tokens carry xms_mirid only for the ARM audience.
func TestMintClaimsByKind(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	vm := must(tn.AddSystemAssignedVM("vm-web-01"))(t)
	ua := must(tn.AddUserAssignedIdentity("id-orders"))(t)
	u := must(tn.AddUser("carol@contoso.com"))(t)
	sp := must(tn.AddServicePrincipal("orders-api"))(t)

	tests := []struct {
		name                     string
		p                        Principal
		scope, aud               string
		idtyp, appidacr          string
		mirid, azrid, upn, named bool
	}{
		{"user db", u, DatabaseScope, DatabaseAudience, "user", "0", false, false, true, true},
		{"user mgmt", u, ManagementScope, ManagementAudience, "user", "0", false, false, true, true},
		{"system db", vm, DatabaseScope, DatabaseAudience, "app", "2", false, false, false, false},
		{"system mgmt", vm, ManagementScope, ManagementAudience, "app", "2", true, false, false, false},
		{"user-assigned db", ua, DatabaseAudience, DatabaseAudience, "app", "2", false, false, false, false},
		{"user-assigned mgmt", ua, "https://management.azure.com", ManagementAudience, "app", "2", true, true, false, false},
		{"sp db", sp, DatabaseScope, DatabaseAudience, "app", "1", false, false, false, false},
		{"sp mgmt", sp, ManagementScope, ManagementAudience, "app", "1", false, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, exp := must2(tn.Mint(tc.p, tc.scope, 30*time.Second))(t)
			c := parse(t, tn, tok)
			str := func(k string) string { s, _ := c[k].(string); return s }
			if str("aud") != tc.aud || str("tid") != tn.ID() || str("oid") != tc.p.ObjectID || str("ver") != "1.0" {
				t.Errorf("aud/tid/oid/ver = %q %q %q %q", str("aud"), str("tid"), str("oid"), str("ver"))
			}
			if str("idtyp") != tc.idtyp || str("appidacr") != tc.appidacr || str("appid") != tc.p.AppID {
				t.Errorf("idtyp/appidacr/appid = %q %q %q", str("idtyp"), str("appidacr"), str("appid"))
			}
			for _, k := range []string{"aio", "rh", "uti", "sub"} {
				if str(k) == "" {
					t.Errorf("claim %s missing", k)
				}
			}
			if tc.p.Kind != User && str("sub") != tc.p.ObjectID {
				t.Errorf("app token sub = %q, want oid", str("sub"))
			}
			if got := str("xms_mirid"); (got != "") != tc.mirid || (tc.mirid && got != tc.p.ResourceID) {
				t.Errorf("xms_mirid = %q, want present=%v (%q)", got, tc.mirid, tc.p.ResourceID)
			}
			if got := str("xms_az_rid"); (got != "") != tc.azrid || (tc.azrid && got != vm.ResourceID) {
				t.Errorf("xms_az_rid = %q, want present=%v", got, tc.azrid)
			}
			if (str("upn") == tc.p.UPN && tc.p.UPN != "") != tc.upn || (str("name") != "") != tc.named {
				t.Errorf("upn/name = %q %q", str("upn"), str("name"))
			}
			iat, _ := c.GetIssuedAt()
			nbf, _ := c.GetNotBefore()
			cexp, _ := c.GetExpirationTime()
			if !cexp.Equal(exp) || cexp.Sub(iat.Time) != 30*time.Second || !nbf.Equal(iat.Time) {
				t.Errorf("iat %v nbf %v exp %v (returned %v)", iat, nbf, cexp, exp)
			}
			if got := tn.Minted(tc.p, tc.aud); got != 1 {
				t.Errorf("Minted = %d, want 1", got)
			}
		})
	}
	other := must(NewTenant(TenantOptions{}))(t)
	stranger := must(other.AddUser("eve@fabrikam.com"))(t)
	if _, _, err := tn.Mint(stranger, DatabaseScope, 0); err == nil {
		t.Error("Mint issued a token for a principal of another tenant")
	}
	if _, _, err := tn.Mint(u, "", 0); err == nil {
		t.Error("Mint accepted an empty audience")
	}
}

func TestMintRawSkewAndLifetimes(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	sp := must(tn.AddServicePrincipal("orders-api"))(t)
	keyfunc := func(tk *jwt.Token) (any, error) { kid, _ := tk.Header["kid"].(string); return tn.PublicKey(kid) }

	c, _ := must2(tn.Claims(sp, DatabaseScope, 0))(t)
	c["nbf"] = time.Now().Add(time.Hour).Unix()
	c["aud"] = "https://wrong.example"
	raw := must(tn.MintRaw(c))(t)
	if _, err := jwt.Parse(raw, keyfunc); !errors.Is(err, jwt.ErrTokenNotValidYet) {
		t.Errorf("future nbf: err = %v", err)
	}
	if _, err := jwt.Parse(raw, keyfunc, jwt.WithAudience(DatabaseAudience), jwt.WithLeeway(2*time.Hour)); !errors.Is(err, jwt.ErrTokenInvalidAudience) {
		t.Errorf("wrong aud: err = %v", err)
	}
	if n := tn.Minted(sp, DatabaseAudience); n != 0 {
		t.Errorf("Claims/MintRaw counted as minted: %d", n)
	}

	tn.SetSkew(-time.Hour)
	if d := time.Since(tn.Now()); d < 59*time.Minute {
		t.Errorf("Now() not skewed: %v behind", d)
	}
	tok, exp := must2(tn.Mint(sp, DatabaseScope, 10*time.Minute))(t)
	if _, err := jwt.Parse(tok, keyfunc); !errors.Is(err, jwt.ErrTokenExpired) || time.Until(exp) > -49*time.Minute {
		t.Errorf("skewed token: err = %v, expires in %v", err, time.Until(exp))
	}
	tn.SetSkew(0)

	tn.SetTokenLifetime(40 * time.Second)
	lifetime := func() time.Duration {
		_, exp := must2(tn.Mint(sp, DatabaseScope, 0))(t)
		return time.Until(exp).Round(10 * time.Second)
	}
	if got := lifetime(); got != 40*time.Second {
		t.Errorf("tenant lifetime: %v", got)
	}
	if err := tn.SetPrincipalLifetime(sp, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := lifetime(); got != 20*time.Second {
		t.Errorf("principal lifetime: %v", got)
	}
	if got := tn.Minted(sp, DatabaseScope); got != 3 {
		t.Errorf("Minted = %d, want 3", got)
	}
}

func TestJWKSVerifiesTokens(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	u := must(tn.AddUser("carol@contoso.com"))(t)
	var set struct {
		Keys []struct{ Kty, Kid, N, E string } `json:"keys"`
	}
	if err := json.Unmarshal(tn.JWKS(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS: %v, %d keys", err, len(set.Keys))
	}
	k := set.Keys[0]
	n, _ := base64.RawURLEncoding.DecodeString(k.N)
	e, _ := base64.RawURLEncoding.DecodeString(k.E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	tok, _ := must2(tn.Mint(u, DatabaseScope, 0))(t)
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil })
	if err != nil || k.Kty != "RSA" || k.Kid != tn.KeyID() || parsed.Header["kid"] != tn.KeyID() {
		t.Errorf("JWKS key does not verify: %v (kid %q vs %q)", err, k.Kid, tn.KeyID())
	}
	if other := newTenant(t); other.KeyID() == tn.KeyID() {
		t.Error("two tenants share a kid")
	}
}

// TestDefaultLifetimesLikeAzure: without a lifetime, managed identities get
// 24-hour tokens and users and service principals one-hour tokens, as on
// Azure; a tenant lifetime overrides them all and SetTokenLifetime(0) goes
// back to the defaults.
func TestDefaultLifetimesLikeAzure(t *testing.T) {
	tn := must(NewTenant(TenantOptions{}))(t)
	ua := must(tn.AddUserAssignedIdentity("id-life"))(t)
	vm := must(tn.AddSystemAssignedVM("vm-life"))(t)
	u := must(tn.AddUser("life@contoso.com"))(t)
	sp := must(tn.AddServicePrincipal("sp-life"))(t)
	lifetime := func(p Principal) time.Duration {
		t.Helper()
		c, exp, err := tn.Claims(p, DatabaseScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		iat, _ := c["iat"].(int64)
		return exp.Sub(time.Unix(iat, 0))
	}
	check := func(when string, want map[string]time.Duration) {
		t.Helper()
		for _, p := range []Principal{ua, vm, u, sp} {
			if got := lifetime(p); got != want[p.Name] {
				t.Errorf("%s: %s token lives %v, want %v", when, p.Kind, got, want[p.Name])
			}
		}
	}
	azure := map[string]time.Duration{ua.Name: 24 * time.Hour, vm.Name: 24 * time.Hour, u.Name: time.Hour, sp.Name: time.Hour}
	check("defaults", azure)
	tn.SetTokenLifetime(ShortTestLifetime)
	check("tenant lifetime", map[string]time.Duration{ua.Name: ShortTestLifetime, vm.Name: ShortTestLifetime, u.Name: ShortTestLifetime, sp.Name: ShortTestLifetime})
	tn.SetTokenLifetime(0)
	check("restored", azure)
}
