package driver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/clouds"
)

// Why pgentra verifies a connection more strictly than its string asks
// (tlsUpgrade.why).
const (
	whyAzureDomain      = "the host is in Azure's database domains, whose server certificates chain to public roots and name the server"
	whyServiceConnector = "the connection string came from Azure Service Connector (AZURE_POSTGRESQL_CONNECTIONSTRING), which always writes sslmode=require"
)

// localhostLookupTimeout bounds NewConnector's lookup of "localhost".
const localhostLookupTimeout = 5 * time.Second

// lookupHost resolves a host name; tests replace it.
var lookupHost = defaultLookupHost

func defaultLookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// tlsUpgrade records that pgentra verifies a connection as verify-full
// although its string asked for less: from is the sslmode written ("" when
// nothing was upgraded), why the reason. A failed verification's hint
// quotes both.
type tlsUpgrade struct {
	from pq.SSLMode
	why  string
}

// hint explains a failed verification of an upgraded connection.
func (u tlsUpgrade) hint() string {
	h := fmt.Sprintf("pgentra verified this server as sslmode=verify-full although the connection string says sslmode=%s: %s, and the access token must not go to a server nobody verified; "+
		"add the roots that sign its certificate with sslrootcert=<PEM file>, or among the system roots (sslrootcert=system, the default)",
		u.from, u.why)
	if u.why == whyAzureDomain {
		h += fmt.Sprintf("; azure_allow_insecure_tls=true keeps sslmode=%s as written, and the token then goes to whoever answers", u.from)
	}
	return h
}

// tlsDecision is what applyTLSPolicy decided besides the sslmode it set.
type tlsDecision struct {
	upgrade tlsUpgrade
	warning string // weakTLSWarning's text; "" when there is nothing to say
}

// applyTLSPolicy enforces pgentra's TLS policy on a parsed pq config. The
// token is a bearer credential that opens every server the identity may
// reach, for up to a day, so it must not travel in clear or to a server
// nobody verified.
//
//   - No sslmode anywhere (DSN, PGSSLMODE, service file) → verify-full. pq's
//     own default is "require", which does not check the certificate, and
//     may become "prefer".
//   - require and verify-ca → verify-full when the string came from Service
//     Connector, or when a host is in Azure's database domains (unless
//     azure_allow_insecure_tls=true): Azure's certificates chain to public
//     roots and name the server. Elsewhere they are kept, with a warning for
//     a host that is not local.
//   - disable, allow and prefer, and pqgo-<key> (a tls.Config registered
//     with pq.RegisterTLSConfig, which pgentra cannot inspect) are refused
//     unless every host is local, or azure_allow_insecure_tls=true.
//
// "Local" is a Unix socket, a loopback address, or "localhost" when it
// resolves to loopback addresses only. It is resolved here, once per
// Connector, and only when the decision depends on it.
func applyTLSPolicy(cfg *pq.Config, allowInsecure, serviceConnector bool) (tlsDecision, error) {
	var d tlsDecision
	if cfg.SSLMode == "" {
		cfg.SSLMode = pq.SSLModeVerifyFull
	}
	if cfg.SSLMode == pq.SSLModeRequire || cfg.SSLMode == pq.SSLModeVerifyCA {
		switch {
		case serviceConnector:
			d.upgrade = tlsUpgrade{from: cfg.SSLMode, why: whyServiceConnector}
		case !allowInsecure && anyAzureHost(cfg):
			d.upgrade = tlsUpgrade{from: cfg.SSLMode, why: whyAzureDomain}
		}
		if d.upgrade.from != "" {
			cfg.SSLMode = pq.SSLModeVerifyFull
		}
	}
	var loc locality
	mode := cfg.SSLMode
	switch {
	case allowInsecure:
	case mode == pq.SSLModeDisable || mode == pq.SSLModeAllow || mode == pq.SSLModePrefer:
		if name, why := loc.remote(cfg); name != "" {
			return d, configErr("sslmode", string(mode),
				"would send the access token unencrypted to %q%s; use sslmode=verify-full (or require/verify-ca), or set azure_allow_insecure_tls=true if the network is trusted", name, why)
		}
	case strings.HasPrefix(string(mode), "pqgo-"):
		// Any imported package may register a config under any key, and one
		// that skips verification is a common snippet; pgentra cannot tell
		// what its callbacks and roots check. Refused rather than warned
		// about: the token, once sent, is valid for a day everywhere.
		if name, why := loc.remote(cfg); name != "" {
			return d, configErr("sslmode", string(mode),
				"is a TLS configuration registered with pq.RegisterTLSConfig, which pgentra cannot inspect (any imported package may register one, and it may skip certificate verification), and the access token would go through it to %q%s; use sslmode=verify-full (with sslrootcert=<path> for a private CA), or set azure_allow_insecure_tls=true if you vouch for that configuration", name, why)
		}
	}
	d.warning = weakTLSWarning(cfg, &loc)
	return d, nil
}

// anyAzureHost reports whether a host pq may dial is named in Azure's
// database domains. One is enough: verify-full then applies to every host of
// the string, as pq has one sslmode for all.
func anyAzureHost(cfg *pq.Config) bool {
	for _, t := range targets(cfg) {
		if inAzureDBDomain(t.host) {
			return true
		}
	}
	return false
}

// inAzureDBDomain reports whether host (a name, not what hostaddr dials) is
// a server name in one of Azure's PostgreSQL domains (Flexible Server in the
// public cloud, Azure China and Azure Government, Cosmos DB for PostgreSQL):
// case-insensitive, whole labels, a trailing dot allowed. Their certificates
// chain to public roots and name the server, so verifying them fully costs
// nothing.
func inAzureDBDomain(host string) bool {
	_, ok := clouds.ForHost(host)
	return ok
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

// locality decides whether the hosts of one config stay on this machine.
// Its zero value is ready; it resolves "localhost" at most once.
type locality struct {
	resolved bool
	// notLoopback says why localhost is not local ("" when it resolves to
	// loopback addresses only): what it resolved to, or the lookup's failure.
	notLoopback string
}

// remote returns the first host pq may dial that is not on this machine,
// with a note on why when that is not obvious; "" when all are local.
func (l *locality) remote(cfg *pq.Config) (name, why string) {
	for _, t := range targets(cfg) {
		if ok, why := l.isLocal(t); !ok {
			if t.addr.IsValid() {
				return t.addr.String(), ""
			}
			return t.host, why
		}
	}
	return "", ""
}

// isLocal reports whether a connection to t's host (or hostaddr, which is
// what is dialed when set) stays on this machine.
func (l *locality) isLocal(t target) (bool, string) {
	if t.addr.IsValid() {
		return t.addr.Unmap().IsLoopback(), ""
	}
	host := t.host
	if filepath.IsAbs(host) || strings.HasPrefix(host, "@") {
		return true, "" // Unix socket
	}
	if host == "" {
		return true, "" // pq dials ":port", the local system
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a.Unmap().IsLoopback(), ""
	}
	if !strings.EqualFold(host, "localhost") {
		// "db.localhost" and "localhost." are names like any other: Go
		// resolves them through /etc/hosts and DNS, and they may be anywhere.
		return false, ""
	}
	// So is the bare "localhost": an image without its /etc/hosts entry and
	// with a DNS search domain may resolve it to another machine.
	l.resolveLocalhost()
	return l.notLoopback == "", l.notLoopback
}

// resolveLocalhost resolves "localhost" once. Once per Connector is enough:
// the decision is made here, and what makes localhost resolve elsewhere (a
// missing /etc/hosts entry, a search domain) is the image's configuration,
// not something that changes between connects.
func (l *locality) resolveLocalhost() {
	if l.resolved {
		return
	}
	l.resolved = true
	ctx, cancel := context.WithTimeout(context.Background(), localhostLookupTimeout)
	defer cancel()
	addrs, err := lookupHost(ctx, "localhost")
	switch {
	case err != nil:
		l.notLoopback = fmt.Sprintf(", and localhost could not be resolved to check that it is this machine (%v)", err)
		return
	case len(addrs) == 0:
		l.notLoopback = ", and localhost resolves to no address"
		return
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			l.notLoopback = fmt.Sprintf(", which resolves to %s: local means loopback addresses only (check /etc/hosts)", joinAddrs(addrs))
			return
		}
	}
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// weakTLSWarning returns the warning for a config whose sslmode is require
// or verify-ca to a host that is not local: kept as given, but require
// checks no certificate and verify-ca no host name, so the token may go to
// a server that is not the one named. "" when there is nothing to say. It is
// the one place that words the warning; NewConnector decides where it goes.
func weakTLSWarning(cfg *pq.Config, loc *locality) string {
	switch cfg.SSLMode {
	case pq.SSLModeRequire, pq.SSLModeVerifyCA:
	default:
		return ""
	}
	if name, _ := loc.remote(cfg); name == "" {
		return ""
	}
	what := "does not check the server's certificate"
	if cfg.SSLMode == pq.SSLModeVerifyCA {
		what = "does not check that the server's certificate names the host"
	}
	return "pgentra: sslmode=" + string(cfg.SSLMode) + " " + what +
		": the access token, valid for every server the identity can reach, goes to whoever answers; use sslmode=verify-full (Azure's certificates chain to public roots; for a custom DNS name, set host= the server's own name and hostaddr= its address)"
}
