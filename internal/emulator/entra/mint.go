package entra

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Audiences and scopes the emulator knows by name.
const (
	// DatabaseAudience is the "aud" of Azure Database for PostgreSQL tokens.
	DatabaseAudience = "https://ossrdbms-aad.database.windows.net"
	// DatabaseScope is the scope a credential asks for to get DatabaseAudience.
	DatabaseScope = DatabaseAudience + "/.default"
	// ManagementAudience is the "aud" of Azure Resource Manager tokens, the
	// only audience whose managed-identity tokens carry xms_mirid.
	ManagementAudience = "https://management.azure.com/"
	// ManagementScope is the scope a credential asks for to get ManagementAudience.
	ManagementScope = "https://management.azure.com/.default"
)

// NormalizeAudience maps a v2 scope or v1 resource to the "aud" Entra puts in
// the token: "X/.default" → "X", and any form of the ARM resource →
// ManagementAudience (with its trailing slash).
func NormalizeAudience(scopeOrResource string) string {
	aud := strings.TrimSuffix(strings.TrimSpace(scopeOrResource), "/.default")
	if strings.EqualFold(strings.TrimSuffix(aud, "/"), "https://management.azure.com") {
		return ManagementAudience
	}
	return aud
}

// Claims returns the claim set [Tenant.Mint] would sign for p, and its expiry,
// so tests can alter it (wrong aud, future nbf, …) and sign it with
// [Tenant.MintRaw]. lifetime <= 0 means the principal's or tenant's default.
func (t *Tenant) Claims(p Principal, audience string, lifetime time.Duration) (jwt.MapClaims, time.Time, error) {
	return t.claims(p, audience, lifetime, "")
}

// claims builds the claim set; appidacr overrides the app authentication
// class of service-principal tokens ("1" secret, "2" certificate/assertion).
func (t *Tenant) claims(p Principal, audience string, lifetime time.Duration, appidacr string) (jwt.MapClaims, time.Time, error) {
	cur, ok := t.ByObjectID(p.ObjectID)
	if !ok || p.ObjectID == "" {
		return nil, time.Time{}, fmt.Errorf("entra: principal %q is not in tenant %s", p.Name, t.id)
	}
	p = cur
	if p.Kind == Group {
		return nil, time.Time{}, fmt.Errorf("entra: %q is a group; Entra issues no tokens for groups, only for their members", p.Name)
	}
	aud := NormalizeAudience(audience)
	if aud == "" {
		return nil, time.Time{}, errors.New("entra: empty audience")
	}
	now := t.Now().Truncate(time.Second)
	exp := now.Add(t.lifetimeFor(p, lifetime)).Truncate(time.Second)
	c := jwt.MapClaims{
		"aud": aud,
		"iss": t.Issuer(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": exp.Unix(),
		"aio": randomToken(48),
		"oid": p.ObjectID,
		"rh":  "0.A" + randomToken(40) + ".",
		"tid": t.id,
		"uti": randomToken(16),
		"ver": "1.0",
	}
	switch p.Kind {
	case User:
		local := p.UPN[:strings.IndexByte(p.UPN, '@')]
		given := strings.ToUpper(local[:1]) + local[1:]
		c["acr"] = "1"
		c["amr"] = []string{"pwd", "mfa"}
		c["appid"] = p.AppID
		c["appidacr"] = "0"
		c["family_name"] = "Tester"
		c["given_name"] = given
		c["idtyp"] = "user"
		c["ipaddr"] = "203.0.113.7"
		c["name"] = given + " Tester"
		c["puid"] = puid(p.ObjectID)
		c["scp"] = "user_impersonation"
		c["sub"] = randomToken(32)
		c["unique_name"] = p.UPN
		c["upn"] = p.UPN
	case UserAssignedIdentity, SystemAssignedIdentity:
		c["appid"] = p.AppID
		c["appidacr"] = "2"
		c["idp"] = t.Issuer()
		c["idtyp"] = "app"
		c["sub"] = p.ObjectID
		if aud == ManagementAudience {
			// A trap of Azure's tokens: only ARM-audience tokens name the resource.
			c["xms_mirid"] = p.ResourceID
			if p.Kind == UserAssignedIdentity {
				if host, ok := t.firstSystemAssigned(); ok {
					c["xms_az_rid"] = host.ResourceID
				}
			}
		}
	case ServicePrincipal:
		if appidacr == "" {
			appidacr = "1"
		}
		c["appid"] = p.AppID
		c["appidacr"] = appidacr
		c["idp"] = t.Issuer()
		c["idtyp"] = "app"
		c["sub"] = p.ObjectID
	default:
		return nil, time.Time{}, fmt.Errorf("entra: principal %q has unknown kind %v", p.Name, p.Kind)
	}
	return c, exp, nil
}

// puid derives a stable 16-hex-digit "puid" from an object ID.
func puid(oid string) string {
	h := strings.ToUpper(strings.ReplaceAll(oid, "-", ""))
	if len(h) < 16 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return strings.ToUpper(hex.EncodeToString(b[:]))
	}
	return "1003" + h[len(h)-12:]
}

// Mint issues an access token for p with the given audience (a resource or a
// "/.default" scope, normalised by [NormalizeAudience]) and lifetime (<= 0:
// principal's or tenant's default), shaped per principal kind as Azure's, and counts it for [Tenant.Minted]. The identity endpoints and
// the authority call it; tests call it to get tokens without HTTP.
func (t *Tenant) Mint(p Principal, audience string, lifetime time.Duration) (token string, expiresOn time.Time, err error) {
	return t.mint(p, audience, lifetime, "")
}

func (t *Tenant) mint(p Principal, audience string, lifetime time.Duration, appidacr string) (string, time.Time, error) {
	c, exp, err := t.claims(p, audience, lifetime, appidacr)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := t.MintRaw(c)
	if err != nil {
		return "", time.Time{}, err
	}
	t.mu.Lock()
	t.minted[mintKey{p.ObjectID, c["aud"].(string)}]++
	t.mu.Unlock()
	return tok, exp, nil
}

// MintRaw signs arbitrary claims with the tenant key (RS256, header kid and
// x5t), for tests that need tokens Mint would never issue. It adds nothing
// and is not counted by Minted.
func (t *Tenant) MintRaw(claims jwt.MapClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = t.kid
	tok.Header["x5t"] = t.kid
	s, err := tok.SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("entra: signing token: %w", err)
	}
	return s, nil
}

// Minted returns how many tokens Mint (directly or through an endpoint)
// issued for p and audience (normalised), to prove caching: N connections
// should not mean N tokens.
func (t *Tenant) Minted(p Principal, audience string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.minted[mintKey{p.ObjectID, NormalizeAudience(audience)}]
}
