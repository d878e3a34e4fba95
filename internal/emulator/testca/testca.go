// Package testca is a throwaway certificate authority for tests that must exercise
// real certificate verification (pq's sslmode=verify-full, HTTPS clients of the fake
// Entra authority) without touching the system trust store.
//
// Every CA lives only in memory (plus an optional PEM file written on request) and is
// valid for one day, which is plenty for one test run.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// validity is how long generated certificates are valid; backdating by an hour
// tolerates a test clock that is slightly behind.
const (
	validity = 24 * time.Hour
	backdate = time.Hour
)

// CA is a self-signed ECDSA P-256 certificate authority. Create one with New per test
// (or per package) and issue server certificates with Leaf or ServerTLS; clients trust
// it through CertPool, CertPEM or WriteCertFile. A CA is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certDER []byte
	key     *ecdsa.PrivateKey
}

// New generates a fresh CA. It fails only if the system random source fails.
func New() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testca: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pgentra test CA", Organization: []string{"pgentra tests"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testca: self-sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testca: parse CA certificate: %w", err)
	}
	return &CA{cert: cert, certDER: der, key: key}, nil
}

// Leaf issues a server certificate for hosts, signed by the CA. Each host that parses
// as an IP address becomes an IP SAN, anything else a DNS SAN; the first host is also
// the subject common name. Use it when a test builds its own tls.Config; ServerTLS is
// the shortcut. At least one host is required, because a certificate that names no
// host would fail verify-full for a reason unrelated to what the test checks.
func (ca *CA) Leaf(hosts ...string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("testca: Leaf needs at least one host name or IP address")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testca: generate leaf key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testca: sign leaf certificate for %v: %w", hosts, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testca: parse leaf certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.certDER}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerTLS returns a server tls.Config presenting a fresh leaf for hosts (see Leaf),
// TLS 1.2 or later. Hand it to httptest.Server.TLS or pgfront.Config.TLS.
func (ca *CA) ServerTLS(hosts ...string) (*tls.Config, error) {
	leaf, err := ca.Leaf(hosts...)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}, nil
}

// ClientTLS returns a client tls.Config that trusts only this CA, for HTTP transports
// and raw TLS clients in tests.
func (ca *CA) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: ca.CertPool(), MinVersion: tls.VersionTLS12}
}

// CertPool returns a new pool holding only the CA certificate. Each call returns a
// fresh pool, so callers may add to it freely.
func (ca *CA) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Certificate returns the parsed CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate PEM-encoded, the form pq's sslrootcert and
// SSL_CERT_FILE expect. The private key is never exported.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.certDER})
}

// WriteCertFile writes the CA certificate as PEM to dir/testca.pem (typically
// t.TempDir()) and returns the path, for DSNs like "sslrootcert=<path>".
func (ca *CA) WriteCertFile(dir string) (string, error) {
	path := filepath.Join(dir, "testca.pem")
	if err := os.WriteFile(path, ca.CertPEM(), 0o644); err != nil {
		return "", fmt.Errorf("testca: write CA certificate: %w", err)
	}
	return path, nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("testca: generate serial number: %w", err)
	}
	return serial, nil
}
