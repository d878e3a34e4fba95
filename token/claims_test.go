package token

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// jwt builds an unsigned-looking JWT around a JSON payload.
func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT","kid":"test"}`)) + "." + enc([]byte(payload)) + ".c2lnbmF0dXJl"
}

// Claim sets shaped like Azure's tokens.
const (
	claimsUser = `{"aud":"https://ossrdbms-aad.database.windows.net","iss":"https://sts.windows.net/72f988bf-0000-0000-0000-2d7cd011db47/",
 "iat":1764339000,"nbf":1764339000,"exp":1764343500,
 "acr":"1","amr":["pwd","mfa"],"appid":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","appidacr":"0",
 "family_name":"Smith","given_name":"Carol","idtyp":"user","ipaddr":"203.0.113.7","name":"Carol Smith",
 "oid":"0b6c1a2e-0000-0000-0000-9a1f3c2d4e5f","puid":"10032000ABCDEF12","scp":"user_impersonation",
 "sub":"kP3x...","tid":"72f988bf-0000-0000-0000-2d7cd011db47",
 "unique_name":"carol@contoso.com","upn":"carol@contoso.com","ver":"1.0"}`
	claimsMIDatabase = `{"aud":"https://ossrdbms-aad.database.windows.net","iss":"https://sts.windows.net/72f988bf-0000-0000-0000-2d7cd011db47/",
 "iat":1764339000,"nbf":1764339000,"exp":1764425700,
 "aio":"E2Zg...","appid":"5a9b7c1d-0000-0000-0000-6e2f8a3b4c5d","appidacr":"2",
 "idp":"https://sts.windows.net/72f988bf-0000-0000-0000-2d7cd011db47/","idtyp":"app",
 "oid":"9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f","sub":"9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f",
 "tid":"72f988bf-0000-0000-0000-2d7cd011db47","ver":"1.0"}`
	claimsMIManagementUser = `{"aud":"https://management.azure.com/","iss":"https://sts.windows.net/72f988bf-0000-0000-0000-2d7cd011db47/",
 "iat":1764339000,"nbf":1764339000,"exp":1764425700,
 "appid":"5a9b7c1d-0000-0000-0000-6e2f8a3b4c5d","appidacr":"2","idtyp":"app",
 "oid":"9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f","sub":"9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f",
 "tid":"72f988bf-0000-0000-0000-2d7cd011db47","ver":"1.0",
 "xms_mirid":"/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-orders",
 "xms_az_rid":"/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"}`
	claimsMIManagementVM = `{"aud":"https://management.azure.com/","idtyp":"app","oid":"1","exp":1764425700,
 "xms_mirid":"/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"}`
	claimsMIManagementApp = `{"aud":"https://management.azure.com/","idtyp":"app","oid":"2",
 "xms_mirid":"/subscriptions/0/resourcegroups/rg/providers/Microsoft.Web/sites/orders-api/"}`
	claimsServicePrincipal = `{"aud":"https://ossrdbms-aad.database.windows.net","iss":"https://sts.windows.net/72f988bf-0000-0000-0000-2d7cd011db47/",
 "iat":1764339000,"nbf":1764339000,"exp":1764342900,
 "appid":"3f2e1d0c-0000-0000-0000-b9a8c7d6e5f4","appidacr":"1","idtyp":"app",
 "oid":"7a6b5c4d-0000-0000-0000-3e2f1a0b9c8d","sub":"7a6b5c4d-0000-0000-0000-3e2f1a0b9c8d",
 "tid":"72f988bf-0000-0000-0000-2d7cd011db47","ver":"1.0"}`
)

func TestParseClaimsPrincipalKinds(t *testing.T) {
	tests := []struct {
		name, payload, wantName, wantString string
		check                               func(t *testing.T, c Claims)
	}{
		{"user", claimsUser, "carol@contoso.com",
			"oid=0b6c1a2e-0000-0000-0000-9a1f3c2d4e5f appid=04b07795-8ddb-461a-bbee-02f9e1bf7b46 upn=carol@contoso.com idtyp=user",
			func(t *testing.T, c Claims) {
				want := Claims{
					Audience: "https://ossrdbms-aad.database.windows.net", Issuer: "https://sts.windows.net/72f988bf-0000-0000-0000-2d7cd011db47/",
					TenantID: "72f988bf-0000-0000-0000-2d7cd011db47", ObjectID: "0b6c1a2e-0000-0000-0000-9a1f3c2d4e5f",
					AppID: "04b07795-8ddb-461a-bbee-02f9e1bf7b46", IdentityType: "user", UPN: "carol@contoso.com",
					UniqueName: "carol@contoso.com", IssuedAt: time.Unix(1764339000, 0).UTC(),
					NotBefore: time.Unix(1764339000, 0).UTC(), ExpiresAt: time.Unix(1764343500, 0).UTC(),
				}
				if c != want {
					t.Errorf("claims = %#v\nwant %#v", c, want)
				}
			}},
		{"managed identity, database scope: no name", claimsMIDatabase, "",
			"oid=9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f appid=5a9b7c1d-0000-0000-0000-6e2f8a3b4c5d idtyp=app", nil},
		{"user-assigned managed identity, management scope", claimsMIManagementUser, "id-orders", "", func(t *testing.T, c Claims) {
			if c.Audience != "https://management.azure.com/" || !strings.HasSuffix(c.MIResourceID, "/id-orders") {
				t.Errorf("claims = %#v", c)
			}
		}},
		{"system-assigned VM identity", claimsMIManagementVM, "vm-web-01", "oid=1 idtyp=app", nil},
		{"App Service identity, trailing slash", claimsMIManagementApp, "orders-api", "", nil},
		{"service principal: no name", claimsServicePrincipal, "", "", func(t *testing.T, c Claims) {
			if c.AppID != "3f2e1d0c-0000-0000-0000-b9a8c7d6e5f4" || c.IdentityType != "app" {
				t.Errorf("claims = %#v", c)
			}
		}},
		{"aud array, v2 azp, preferred_username, fractional exp",
			`{"aud":["api://a","api://b"],"azp":"app-2","preferred_username":"dan@contoso.com","unique_name":"x","exp":1764343500.25,"upn":null}`,
			"dan@contoso.com", "appid=app-2", func(t *testing.T, c Claims) {
				if c.Audience != "api://a" || !c.ExpiresAt.Equal(time.Unix(1764343500, 250e6)) {
					t.Errorf("claims = %#v", c)
				}
			}},
		{"unique_name last", `{"unique_name":"live.com#eve@example.com","aud":[]}`, "live.com#eve@example.com", "", nil},
		{"odd values are quoted in String", `{"oid":"a b","upn":"x\ny"}`, "x\ny", `oid="a b" upn="x\ny"`, nil},
		{"empty object", `{}`, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseClaims(jwt(tt.payload))
			if err != nil {
				t.Fatalf("ParseClaims: %v", err)
			}
			if got := c.PrincipalName(); got != tt.wantName {
				t.Errorf("PrincipalName() = %q, want %q", got, tt.wantName)
			}
			if tt.wantString != "" && c.String() != tt.wantString {
				t.Errorf("String() = %q, want %q", c.String(), tt.wantString)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestParseClaimsPaddedPayload(t *testing.T) {
	enc := base64.URLEncoding.EncodeToString([]byte(`{"upn":"a@b.c"}`)) // "=" padded
	c, err := ParseClaims("e30." + enc + ".sig")
	if err != nil || c.UPN != "a@b.c" {
		t.Fatalf("padded payload: (%#v, %v)", c, err)
	}
}

func TestParseClaimsGarbage(t *testing.T) {
	secret := "SECRETSECRETSECRET"
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, token string
		want        error
		wantMsg     string
	}{
		{"empty", "", errNotJWT, ""},
		{"one part", secret, errNotJWT, ""},
		{"two parts", secret + "." + secret, errNotJWT, ""},
		{"four parts", "a." + secret + ".c.d", errNotJWT, ""},
		{"bad base64", "a." + secret + "!!.c", errBase64, ""},
		{"standard base64 alphabet", "a." + b64(`{"upn":"` + secret + `??>"}`)[:8] + "+/+/.c", errBase64, ""},
		{"not JSON", "a." + b64(secret) + ".c", errJSON, ""},
		{"JSON array", "a." + b64(`["`+secret+`"]`) + ".c", errJSON, ""},
		{"JSON null", "a." + b64(`null`) + ".c", errJSON, ""},
		{"truncated JSON", "a." + b64(`{"upn":"`+secret) + ".c", errJSON, ""},
		{"empty payload", "a..c", errJSON, ""},
		{"exp is a string", "a." + b64(`{"exp":"`+secret+`"}`) + ".c", errClaimTypes, "(exp)"},
		{"exp out of range", "a." + b64(`{"exp":1e300}`) + ".c", errClaimTypes, "(exp)"},
		{"upn is a number", "a." + b64(`{"upn":12345678901234567890}`) + ".c", errClaimTypes, "(upn)"},
		{"aud array of numbers", "a." + b64(`{"aud":[1]}`) + ".c", errClaimTypes, "(aud)"},
		{"xms_mirid is an object", "a." + b64(`{"xms_mirid":{"`+secret+`":1}}`) + ".c", errClaimTypes, "(xms_mirid)"},
		{"oversized", jwt(`{"upn":"` + strings.Repeat(secret, 4000) + `"}`), errTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseClaims(tt.token)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if c != (Claims{}) {
				t.Errorf("claims on error = %#v, want zero", c)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "12345") {
				t.Errorf("error contains token content: %q", err)
			}
		})
	}
}

// sizedJWT is a token of exactly n bytes whose upn is a@b.c.
func sizedJWT(t *testing.T, n int) string {
	t.Helper()
	short := jwt(`{"upn":"a@b.c","pad":""}`)
	// Each 3 bytes of padding in the payload add 4 base64 characters.
	pad := (n - len(short)) / 4 * 3
	tok := jwt(`{"upn":"a@b.c","pad":"` + strings.Repeat("x", pad) + `"}`)
	tok += strings.Repeat("A", n-len(tok)) // lengthen the signature to the exact size
	if len(tok) != n {
		t.Fatalf("sizedJWT: %d bytes, want %d", len(tok), n)
	}
	return tok
}

// One limit for the whole library: ParseClaims reads every token PostgreSQL
// would take as a password (the driver refuses longer ones before dialing),
// so a token of 20 KiB — larger than Entra's usual, well within PostgreSQL's
// — still names its principal, and only a token PostgreSQL could not take is
// refused.
func TestParseClaimsSizeLimit(t *testing.T) {
	if MaxTokenSize != 65535 {
		t.Fatalf("MaxTokenSize = %d, want PostgreSQL's password limit 65535", MaxTokenSize)
	}
	for _, n := range []int{20 << 10, MaxTokenSize} {
		c, err := ParseClaims(sizedJWT(t, n))
		if err != nil || c.UPN != "a@b.c" {
			t.Errorf("a %d-byte token: (%q, %v); want its upn", n, c.UPN, err)
		}
	}
	if _, err := ParseClaims(sizedJWT(t, MaxTokenSize+1)); !errors.Is(err, errTooLarge) {
		t.Errorf("a %d-byte token: %v; want errTooLarge", MaxTokenSize+1, err)
	}
}
