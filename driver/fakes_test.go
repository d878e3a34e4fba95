package driver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// secretMarker is in every fake token, so leak checks can grep for it.
const secretMarker = "SECRETTOKENMARKER"

// fakeJWT builds an unsigned JWT-shaped token with the given claims. The
// signature part carries secretMarker and a serial number, so every token
// is distinct and recognisable.
func fakeJWT(claims map[string]any, serial int) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	p, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + secretMarker + fmt.Sprintf("%06d", serial)
}

const tenant = "72f988bf-0000-0000-0000-2d7cd011db47"

// Claim sets shaped like Azure's tokens.
func userClaims() map[string]any {
	return map[string]any{"aud": "https://ossrdbms-aad.database.windows.net", "iss": "https://sts.windows.net/" + tenant + "/",
		"tid": tenant, "oid": "0b6c1a2e-0000-0000-0000-9a1f3c2d4e5f", "idtyp": "user", "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
		"upn": "carol@contoso.com", "unique_name": "carol@contoso.com", "ver": "1.0"}
}

func miDBClaims() map[string]any {
	return map[string]any{"aud": "https://ossrdbms-aad.database.windows.net", "iss": "https://sts.windows.net/" + tenant + "/",
		"tid": tenant, "oid": "9c8d7e6f-0000-0000-0000-1a2b3c4d5e6f", "idtyp": "app", "appid": "5a9b7c1d-0000-0000-0000-6e2f8a3b4c5d", "ver": "1.0"}
}

func miMgmtClaims(mirid string) map[string]any {
	c := miDBClaims()
	c["aud"] = "https://management.azure.com/"
	c["xms_mirid"] = mirid
	return c
}

func spClaims() map[string]any {
	return map[string]any{"aud": "https://ossrdbms-aad.database.windows.net", "iss": "https://sts.windows.net/" + tenant + "/",
		"tid": tenant, "oid": "7a6b5c4d-0000-0000-0000-3e2f1a0b9c8d", "idtyp": "app", "appid": "3f2e1d0c-0000-0000-0000-b9a8c7d6e5f4", "ver": "1.0"}
}

// fakeCredential issues fakeJWTs. Database-scope and management-scope
// requests get their own claim sets, like a real managed identity.
type fakeCredential struct {
	mu        sync.Mutex
	claims    map[string]any // database scope
	mgmt      map[string]any // management scope; nil → same as claims
	lifetime  time.Duration
	now       func() time.Time // clock for ExpiresOn; time.Now when nil
	err       error
	delay     time.Duration
	mgmtErr   error         // management scope only
	mgmtBlock chan struct{} // management-scope requests wait for it (or their ctx)
	serial    int
	last      string
	calls     atomic.Int32
	mgmtCalls atomic.Int32
}

func (f *fakeCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	mgmt := len(o.Scopes) == 1 && o.Scopes[0] == "https://management.azure.com/.default"
	if mgmt {
		f.mgmtCalls.Add(1)
		if f.mgmtBlock != nil {
			select {
			case <-f.mgmtBlock:
			case <-ctx.Done():
				return azcore.AccessToken{}, ctx.Err()
			}
		}
		if f.mgmtErr != nil {
			return azcore.AccessToken{}, f.mgmtErr
		}
	} else {
		f.calls.Add(1)
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return azcore.AccessToken{}, f.err
	}
	f.serial++
	c := f.claims
	if mgmt && f.mgmt != nil {
		c = f.mgmt
	}
	lt := f.lifetime
	if lt == 0 {
		lt = time.Hour
	}
	tok := fakeJWT(c, f.serial)
	if !mgmt {
		f.last = tok
	}
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: now().Add(lt)}, nil
}

// next returns the token the next GetToken will issue, and makes it so.
func (f *fakeCredential) peekNext() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeJWT(f.claims, f.serial+1)
}

func (f *fakeCredential) lastToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

var errCredential = errors.New("fake credential: identity endpoint said no")

func scopeOpts(scope string) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{scope}}
}

type policyOpts = policy.TokenRequestOptions
