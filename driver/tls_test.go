package driver

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/lib/pq"
)

func TestTLSPolicy(t *testing.T) {
	tests := []struct {
		dsn  string
		mode pq.SSLMode // after the policy; "" = error
	}{
		{"host=srv.postgres.database.azure.com user=u", pq.SSLModeVerifyFull},
		{"host=srv.postgres.database.azure.com user=u sslmode=require", pq.SSLModeVerifyFull},
		{"host=srv.postgres.database.azure.com user=u sslmode=verify-ca", pq.SSLModeVerifyFull},
		{"host=db.example.com user=u sslmode=require", pq.SSLModeRequire},
		{"host=db.example.com user=u sslmode=verify-ca", pq.SSLModeVerifyCA},
		{"host=srv.postgres.database.azure.com user=u sslmode=disable", ""},
		{"host=srv.postgres.database.azure.com user=u sslmode=prefer", ""},
		{"host=srv.postgres.database.azure.com user=u sslmode=allow", ""},
		{"host=srv.postgres.database.azure.com user=u sslmode=disable azure_allow_insecure_tls=true", pq.SSLModeDisable},
		{"host=127.0.0.1 user=u sslmode=disable", pq.SSLModeDisable},
		{"host=::1 user=u sslmode=prefer", pq.SSLModePrefer},
		{"host=localhost user=u sslmode=disable", pq.SSLModeDisable},
		{"host=/var/run/postgresql user=u", pq.SSLModeDisable}, // Unix socket: pq turns TLS off
		{"host=127.0.0.1,remote.invalid user=u sslmode=disable", ""},
		{"host=localhost hostaddr=192.0.2.1 user=u sslmode=disable", ""}, // hostaddr is what is dialed
		{"host=srv.postgres.database.azure.com hostaddr=127.0.0.1 user=u sslmode=disable", pq.SSLModeDisable},
		{"postgres://u@srv.postgres.database.azure.com/db", pq.SSLModeVerifyFull},
		{"host=srv.postgres.database.azure.com user=u sslrootcert=system", pq.SSLModeVerifyFull},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			p, err := parseDSN(tt.dsn, env(nil))
			if err != nil {
				t.Fatal(err)
			}
			cfg := p.cfg
			_, err = applyTLSPolicy(&cfg, p.settings.allowInsecureTLS, false)
			if tt.mode == "" {
				if err == nil {
					t.Fatalf("want an error, got sslmode %q", cfg.SSLMode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.SSLMode != tt.mode {
				t.Errorf("sslmode %q, want %q", cfg.SSLMode, tt.mode)
			}
		})
	}
}

func TestTLSPolicyEnvironment(t *testing.T) {
	t.Setenv("PGSSLMODE", "require")
	c, err := NewConnector("host=db.example.com user=u", withGetenv(env(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.base.SSLMode != pq.SSLModeRequire {
		t.Errorf("PGSSLMODE ignored: %q", c.base.SSLMode)
	}
}

// TestTLSPolicyAzureDomains: to a host in Azure's database domains,
// sslmode=require and verify-ca are verified as verify-full (Azure's
// certificates chain to public roots and name the server), unless
// azure_allow_insecure_tls=true; any other remote name keeps its sslmode,
// with a warning.
func TestTLSPolicyAzureDomains(t *testing.T) {
	tests := []struct {
		dsn      string
		mode     pq.SSLMode
		upgraded bool
		warn     bool
	}{
		{"host=srv.postgres.database.azure.com user=u sslmode=require", pq.SSLModeVerifyFull, true, false},
		{"host=srv.postgres.database.azure.com user=u sslmode=verify-ca", pq.SSLModeVerifyFull, true, false},
		{"host=SRV.Postgres.Database.Azure.COM. user=u sslmode=require", pq.SSLModeVerifyFull, true, false},
		{"host=srv.postgres.database.chinacloudapi.cn user=u sslmode=require", pq.SSLModeVerifyFull, true, false},
		{"host=srv.postgres.database.usgovcloudapi.net user=u sslmode=require", pq.SSLModeVerifyFull, true, false},
		{"host=c-grp.abc.postgres.cosmos.azure.com user=u sslmode=require", pq.SSLModeVerifyFull, true, false},
		{"postgres://u@srv.postgres.database.azure.com/db?sslmode=require", pq.SSLModeVerifyFull, true, false},
		// What is dialed does not matter: the certificate names the server
		// (a private endpoint, an SSH tunnel on loopback).
		{"host=srv.postgres.database.azure.com hostaddr=10.0.0.4 user=u sslmode=require", pq.SSLModeVerifyFull, true, false},
		{"host=srv.postgres.database.azure.com hostaddr=127.0.0.1 user=u sslmode=require", pq.SSLModeVerifyFull, true, false},
		// One Azure host among several: its token must not go unverified.
		{"host=db.example.com,srv.postgres.database.azure.com user=u sslmode=require", pq.SSLModeVerifyFull, true, false},
		{"host=srv.postgres.database.azure.com user=u sslmode=verify-full", pq.SSLModeVerifyFull, false, false},
		// The opt-out keeps the mode as written (and warns).
		{"host=srv.postgres.database.azure.com user=u sslmode=require azure_allow_insecure_tls=true", pq.SSLModeRequire, false, true},
		{"host=srv.postgres.database.azure.com user=u sslmode=verify-ca azure_allow_insecure_tls=true", pq.SSLModeVerifyCA, false, true},
		// Custom names, look-alikes and the bare domain: as written, warned about.
		{"host=db.example.com user=u sslmode=require", pq.SSLModeRequire, false, true},
		{"host=db.example.com user=u sslmode=verify-ca", pq.SSLModeVerifyCA, false, true},
		{"host=srv.postgres.database.azure.com.example.com user=u sslmode=require", pq.SSLModeRequire, false, true},
		{"host=srvpostgres.database.azure.com user=u sslmode=require", pq.SSLModeRequire, false, true},
		{"host=postgres.database.azure.com user=u sslmode=require", pq.SSLModeRequire, false, true},
		{"host=10.0.0.4 user=u sslmode=require", pq.SSLModeRequire, false, true},
		// Local: as written, nothing to say.
		{"host=127.0.0.1 user=u sslmode=require", pq.SSLModeRequire, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			p, err := parseDSN(tt.dsn, env(nil))
			if err != nil {
				t.Fatal(err)
			}
			cfg := p.cfg
			d, err := applyTLSPolicy(&cfg, p.settings.allowInsecureTLS, false)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.SSLMode != tt.mode {
				t.Errorf("sslmode %q, want %q", cfg.SSLMode, tt.mode)
			}
			if got := d.upgrade.from != ""; got != tt.upgraded {
				t.Errorf("upgraded = %v (%+v), want %v", got, d.upgrade, tt.upgraded)
			}
			if tt.upgraded && (d.upgrade.from != p.cfg.SSLMode || d.upgrade.why != whyAzureDomain) {
				t.Errorf("upgrade %+v, want from %q because of the domain", d.upgrade, p.cfg.SSLMode)
			}
			if got := d.warning != ""; got != tt.warn {
				t.Errorf("warning %q, want one: %v", d.warning, tt.warn)
			}
		})
	}
}

// TestTLSPolicyAzureDomainsConnector: the same through NewConnector, with a
// logger: the Azure host gets verify-full (String shows it) and no warning;
// a custom name keeps require and gets the warning.
func TestTLSPolicyAzureDomainsConnector(t *testing.T) {
	cleanPGEnv(t)
	c, lines := warnings(t, "host=srv.postgres.database.azure.com user=u sslmode=require", nil)
	if c.base.SSLMode != pq.SSLModeVerifyFull || !strings.Contains(c.String(), "sslmode=verify-full") || len(lines) != 0 {
		t.Errorf("Azure host, require: sslmode %q, %s, warnings %q; want verify-full and no warning", c.base.SSLMode, c, lines)
	}
	if c.tls.from != pq.SSLModeRequire {
		t.Errorf("the Connector does not remember the upgrade (for the hint): %+v", c.tls)
	}
	c, lines = warnings(t, "host=db.example.com user=u sslmode=require", nil)
	if c.base.SSLMode != pq.SSLModeRequire || len(lines) != 1 || !strings.Contains(lines[0], "sslmode=require") {
		t.Errorf("custom name, require: sslmode %q, warnings %q; want require and one warning", c.base.SSLMode, lines)
	}
	c, lines = warnings(t, "host=srv.postgres.database.azure.com user=u sslmode=require azure_allow_insecure_tls=true", nil)
	if c.base.SSLMode != pq.SSLModeRequire || len(lines) != 1 {
		t.Errorf("Azure host, require, azure_allow_insecure_tls: sslmode %q, warnings %q; want require and one warning", c.base.SSLMode, lines)
	}
}

// TestTLSPolicyCustomTLSConfig: sslmode=pqgo-<key> uses a tls.Config that
// any imported package may have registered with pq.RegisterTLSConfig, and
// pgentra cannot tell whether it verifies anything: refused for a host that
// is not local, unless azure_allow_insecure_tls=true.
func TestTLSPolicyCustomTLSConfig(t *testing.T) {
	cleanPGEnv(t)
	const key = "pgentra-test-skip"
	if err := pq.RegisterTLSConfig(key, &tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pq.RegisterTLSConfig(key, nil) })
	for _, tt := range []struct {
		dsn string
		ok  bool
	}{
		{"host=srv.postgres.database.azure.com user=u sslmode=pqgo-" + key, false},
		{"host=db.example.com user=u sslmode=pqgo-" + key, false},
		{"host=127.0.0.1,db.example.com user=u sslmode=pqgo-" + key, false},
		{"host=db.example.com user=u sslmode=pqgo-" + key + " azure_allow_insecure_tls=true", true},
		{"host=127.0.0.1 user=u sslmode=pqgo-" + key, true},
		{"host=/var/run/postgresql user=u sslmode=pqgo-" + key, true},
	} {
		c, err := NewConnector(tt.dsn, withGetenv(env(nil)))
		if tt.ok {
			if err != nil {
				t.Errorf("%s: %v", tt.dsn, err)
			} else {
				c.Close()
			}
			continue
		}
		if err == nil {
			c.Close()
			t.Errorf("%s: accepted", tt.dsn)
			continue
		}
		for _, w := range []string{"sslmode", "pqgo-" + key, "RegisterTLSConfig", "azure_allow_insecure_tls=true", "verify-full"} {
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q (or is not ErrInvalidConfig)", tt.dsn, err, w)
			}
		}
	}
}

// fakeLocalhost makes "localhost" resolve to addrs (or fail with err) for
// the test, and counts the lookups.
func fakeLocalhost(t *testing.T, err error, addrs ...string) *int {
	t.Helper()
	old := lookupHost
	n := new(int)
	lookupHost = func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host != "localhost" {
			t.Errorf("resolved %q; only the bare localhost needs resolving", host)
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("localhost resolved without a deadline")
		}
		*n++
		var as []netip.Addr
		for _, a := range addrs {
			as = append(as, netip.MustParseAddr(a))
		}
		return as, err
	}
	t.Cleanup(func() { lookupHost = old })
	return n
}

// TestTLSPolicyLocalhostResolves: "localhost" is local only when it
// resolves to loopback addresses, all of them: an image without a
// localhost entry in /etc/hosts and with a DNS search domain may resolve it
// to another machine, where sslmode=disable would hand it the token.
func TestTLSPolicyLocalhostResolves(t *testing.T) {
	cleanPGEnv(t)
	for _, tt := range []struct {
		name  string
		addrs []string
		err   error
		ok    bool
	}{
		{"loopback", []string{"127.0.0.1", "::1"}, nil, true},
		{"mapped loopback", []string{"::ffff:127.0.0.1"}, nil, true},
		{"remote", []string{"192.0.2.7"}, nil, false},
		{"loopback and remote", []string{"127.0.0.1", "192.0.2.7"}, nil, false},
		{"unspecified", []string{"0.0.0.0"}, nil, false},
		{"lookup fails", nil, errors.New("no such host"), false},
		{"no address", nil, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := fakeLocalhost(t, tt.err, tt.addrs...)
			for _, dsn := range []string{"host=localhost user=u sslmode=disable", "host=LocalHost,127.0.0.1 user=u sslmode=prefer", "host=127.0.0.1,localhost user=u sslmode=pqgo-none"} {
				if strings.Contains(dsn, "pqgo-") {
					const key = "none"
					if err := pq.RegisterTLSConfig(key, &tls.Config{}); err != nil {
						t.Fatal(err)
					}
					defer pq.RegisterTLSConfig(key, nil)
				}
				*n = 0
				c, err := NewConnector(dsn, withGetenv(env(nil)))
				if err == nil {
					c.Close()
				}
				if tt.ok != (err == nil) {
					t.Errorf("%s: err = %v, want ok=%v", dsn, err, tt.ok)
				}
				if !tt.ok && err != nil && (!strings.Contains(strings.ToLower(err.Error()), "localhost") || !strings.Contains(err.Error(), "resolve")) {
					t.Errorf("%s: error %q does not say that localhost is the problem", dsn, err)
				}
				if *n != 1 {
					t.Errorf("%s: localhost resolved %d times by NewConnector, want 1", dsn, *n)
				}
			}
			// A require to a localhost that is elsewhere is warned about.
			p, err := parseDSN("host=localhost user=u sslmode=require", env(nil))
			if err != nil {
				t.Fatal(err)
			}
			d, err := applyTLSPolicy(&p.cfg, false, false)
			if err != nil || (d.warning == "") != tt.ok {
				t.Errorf("require to localhost: warning %q, err %v; want a warning: %v", d.warning, err, !tt.ok)
			}
		})
	}
	// verify-full needs no resolution at all.
	n := fakeLocalhost(t, nil, "192.0.2.7")
	c, err := NewConnector("host=localhost user=u", withGetenv(env(nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if *n != 0 {
		t.Errorf("verify-full: localhost resolved %d times, want 0", *n)
	}
	// The real resolver on this machine: localhost is loopback here.
	lookupHost = defaultLookupHost
	if c, err := NewConnector("host=localhost user=u sslmode=disable", withGetenv(env(nil))); err != nil {
		t.Errorf("the real localhost: %v", err)
	} else {
		c.Close()
	}
}
