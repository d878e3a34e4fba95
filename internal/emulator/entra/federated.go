package entra

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FederatedAudience is the audience of workload-identity assertions.
const FederatedAudience = "api://AzureADTokenExchange"

// federatedLifetime is the lifetime of a projected service-account token.
const federatedLifetime = time.Hour

// FederatedIssuer returns the issuer of the emulated cluster's service-account
// tokens (an AKS OIDC issuer stand-in) that the tenant's federated
// credentials trust.
func (t *Tenant) FederatedIssuer() string {
	return "https://oidc.aks.emulator.invalid/" + t.id + "/"
}

// FederatedToken returns a service-account token for p, as Kubernetes
// projects into a workload-identity pod: sub = p.FederatedSubject, aud =
// FederatedAudience. The authority accepts it as client_assertion for p.
func (t *Tenant) FederatedToken(p Principal) (string, error) {
	cur, ok := t.ByObjectID(p.ObjectID)
	if !ok || cur.Kind != ServicePrincipal || cur.FederatedSubject == "" {
		return "", fmt.Errorf("entra: %q is not a service principal with a federated credential in tenant %s", p.Name, t.id)
	}
	now := t.Now().Truncate(time.Second)
	return t.MintRaw(jwt.MapClaims{
		"iss": t.FederatedIssuer(),
		"sub": cur.FederatedSubject,
		"aud": []string{FederatedAudience},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(federatedLifetime).Unix(),
		"jti": newGUID(),
	})
}

// WriteFederatedTokenFile writes [Tenant.FederatedToken] for p to
// dir/azure-identity-token (mode 0600) and returns the path, the value for
// AZURE_FEDERATED_TOKEN_FILE or WorkloadIdentityCredentialOptions.TokenFilePath.
func (t *Tenant) WriteFederatedTokenFile(dir string, p Principal) (string, error) {
	tok, err := t.FederatedToken(p)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "azure-identity-token")
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		return "", fmt.Errorf("entra: writing federated token file: %w", err)
	}
	return path, nil
}

// verifyAssertion checks a workload-identity client assertion for p: signed
// by the tenant key, issued by FederatedIssuer, for FederatedAudience, within
// its validity, with sub = p.FederatedSubject.
func (t *Tenant) verifyAssertion(assertion string, p Principal) error {
	_, err := jwt.Parse(assertion,
		func(tok *jwt.Token) (any, error) {
			kid, _ := tok.Header["kid"].(string)
			return t.PublicKey(kid)
		},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(t.FederatedIssuer()),
		jwt.WithAudience(FederatedAudience),
		jwt.WithSubject(p.FederatedSubject),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.Now),
	)
	if err != nil {
		return fmt.Errorf("entra: client assertion rejected: %w", err)
	}
	if p.FederatedSubject == "" {
		return errors.New("entra: principal has no federated credential")
	}
	return nil
}
