package driver

import (
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/lib/pq"
)

// applyTLSPolicy enforces DESIGN §8 on a parsed pq config. The token is a
// bearer credential that opens every server the identity may reach, for up to
// a day, so it must not travel in clear or to a server nobody verified.
//
//   - No sslmode anywhere (DSN, PGSSLMODE, service file) → verify-full. pq's own default
//     is "require", which does not check the certificate, and may become
//     "prefer".
//   - disable, allow and prefer are refused unless every host is loopback or
//     a Unix socket, or azure_allow_insecure_tls=true.
func applyTLSPolicy(cfg *pq.Config, allowInsecure bool) error {
	if cfg.SSLMode == "" {
		cfg.SSLMode = pq.SSLModeVerifyFull
	}
	switch cfg.SSLMode {
	case pq.SSLModeDisable, pq.SSLModeAllow, pq.SSLModePrefer:
	default:
		return nil
	}
	if allowInsecure {
		return nil
	}
	for _, h := range targets(cfg) {
		if !isLocal(h.host, h.addr) {
			name := h.host
			if h.addr.IsValid() {
				name = h.addr.String()
			}
			return configErr("sslmode", string(cfg.SSLMode),
				"would send the access token unencrypted to %q; use sslmode=verify-full (or require/verify-ca), or set azure_allow_insecure_tls=true if the network is trusted", name)
		}
	}
	return nil
}

type target struct {
	host string
	addr netip.Addr
}

func targets(cfg *pq.Config) []target {
	t := []target{{cfg.Host, cfg.Hostaddr}}
	for _, m := range cfg.Multi {
		t = append(t, target{m.Host, m.Hostaddr})
	}
	return t
}

// isLocal reports whether a connection to host (or hostaddr, which is what is
// dialed when set) stays on this machine.
func isLocal(host string, addr netip.Addr) bool {
	if addr.IsValid() {
		return addr.IsLoopback()
	}
	if filepath.IsAbs(host) || strings.HasPrefix(host, "@") {
		return true // Unix socket
	}
	h := strings.ToLower(host)
	if h == "" || h == "localhost" {
		// pq dials the local machine for an empty host. Only the bare name
		// counts: Go resolves "db.localhost" (and "localhost.") through
		// /etc/hosts and DNS like any other name, so it may be anywhere.
		return true
	}
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return a.IsLoopback()
	}
	return false
}

// allLocal reports whether every host pq may dial is on this machine.
func allLocal(cfg *pq.Config) bool {
	for _, h := range targets(cfg) {
		if !isLocal(h.host, h.addr) {
			return false
		}
	}
	return true
}

// upgradeServiceConnectorTLS raises sslmode require and verify-ca to
// verify-full for a connection string that Azure Service Connector wrote
// (AZURE_POSTGRESQL_CONNECTIONSTRING, used when the DSN is empty). Service
// Connector always writes sslmode=require for Go, which checks no
// certificate at all: the token would go to whoever answers. The string is
// generated, not chosen, and Azure's server certificates chain to public
// roots, so verify-full costs nothing there. It reports whether it changed
// the mode.
func upgradeServiceConnectorTLS(cfg *pq.Config) bool {
	switch cfg.SSLMode {
	case pq.SSLModeRequire, pq.SSLModeVerifyCA:
		cfg.SSLMode = pq.SSLModeVerifyFull
		return true
	}
	return false
}

// weakTLSWarning returns a warning for a DSN the user wrote with sslmode
// require or verify-ca to a host that is not local: it is kept as given, but
// require checks no certificate and verify-ca no host name, so the token
// may go to a server that is not the one named. "" when there is nothing to
// say.
func weakTLSWarning(cfg *pq.Config) string {
	switch cfg.SSLMode {
	case pq.SSLModeRequire, pq.SSLModeVerifyCA:
	default:
		return ""
	}
	if allLocal(cfg) {
		return ""
	}
	what := "does not check the server's certificate"
	if cfg.SSLMode == pq.SSLModeVerifyCA {
		what = "does not check that the server's certificate names the host"
	}
	return "pgentra: sslmode=" + string(cfg.SSLMode) + " " + what +
		": the access token, valid for every server the identity can reach, goes to whoever answers; use sslmode=verify-full (Azure's certificates chain to public roots)"
}
