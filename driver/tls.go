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
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "" || h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true // pq dials localhost for an empty host
	}
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return a.IsLoopback()
	}
	return false
}
