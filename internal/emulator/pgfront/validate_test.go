package pgfront

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestCheckToken(t *testing.T) {
	good, forger := keys(t)
	now := time.Now()
	cfg := Config{TenantID: testTenant, Issuer: testIssuer, Audiences: []string{testAudience, "https://other-aud"}, Resource: testAudience, Keys: testKeys}
	const oid = "0b6c1a2e-0000-0000-0000-9a1f3c2d4e5f"
	user := userClaims(oid, "carol@contoso.com", now)
	app := appClaims(oid, now)
	hs256, err := jwt.NewWithClaims(jwt.SigningMethodHS256, user).SignedString([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	noKID, err := jwt.NewWithClaims(jwt.SigningMethodRS256, user).SignedString(good)
	if err != nil {
		t.Fatal(err)
	}
	valid := mint(t, good, testKID, user)

	tests := []struct {
		name     string
		token    string
		wantMsg  string // "" means valid
		wantKind string
	}{
		{"user token", valid, "", TypeUser},
		{"app token", mint(t, good, testKID, app), "", TypeService},
		{"aud list with one accepted", mint(t, good, testKID, with(user, jwt.MapClaims{"aud": []string{"x", "https://other-aud"}})), "", TypeUser},
		{"no idtyp but scp is a user", mint(t, good, testKID, with(user, jwt.MapClaims{"idtyp": nil})), "", TypeUser},
		{"no idtyp, no scp, no upn is an app", mint(t, good, testKID, with(app, jwt.MapClaims{"idtyp": nil})), "", TypeService},
		{"no nbf is fine", mint(t, good, testKID, with(user, jwt.MapClaims{"nbf": nil})), "", TypeUser},
		{"empty", "", MsgInvalidFormat, ""},
		{"not a JWT", "hunter2", MsgInvalidFormat, ""},
		{"two segments", "a.b", MsgInvalidFormat, ""},
		{"garbage base64", "!!!.???.***", MsgInvalidFormat, ""},
		{"forged signature", mint(t, forger, testKID, user), generic(ReasonSignature), ""},
		{"truncated signature", valid[:len(valid)-8], generic(ReasonSignature), ""},
		{"unknown kid", mint(t, good, "other-kid", user), generic(ReasonSignature), ""},
		{"no kid", noKID, generic(ReasonSignature), ""},
		{"HS256", hs256, generic(ReasonSignature), ""},
		{"management audience", mint(t, good, testKID, with(user, jwt.MapClaims{"aud": "https://management.azure.com/"})), MsgInvalidAudience(testAudience), ""},
		{"no audience", mint(t, good, testKID, with(user, jwt.MapClaims{"aud": nil})), MsgInvalidAudience(testAudience), ""},
		{"numeric audience", mint(t, good, testKID, with(user, jwt.MapClaims{"aud": 5})), MsgInvalidAudience(testAudience), ""},
		{"audience list with a number", mint(t, good, testKID, with(user, jwt.MapClaims{"aud": []any{testAudience, 5}})), MsgInvalidFormat, ""},
		{"v2 issuer", mint(t, good, testKID, with(user, jwt.MapClaims{"iss": "https://login.microsoftonline.com/" + testTenant + "/v2.0"})), generic(ReasonIssuer), ""},
		{"other tenant", mint(t, good, testKID, with(user, jwt.MapClaims{"tid": "00000000-0000-0000-0000-000000000000"})), generic(ReasonTenant), ""},
		{"nbf in the future", mint(t, good, testKID, with(user, jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()})), generic(ReasonNotYetValid), ""},
		{"expired", mint(t, good, testKID, with(user, jwt.MapClaims{"exp": now.Add(-time.Second).Unix()})), MsgTokenExpired, ""},
		{"no exp", mint(t, good, testKID, with(user, jwt.MapClaims{"exp": nil})), MsgInvalidFormat, ""},
		{"string exp", mint(t, good, testKID, with(user, jwt.MapClaims{"exp": "tomorrow"})), MsgInvalidFormat, ""},
		{"no oid", mint(t, good, testKID, with(user, jwt.MapClaims{"oid": nil})), MsgInvalidFormat, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, lerr := cfg.checkToken(tc.token, now)
			if tc.wantMsg == "" {
				if lerr != nil {
					t.Fatalf("checkToken refused a valid token: %v", lerr)
				}
				if id.oid != oid || id.kind != tc.wantKind {
					t.Fatalf("identity = %+v, want oid %s kind %s", id, oid, tc.wantKind)
				}
				return
			}
			if lerr == nil {
				t.Fatalf("checkToken accepted the token, want %q", tc.wantMsg)
			}
			if got := refusalText(lerr); got != tc.wantMsg || lerr.code != CodeInvalidAuthorization {
				t.Fatalf("refusal = %s %q, want %s %q", lerr.code, got, CodeInvalidAuthorization, tc.wantMsg)
			}
			if tc.token != "" && len(tc.token) > 10 && strings.Contains(lerr.Error(), tc.token) {
				t.Fatal("refusal contains the token")
			}
		})
	}
}

func TestCheckTokenClock(t *testing.T) {
	good, _ := keys(t)
	issued := time.Now()
	tok := mint(t, good, testKID, userClaims("oid-1", "u@contoso.com", issued))
	cfg := Config{TenantID: testTenant, Issuer: testIssuer, Audiences: []string{testAudience}, Resource: testAudience, Keys: testKeys}
	for _, tc := range []struct {
		name string
		now  time.Time
		want string
	}{
		{"server clock 2h ahead", issued.Add(2 * time.Hour), MsgTokenExpired},
		{"server clock 10m behind", issued.Add(-10 * time.Minute), generic(ReasonNotYetValid)},
		{"exactly at exp", issued.Add(time.Hour), MsgTokenExpired},
		{"in window", issued.Add(30 * time.Minute), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, lerr := cfg.checkToken(tok, tc.now.Truncate(time.Second))
			got := ""
			if lerr != nil {
				got = refusalText(lerr)
			}
			if got != tc.want {
				t.Fatalf("refusal %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := Listen("127.0.0.1:0", Config{}); err == nil {
		t.Fatal("Listen with an empty Config succeeded")
	} else {
		for _, want := range []string{"BackendNetwork", "AdminDB", "TenantID", "audience", "Keys"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	}
	c := Config{RequireTLS: true}
	if _, err := c.withDefaults(); err == nil || !strings.Contains(err.Error(), "RequireTLS needs TLS") {
		t.Fatalf("RequireTLS without TLS: error %v", err)
	}
}

// generic is how refusalText shows Azure's generic refusal for reason.
func generic(reason string) string { return MsgValidationFailed + " (" + reason + ")" }

// refusalText is the message sent, followed by the emulator's reason when there is one.
func refusalText(e *loginError) string {
	if e.reason != "" {
		return e.msg + " (" + e.reason + ")"
	}
	return e.msg
}
