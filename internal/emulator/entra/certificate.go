package entra

// Certificate credentials: a service principal's client certificates, and
// the authority's check of the assertions (private_key_jwt) signed with them.

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // #nosec G505 -- x5t thumbprints are SHA-1 by definition, not a security use
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Validity of generated client certificates, around the tenant clock.
const (
	clientCertBackdate = 5 * time.Minute
	clientCertLifetime = 24 * time.Hour
)

// assertionNotBeforeLeeway tolerates a client clock slightly ahead of the
// tenant's in an assertion's nbf, as Entra does.
const assertionNotBeforeLeeway = 5 * time.Minute

// certificateCredentialsDoc is the page Entra's assertion errors point to.
const certificateCredentialsDoc = "https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials"

// clientCert is what the authority knows of a registered certificate: its
// thumbprints (the x5t and x5t#S256 an assertion names it by), public key
// and validity.
type clientCert struct {
	sha1      [sha1.Size]byte
	sha256    [sha256.Size]byte
	key       *rsa.PublicKey
	notBefore time.Time
	notAfter  time.Time
}

// WriteClientCertificate gives the service principal p a new client
// certificate: an RSA-2048 key and a self-signed X.509 certificate (CN =
// p.Name, valid from 5 minutes before the tenant clock for 24 hours). The
// certificate is registered with p (a principal may have several), so the
// authority accepts assertions signed with it, and written with its private
// key to a new file in dir (CERTIFICATE and PKCS#8 PRIVATE KEY PEM blocks,
// mode 0600). The returned path is the value for
// AZURE_CLIENT_CERTIFICATE_PATH or pgentra's azure_client_certificate_path,
// and the file is what azidentity.ParseCertificates accepts. It fails if p is
// not a service principal of the tenant.
func (t *Tenant) WriteClientCertificate(dir string, p Principal) (path string, err error) {
	cur, ok := t.ByObjectID(p.ObjectID)
	if !ok || p.ObjectID == "" || cur.Kind != ServicePrincipal {
		return "", fmt.Errorf("entra: %q is not a service principal in tenant %s; only service principals have client certificates", p.Name, t.id)
	}
	c, path, err := t.writeCertificate(dir, cur.Name)
	if err != nil {
		return "", err
	}
	if err := t.registerClientCert(cur, c); err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return path, nil
}

// WriteUnregisteredCertificate writes a client certificate file like
// [Tenant.WriteClientCertificate] does, with CN = commonName, but registers
// it nowhere: for negative tests, where a well-formed certificate that the
// application does not know must be refused (AADSTS700027).
func (t *Tenant) WriteUnregisteredCertificate(dir, commonName string) (path string, err error) {
	_, path, err = t.writeCertificate(dir, commonName)
	return path, err
}

// registerClientCert adds c to the certificates of the service principal p.
func (t *Tenant) registerClientCert(p Principal, c clientCert) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.principals {
		q := &t.principals[i]
		if q.ObjectID != p.ObjectID || q.Kind != ServicePrincipal {
			continue
		}
		var certs []clientCert
		if q.certs != nil {
			certs = slices.Clone(*q.certs)
		}
		certs = append(certs, c)
		q.certs = &certs
		return nil
	}
	return fmt.Errorf("entra: %q is not a service principal in tenant %s", p.Name, t.id)
}

// clientCerts returns the certificates registered for p.
func (p Principal) clientCerts() []clientCert {
	if p.certs == nil {
		return nil
	}
	return *p.certs
}

// writeCertificate generates a key and a self-signed certificate for cn,
// valid around the tenant clock, and writes both to a new PEM file in dir.
func (t *Tenant) writeCertificate(dir, cn string) (clientCert, string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return clientCert{}, "", fmt.Errorf("entra: generating certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return clientCert{}, "", fmt.Errorf("entra: generating certificate serial: %w", err)
	}
	now := t.Now().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-clientCertBackdate),
		NotAfter:              now.Add(clientCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return clientCert{}, "", fmt.Errorf("entra: creating certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return clientCert{}, "", fmt.Errorf("entra: encoding certificate key: %w", err)
	}
	c := clientCert{
		sha1:      sha1.Sum(der), // #nosec G401 -- thumbprint, see import
		sha256:    sha256.Sum256(der),
		key:       &key.PublicKey,
		notBefore: tmpl.NotBefore,
		notAfter:  tmpl.NotAfter,
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	path := filepath.Join(dir, "client-cert-"+hex.EncodeToString(c.sha1[:4])+".pem")
	if err := writeNewFile(path, data); err != nil {
		return clientCert{}, "", fmt.Errorf("entra: writing client certificate file: %w", err)
	}
	return c, path, nil
}

// writeNewFile creates path (which must not exist) with mode 0600.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// isCertificateAssertion tells a client-signed assertion (private_key_jwt,
// made from a certificate) from a federated one: the client issues the
// former about itself (iss or sub is its client ID), or names a certificate
// by SHA-256 thumbprint or chain. A federated token's iss is an external
// issuer; its header may carry an x5t of that issuer's key, so x5t alone
// decides nothing. Malformed assertions count as federated, as before.
func isCertificateAssertion(assertion, clientID string) bool {
	tok, _, err := jwt.NewParser().ParseUnverified(assertion, jwt.MapClaims{})
	if err != nil {
		return false
	}
	if _, ok := tok.Header["x5t#S256"]; ok {
		return true
	}
	if _, ok := tok.Header["x5c"]; ok {
		return true
	}
	iss, _ := tok.Claims.GetIssuer()
	sub, _ := tok.Claims.GetSubject()
	return strings.EqualFold(iss, clientID) || strings.EqualFold(sub, clientID)
}

// assertionError is a refused client assertion, answered (by aadError) with
// Entra's status, OAuth error code and AADSTS description. msg never quotes
// the assertion.
type assertionError struct {
	status int
	code   string
	aadsts int
	msg    string
}

func invalidClient(aadsts int, msg string) *assertionError {
	return &assertionError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: aadsts, msg: msg}
}

// verifyCertificateAssertion checks a certificate assertion for the service
// principal p the way Entra does: the header's x5t#S256 and/or x5t name a
// certificate registered for p and valid now; the signature (RS256 or
// PS256) verifies with its key; iss = sub = p's client ID; aud is endpoint,
// the token endpoint the request came to; exp is present and not past, nbf
// not in the future (tenant clock); jti is present.
func (t *Tenant) verifyCertificateAssertion(assertion string, p Principal, endpoint string) *assertionError {
	now := t.Now()
	unverified, _, err := jwt.NewParser().ParseUnverified(assertion, jwt.MapClaims{})
	if err != nil {
		return &assertionError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 50027,
			msg: "JWT token is invalid or malformed. [Reason - The client assertion could not be parsed.]"}
	}
	cert, thumb, aerr := findClientCert(unverified.Header, p)
	if aerr != nil {
		return aerr
	}
	found := fmt.Sprintf("Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s'",
		thumb, cert.notBefore.UTC().Format(time.RFC3339), cert.notAfter.UTC().Format(time.RFC3339))
	if now.Before(cert.notBefore) || !now.Before(cert.notAfter) {
		return invalidClient(700027, "Client assertion contains an invalid signature. [Reason - The key used is expired., "+found+"]")
	}
	algs := []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodPS256.Alg()}
	if alg, _ := unverified.Header["alg"].(string); !slices.Contains(algs, alg) {
		return invalidClient(700027, "Client assertion failed signature validation. [Reason - The assertion is not signed with RS256 or PS256., "+found+"]")
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.NewParser(jwt.WithValidMethods(algs), jwt.WithoutClaimsValidation()).
		ParseWithClaims(assertion, claims, func(*jwt.Token) (any, error) { return cert.key, nil }); err != nil {
		return invalidClient(700027, "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., "+found+"]")
	}
	iss, _ := claims.GetIssuer()
	sub, _ := claims.GetSubject()
	if !strings.EqualFold(iss, p.AppID) || !strings.EqualFold(sub, p.AppID) {
		return invalidClient(700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at "+certificateCredentialsDoc+" .")
	}
	if aud, _ := claims.GetAudience(); !slices.ContainsFunc(aud, func(a string) bool { return strings.EqualFold(a, endpoint) }) {
		return invalidClient(700023, "Client assertion audience claim does not match Realm issuer. Review the documentation at "+certificateCredentialsDoc+" .")
	}
	exp, _ := claims.GetExpirationTime()
	nbf, _ := claims.GetNotBefore()
	if exp == nil || !now.Before(exp.Time) || (nbf != nil && nbf.After(now.Add(assertionNotBeforeLeeway))) {
		return invalidClient(700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at %s .",
			entraTime(now), numericDate(nbf), numericDate(exp), certificateCredentialsDoc))
	}
	if jti, _ := claims["jti"].(string); jti == "" {
		return &assertionError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 50027,
			msg: "JWT token is invalid or malformed. [Reason - The client assertion has no 'jti' claim.]"}
	}
	return nil
}

// findClientCert resolves the thumbprints in an assertion header (x5t#S256,
// x5t; either or both, base64url or, as MSAL Go sends them, standard
// base64) to one certificate registered for p. thumb is the hex thumbprint
// the client used, for error messages.
func findClientCert(header map[string]any, p Principal) (cert clientCert, thumb string, _ *assertionError) {
	notRegistered := func(reason string) *assertionError {
		return invalidClient(700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - %s, Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]", reason, p.AppID))
	}
	idx, named := -1, false
	for _, h := range []struct {
		name string
		size int
		of   func(clientCert) []byte
	}{
		{"x5t#S256", sha256.Size, func(c clientCert) []byte { return c.sha256[:] }},
		{"x5t", sha1.Size, func(c clientCert) []byte { return c.sha1[:] }},
	} {
		v, ok := header[h.name]
		if !ok {
			continue
		}
		named = true
		sum, ok := decodeThumbprint(v)
		if !ok || len(sum) != h.size {
			return clientCert{}, "", notRegistered("The key was not found.")
		}
		if thumb == "" {
			thumb = strings.ToUpper(hex.EncodeToString(sum))
		}
		i := slices.IndexFunc(p.clientCerts(), func(c clientCert) bool { return string(h.of(c)) == string(sum) })
		if i < 0 || (idx >= 0 && i != idx) {
			return clientCert{}, "", notRegistered("The key was not found., Thumbprint of key used by client: '" + thumb + "'")
		}
		idx = i
	}
	if !named {
		return clientCert{}, "", notRegistered("The assertion header names no certificate thumbprint (x5t or x5t#S256).")
	}
	return p.clientCerts()[idx], thumb, nil
}

// decodeThumbprint decodes a header thumbprint in base64url or standard
// base64, padded or not.
func decodeThumbprint(v any) ([]byte, bool) {
	s, ok := v.(string)
	if !ok {
		return nil, false
	}
	s = strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(s), "=")
	b, err := base64.RawURLEncoding.DecodeString(s)
	return b, err == nil
}

// entraTime formats t as Entra's error descriptions do.
func entraTime(t time.Time) string { return t.UTC().Format("1/2/2006 3:04:05 PM") }

func numericDate(d *jwt.NumericDate) string {
	if d == nil {
		return "(none)"
	}
	return entraTime(d.Time)
}
