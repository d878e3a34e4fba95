package driver

import (
	"testing"

	"github.com/lib/pq"
)

func TestTLSPolicy(t *testing.T) {
	tests := []struct {
		dsn  string
		mode pq.SSLMode // after the policy; "" = error
	}{
		{"host=srv.postgres.database.azure.com user=u", pq.SSLModeVerifyFull},
		{"host=srv.postgres.database.azure.com user=u sslmode=require", pq.SSLModeRequire},
		{"host=srv.postgres.database.azure.com user=u sslmode=verify-ca", pq.SSLModeVerifyCA},
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
			err = applyTLSPolicy(&cfg, p.settings.allowInsecureTLS)
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
	c, err := NewConnector("host=srv.postgres.database.azure.com user=u", withGetenv(env(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.base.SSLMode != pq.SSLModeRequire {
		t.Errorf("PGSSLMODE ignored: %q", c.base.SSLMode)
	}
}
