package dsn

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lib/pq"
)

// ErrNotExpressible is returned (wrapped, naming the field) by Build for a
// config that no connection string makes pq.NewConfig produce: a host name
// with a comma, a run-time parameter whose name holds white space or "=",
// a value that is not valid UTF-8, a connect_timeout that is not whole
// seconds, and the like. Configs parsed by pq.NewConfig from a DSN never
// hit it, except the few that pq itself mangles (see Build).
var ErrNotExpressible = errors.New("pgentra: config can't be written as a connection string")

// Build writes cfg — a config from pq.NewConfig, possibly with User,
// Password, SSLMode and Runtime changed — as a key=value connection string
// for the pq APIs that take only a string (pq.NewListenerConn). It quotes
// every value (single quotes; backslash before \ and '), so no character
// inside a value — U+00A0, U+2028 or any other white space pq's parser
// splits on, quotes, backslashes, "=" — can end it or start another key.
//
// pq.NewConfig(Build(cfg)) equals cfg in every exported field (see
// ConfigDiff) but Service and ServiceFile: a service's settings are already
// in cfg, so the string sets service to "" and the file is not read again
// (pq would append its host lists a second time, and it may have changed).
// Every key pq reads from the environment is written explicitly, so PG*
// variables don't change the result — except comma lists in PGHOST,
// PGHOSTADDR and PGPORT, which pq prepends to the string's own lists, and
// keys written only when set (sslmode, sslnegotiation, hostaddr,
// target_session_attrs, load_balance_hosts, ssl_min/max_protocol_version),
// which pq can't be told to leave empty. A caller that must be sure parses
// the result and compares it with ConfigDiff.
//
// The result contains cfg.Password: never log it or put it in an error.
// Build's own errors name the field, never a value.
func Build(cfg pq.Config) (string, error) {
	var b builder
	b.hosts(cfg)
	b.str("dbname", cfg.Database)
	b.str("user", cfg.User)
	b.secret("password", cfg.Password)
	b.str("passfile", cfg.Passfile)
	b.str("options", cfg.Options)
	b.str("application_name", cfg.ApplicationName)
	b.str("fallback_application_name", cfg.FallbackApplicationName)
	b.optional("sslmode", string(cfg.SSLMode))
	b.optional("sslnegotiation", string(cfg.SSLNegotiation))
	b.str("sslcert", cfg.SSLCert)
	b.str("sslkey", cfg.SSLKey)
	b.str("sslrootcert", cfg.SSLRootCert)
	b.boolean("sslsni", cfg.SSLSNI)
	b.optional("ssl_min_protocol_version", string(cfg.SSLMinProtocolVersion))
	b.optional("ssl_max_protocol_version", string(cfg.SSLMaxProtocolVersion))
	b.boolean("sslinline", cfg.SSLInline)
	b.str("krbsrvname", cfg.KrbSrvname)
	b.str("krbspn", cfg.KrbSpn)
	b.timeout(cfg.ConnectTimeout)
	b.boolean("binary_parameters", cfg.BinaryParameters)
	b.boolean("disable_prepared_binary_result", cfg.DisablePreparedBinaryResult)
	b.str("tz", cfg.TZ)
	b.str("geqo", cfg.Geqo)
	b.optional("target_session_attrs", string(cfg.TargetSessionAttrs))
	b.optional("load_balance_hosts", string(cfg.LoadBalanceHosts))
	b.required("min_protocol_version", string(cfg.MinProtocolVersion))
	b.required("max_protocol_version", string(cfg.MaxProtocolVersion))
	b.str("service", "")
	// pq always ends up with these (it refuses anything else), and sends
	// them whatever the string says: nothing to write, only to check.
	if cfg.ClientEncoding != "UTF8" {
		b.fail("client_encoding", "is not UTF8, the only value pq.NewConfig produces")
	}
	if cfg.Datestyle != "ISO, MDY" {
		b.fail("datestyle", `is not "ISO, MDY", the only value pq.NewConfig produces`)
	}
	if cfg.SSLRootCert == "system" && cfg.SSLMode == "" {
		b.fail("sslmode", "is empty with sslrootcert=system; pq.NewConfig makes it verify-full")
	}
	if nw, _ := network(cfg.Host, cfg.Hostaddr); nw == "unix" && cfg.SSLMode != pq.SSLModeDisable {
		b.fail("sslmode", "is not disable for a Unix socket; pq.NewConfig always disables it there")
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Runtime)) {
		b.runtime(k, cfg.Runtime[k])
	}
	if b.err != nil {
		return "", b.err
	}
	return b.s.String(), nil
}

// ConfigDiff returns the name of the first exported field of pq.Config in
// which a and b differ, or "" when they agree. Service and ServiceFile are
// not compared (see Build); a nil and an empty Runtime or Multi are equal.
// It never returns a value, so its result may go into an error.
func ConfigDiff(a, b pq.Config) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i, f := range reflect.VisibleFields(va.Type()) {
		if !f.IsExported() || f.Name == "Service" || f.Name == "ServiceFile" {
			continue
		}
		fa, fb := va.Field(i), vb.Field(i)
		if (f.Type.Kind() == reflect.Map || f.Type.Kind() == reflect.Slice) && fa.Len() == 0 && fb.Len() == 0 {
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			return f.Name
		}
	}
	return ""
}

// pqKeys are the keys pq.NewConfig takes for itself, which can't be
// run-time parameters: the postgres tags of pq.Config, and "database" (an
// old spelling of dbname).
var pqKeys = func() map[string]bool {
	m := map[string]bool{"database": true}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[pq.Config]()) {
		if k := f.Tag.Get("postgres"); k != "" && k != "-" {
			m[k] = true
		}
	}
	return m
}()

type builder struct {
	s   strings.Builder
	err error
}

func (b *builder) fail(key, why string) {
	if b.err == nil {
		b.err = fmt.Errorf("%w: %s %s", ErrNotExpressible, key, why)
	}
}

// put writes key='value'.
func (b *builder) put(key, value string) {
	if b.s.Len() > 0 {
		b.s.WriteByte(' ')
	}
	b.s.WriteString(key)
	b.s.WriteString("='")
	for _, r := range value {
		if r == '\\' || r == '\'' {
			b.s.WriteByte('\\')
		}
		b.s.WriteRune(r)
	}
	b.s.WriteByte('\'')
}

// str writes a string field, empty or not: that overrides the environment.
func (b *builder) str(key, value string) {
	if !utf8.ValidString(value) {
		// pq reads the string as runes: invalid bytes would become U+FFFD.
		b.fail(key, "is not valid UTF-8")
		return
	}
	b.put(key, value)
}

// secret is str for the password: its error never says more than the key.
func (b *builder) secret(key, value string) { b.str(key, value) }

// optional writes an enumerated field when set; pq refuses an empty one.
func (b *builder) optional(key, value string) {
	if value != "" {
		b.str(key, value)
	}
}

// required writes an enumerated field pq always sets.
func (b *builder) required(key, value string) {
	if value == "" {
		b.fail(key, "is empty; pq.NewConfig always sets it")
		return
	}
	b.str(key, value)
}

func (b *builder) boolean(key string, v bool) {
	if v {
		b.put(key, "1")
	} else {
		b.put(key, "0")
	}
}

// timeout writes connect_timeout, which pq reads as whole seconds n and
// stores as time.Duration(n)*time.Second — a product that wraps around for
// n beyond 292 years. Such a wrapped value is written as an n that wraps to
// the same Duration, so the round trip holds for whatever pq produced.
func (b *builder) timeout(d time.Duration) {
	if d%time.Second == 0 {
		b.put("connect_timeout", strconv.FormatInt(int64(d/time.Second), 10))
		return
	}
	// n*10⁹ ≡ d (mod 2⁶⁴) with 10⁹ = 2⁹·5⁹: solvable when 2⁹ divides d,
	// by n = (d/2⁹)·(5⁹)⁻¹ mod 2⁵⁵.
	if uint64(d)%(1<<9) != 0 {
		b.fail("connect_timeout", "is not a whole number of seconds")
		return
	}
	n := (uint64(d) >> 9) * inv5pow9 & (1<<55 - 1)
	b.put("connect_timeout", strconv.FormatUint(n, 10))
}

// inv5pow9 is the inverse of 5⁹ modulo 2⁶⁴ (Newton's iteration doubles the
// correct low bits each step: 3 → 6 → … → 96 ≥ 64).
var inv5pow9 = func() uint64 {
	const k = 1953125
	x := uint64(k) // k·k ≡ 1 (mod 8)
	for range 5 {
		x *= 2 - k*x
	}
	return x
}()

func (b *builder) runtime(key, value string) {
	switch {
	case pqKeys[key]:
		b.fail(fmt.Sprintf("run-time parameter %q", key), "is a key pq reads for itself")
	case !utf8.ValidString(key):
		b.fail("a run-time parameter's name", "is not valid UTF-8")
	case strings.ContainsFunc(key, func(r rune) bool { return r == '=' || unicode.IsSpace(r) }):
		// Keys can't be quoted in pq's syntax.
		b.fail(fmt.Sprintf("run-time parameter %q", key), `contains "=" or white space`)
	default:
		b.str(key, value)
	}
}

// hosts writes host, hostaddr and port, as lists when cfg.Multi has more
// servers, in the shape pq.NewConfig turns back into the same Multi.
func (b *builder) hosts(cfg pq.Config) {
	for i, h := range append([]string{cfg.Host}, hostsOf(cfg.Multi)...) {
		if strings.Contains(h, ",") {
			b.fail(fmt.Sprintf("host %d", i+1), "contains a comma; pq splits host lists on commas")
			return
		}
	}
	addrs := []netip.Addr{cfg.Hostaddr}
	ports := []string{strconv.Itoa(int(cfg.Port))}
	anyAddr := cfg.Hostaddr.IsValid()
	empty := 0
	for _, m := range cfg.Multi {
		addrs = append(addrs, m.Hostaddr)
		ports = append(ports, strconv.Itoa(int(m.Port)))
		anyAddr = anyAddr || m.Hostaddr.IsValid()
		if m.Host == "" {
			empty++
		}
	}
	if anyAddr && !cfg.Hostaddr.IsValid() {
		b.fail("hostaddr", "is empty for the first host but set for another; pq requires the first")
		return
	}
	var addrList []string
	for i, a := range addrs {
		s := ""
		if a.IsValid() {
			s = a.String()
		}
		if strings.Contains(s, ",") {
			b.fail(fmt.Sprintf("hostaddr %d", i+1), "contains a comma")
			return
		}
		addrList = append(addrList, s)
	}
	switch {
	case empty == 0:
		b.str("host", strings.Join(append([]string{cfg.Host}, hostsOf(cfg.Multi)...), ","))
	case empty == len(cfg.Multi) && anyAddr && cfg.Host == "":
		// pq leaves the extra hosts empty only when hostaddr lists more
		// servers than host: host='' with the full hostaddr list.
		b.put("host", "")
	case empty == len(cfg.Multi) && anyAddr && cfg.Host == "localhost":
		// ...or when host is not given at all (its default is localhost).
	default:
		b.fail("host", "is empty for some servers of a multi-host list but not for others")
		return
	}
	if anyAddr {
		b.str("hostaddr", strings.Join(addrList, ","))
	}
	b.put("port", strings.Join(ports, ","))
}

func hostsOf(m []pq.ConfigMultihost) []string {
	h := make([]string, len(m))
	for i := range m {
		h[i] = m[i].Host
	}
	return h
}

// network is pq's rule for what the first host is: a Unix socket for an
// absolute path or an @name, unless hostaddr is set.
func network(host string, addr netip.Addr) (string, string) {
	if addr.IsValid() {
		return "tcp", ""
	}
	if filepath.IsAbs(host) || strings.HasPrefix(host, "@") {
		return "unix", host
	}
	return "tcp", host
}
