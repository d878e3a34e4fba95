package pgfront

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Test tenant, shaped like the claim sets of Azure's tokens.
const (
	testTenant   = "72f988bf-0000-0000-0000-2d7cd011db47"
	testIssuer   = "https://sts.windows.net/" + testTenant + "/"
	testAudience = "https://ossrdbms-aad.database.windows.net"
	testKID      = "test-kid-1"
)

var (
	keysOnce  sync.Once
	testKey   *rsa.PrivateKey // signs good tokens, kid testKID
	otherKey  *rsa.PrivateKey // signs forged tokens with kid testKID
	errKeyGen error
)

func keys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		testKey, errKeyGen = rsa.GenerateKey(rand.Reader, 2048)
		if errKeyGen == nil {
			otherKey, errKeyGen = rsa.GenerateKey(rand.Reader, 2048)
		}
	})
	if errKeyGen != nil {
		t.Fatal(errKeyGen)
	}
	return testKey, otherKey
}

// testKeys is Config.Keys for the test tenant.
func testKeys(kid string) (*rsa.PublicKey, error) {
	if kid != testKID {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return &testKey.PublicKey, nil
}

// userClaims is a database-scope token of an Entra user signed in with the Azure CLI.
func userClaims(oid, upn string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"aud": testAudience, "iss": testIssuer,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"acr": "1", "amr": []string{"pwd", "mfa"}, "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "appidacr": "0",
		"idtyp": "user", "name": "Test User", "oid": oid, "scp": "user_impersonation", "sub": "kP3x-" + oid,
		"tid": testTenant, "unique_name": upn, "upn": upn, "ver": "1.0",
	}
}

// appClaims is a database-scope managed-identity / service-principal token.
func appClaims(oid string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"aud": testAudience, "iss": testIssuer,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(24 * time.Hour).Unix(),
		"aio": "E2Zg", "appid": "5a9b7c1d-0000-0000-0000-6e2f8a3b4c5d", "appidacr": "2",
		"idp": testIssuer, "idtyp": "app", "oid": oid, "sub": oid, "tid": testTenant, "ver": "1.0",
	}
}

// with returns a copy of c with the changes applied; a nil value deletes the claim.
func with(c jwt.MapClaims, changes jwt.MapClaims) jwt.MapClaims {
	out := maps.Clone(c)
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// mint signs claims with key as RS256 with kid.
func mint(t testing.TB, key *rsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
