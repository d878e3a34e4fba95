package entra

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // #nosec G505 -- x5t/kid thumbprints are SHA-1 by definition, not a security use
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Default token lifetimes, like Azure's (docs/azure-behavior.md, "Tokens"): a tenant
// whose TenantOptions.TokenLifetime is zero issues managed-identity tokens
// valid for 24 hours and user and service-principal tokens valid for one hour.
//
// MSAL caches tokens with more than 5 minutes left, managed-identity tokens
// process-wide (keyed by identity and resource, not by tenant), so with these
// defaults a test binary that starts several tenants may be handed one
// tenant's token for another's identity. Tests choose a short lifetime
// explicitly (TenantOptions.TokenLifetime, emulator.Options.TokenLifetime,
// [ShortTestLifetime]) unless MSAL's caching is what they are about.
const (
	DefaultManagedIdentityLifetime  = 24 * time.Hour
	DefaultUserLifetime             = time.Hour
	DefaultServicePrincipalLifetime = time.Hour
)

// ShortTestLifetime is a token lifetime below MSAL's 5-minute caching
// threshold, so every GetToken reaches the emulator: what tests that count
// identity-endpoint requests, or start several tenants in one binary, pass
// as TokenLifetime.
const ShortTestLifetime = 2 * time.Minute

// defaultLifetime is Azure's default token lifetime for a principal kind.
func defaultLifetime(k Kind) time.Duration {
	switch k {
	case UserAssignedIdentity, SystemAssignedIdentity:
		return DefaultManagedIdentityLifetime
	case ServicePrincipal:
		return DefaultServicePrincipalLifetime
	}
	return DefaultUserLifetime
}

// TenantOptions configures [NewTenant]. The zero value is valid.
type TenantOptions struct {
	// TenantID is the directory (tenant) ID; empty means a random GUID.
	TenantID string
	// SubscriptionID is used in generated ARM resource IDs; empty means a random GUID.
	SubscriptionID string
	// ResourceGroup is used in generated ARM resource IDs; empty means "rg-app".
	ResourceGroup string
	// TokenLifetime is the lifetime of every issued token; zero means
	// Azure's defaults per principal kind (DefaultManagedIdentityLifetime,
	// DefaultUserLifetime, DefaultServicePrincipalLifetime). Principals and
	// single requests may override it.
	TokenLifetime time.Duration
}

// Tenant is a fake Entra directory: a tenant ID, an RSA signing key, a clock
// and the principals that may obtain tokens. Create one per test (or per test
// package) with [NewTenant]; all methods are safe for concurrent use.
type Tenant struct {
	id, sub, rg string
	key         *rsa.PrivateKey
	kid         string

	mu         sync.Mutex
	skew       time.Duration
	lifetime   time.Duration // 0: per-kind defaults
	principals []Principal
	minted     map[mintKey]int
	// members maps a group's object ID to its direct members' object IDs,
	// in the order they were added ([Tenant.AddGroup]).
	members map[string][]string
}

type mintKey struct{ oid, aud string }

// NewTenant creates a tenant with a fresh 2048-bit signing key. It fails only
// if a given ID is not a GUID or the key cannot be generated.
func NewTenant(opts TenantOptions) (*Tenant, error) {
	t := &Tenant{
		id:       strings.ToLower(opts.TenantID),
		sub:      strings.ToLower(opts.SubscriptionID),
		rg:       opts.ResourceGroup,
		lifetime: opts.TokenLifetime,
		minted:   map[mintKey]int{},
	}
	if t.id == "" {
		t.id = newGUID()
	} else if !isGUID(t.id) {
		return nil, fmt.Errorf("entra: tenant ID %q is not a GUID", opts.TenantID)
	}
	if t.sub == "" {
		t.sub = newGUID()
	} else if !isGUID(t.sub) {
		return nil, fmt.Errorf("entra: subscription ID %q is not a GUID", opts.SubscriptionID)
	}
	if t.rg == "" {
		t.rg = "rg-app"
	}
	if t.lifetime < 0 {
		t.lifetime = 0
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("entra: generating signing key: %w", err)
	}
	t.key = key
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("entra: encoding public key: %w", err)
	}
	sum := sha1.Sum(der) // #nosec G401 -- thumbprint, see import
	t.kid = base64.RawURLEncoding.EncodeToString(sum[:])
	return t, nil
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// ID returns the tenant (directory) ID, the tokens' "tid" claim.
func (t *Tenant) ID() string { return t.id }

// SubscriptionID returns the subscription used in generated ARM resource IDs.
func (t *Tenant) SubscriptionID() string { return t.sub }

// Issuer returns the v1 token issuer, "https://sts.windows.net/<tid>/", which
// token validators must expect in "iss".
func (t *Tenant) Issuer() string { return "https://sts.windows.net/" + t.id + "/" }

// KeyID returns the "kid" of the tenant's signing key, as put in token headers.
func (t *Tenant) KeyID() string { return t.kid }

// PublicKey returns the verification key for kid, for validators that look
// keys up by the token header. An unknown kid is an error, as it would be
// against Entra's JWKS.
func (t *Tenant) PublicKey(kid string) (*rsa.PublicKey, error) {
	if kid != t.kid {
		return nil, fmt.Errorf("entra: tenant %s has no signing key with kid %q", t.id, kid)
	}
	return &t.key.PublicKey, nil
}

// JWKS returns the tenant's JSON Web Key Set, as served at the authority's
// jwks_uri, for validators that want to exercise key-set parsing.
func (t *Tenant) JWKS() []byte {
	pub := t.key.PublicKey
	set := map[string]any{"keys": []map[string]any{{
		"kty":    "RSA",
		"use":    "sig",
		"alg":    "RS256",
		"kid":    t.kid,
		"x5t":    t.kid,
		"n":      base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		"issuer": "https://login.microsoftonline.com/" + t.id + "/v2.0",
	}}}
	b, _ := json.Marshal(set) // a map of strings cannot fail to marshal
	return b
}

// Now returns the tenant's clock: the wall clock shifted by [Tenant.SetSkew].
// Every issued token's iat/nbf/exp and every expires_on derive from it.
func (t *Tenant) Now() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Now().Add(t.skew)
}

// SetSkew shifts the tenant clock by d (negative: the tenant runs behind),
// for tests of clock skew between the token issuer and its consumers.
func (t *Tenant) SetSkew(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.skew = d
}

// SetTokenLifetime changes the lifetime of the tenant's tokens; d <= 0
// restores Azure's defaults per principal kind.
func (t *Tenant) SetTokenLifetime(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lifetime = max(d, 0)
}

// lifetimeFor resolves a token lifetime: the request's if positive, else the
// principal's, else the tenant's, else Azure's default for the principal's kind.
func (t *Tenant) lifetimeFor(p Principal, requested time.Duration) time.Duration {
	if requested > 0 {
		return requested
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.findLocked(func(q Principal) bool { return q.ObjectID == p.ObjectID }); ok {
		p = cur
	}
	if p.TokenLifetime > 0 {
		return p.TokenLifetime
	}
	if t.lifetime > 0 {
		return t.lifetime
	}
	return defaultLifetime(p.Kind)
}
