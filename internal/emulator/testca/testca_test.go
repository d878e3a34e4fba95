package testca

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"testing"
)

func TestLeafVerifies(t *testing.T) {
	ca, err := New()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf("localhost", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.Leaf.DNSNames) != 1 || len(leaf.Leaf.IPAddresses) != 2 {
		t.Fatalf("SANs: DNS %v IP %v, want 1 DNS and 2 IP", leaf.Leaf.DNSNames, leaf.Leaf.IPAddresses)
	}
	tests := []struct {
		name    string
		ok      bool
		useCA   bool
		comment string
	}{
		{"localhost", true, true, "DNS SAN"},
		{"127.0.0.1", true, true, "IPv4 SAN"},
		{"::1", true, true, "IPv6 SAN"},
		{"example.com", false, true, "name not in the certificate"},
		{"10.0.0.1", false, true, "IP not in the certificate"},
		{"localhost", false, false, "CA not trusted"},
	}
	for _, tc := range tests {
		t.Run(tc.comment, func(t *testing.T) {
			opts := x509.VerifyOptions{DNSName: tc.name, Roots: x509.NewCertPool()}
			if tc.useCA {
				opts.Roots = ca.CertPool()
			}
			_, err := leaf.Leaf.Verify(opts)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify(%q) error = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

func TestLeafNeedsHost(t *testing.T) {
	ca, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Leaf(); err == nil {
		t.Fatal("Leaf() with no hosts succeeded, want error")
	}
	if _, err := ca.ServerTLS(); err == nil {
		t.Fatal("ServerTLS() with no hosts succeeded, want error")
	}
}

func TestTwoCAsDoNotTrustEachOther(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := a.Leaf("localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: b.CertPool()}); err == nil {
		t.Fatal("leaf of CA a verified against CA b")
	}
}

func TestWriteCertFile(t *testing.T) {
	ca, err := New()
	if err != nil {
		t.Fatal(err)
	}
	path, err := ca.WriteCertFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("file is not exactly one PEM certificate: %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.Equal(ca.Certificate()) {
		t.Fatal("written certificate is not the CA certificate")
	}
	if _, err := ca.WriteCertFile(path + "/no/such/dir"); err == nil {
		t.Fatal("WriteCertFile into a missing directory succeeded")
	}
}

// TestServerTLSHandshake runs real TLS handshakes over loopback with both sides'
// configs from the CA: the right server name succeeds, another one fails on both ends.
func TestServerTLSHandshake(t *testing.T) {
	ca, err := New()
	if err != nil {
		t.Fatal(err)
	}
	srvCfg, err := ca.ServerTLS("localhost")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		serverName string
		ok         bool
	}{{"localhost", true}, {"other.example", false}} {
		srvErr := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				srvErr <- err
				return
			}
			defer c.Close()
			srvErr <- tls.Server(c, srvCfg).Handshake()
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cfg := ca.ClientTLS()
		cfg.ServerName = tc.serverName
		err = tls.Client(c, cfg).Handshake()
		c.Close()
		if (err == nil) != tc.ok {
			t.Errorf("client handshake as %q: error %v, want ok=%v", tc.serverName, err, tc.ok)
		}
		if err := <-srvErr; (err == nil) != tc.ok {
			t.Errorf("server handshake as %q: error %v, want ok=%v", tc.serverName, err, tc.ok)
		}
	}
}
