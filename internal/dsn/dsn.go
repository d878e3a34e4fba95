// Package dsn reads a PostgreSQL connection string the only way that
// matters — lib/pq's own pq.NewConfig — and takes pgentra's azure_* keys out
// of the result.
//
// There is no splitter here. An earlier version split key=value strings on
// ASCII white space and joined them again for pq, while pq splits on
// unicode.IsSpace: a correctly quoted application_name holding U+00A0
// became a new host= key. Now pq parses the string once; what it dials and
// sends (hosts, hostaddr, ports, sslmode, user, run-time parameters) is its
// own result. pq keeps every key it does not know in Config.Runtime, which it
// would send to the server; the azure_* keys are read from there and deleted.
package dsn

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	osuser "os/user"
	"sort"
	"strings"
	"unicode"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/pqinternal"
)

// AzurePrefix marks the keys that belong to pgentra. Any spelling counts:
// AZURE_CLIENT_ID and Azure_Client_Id are pgentra's azure_client_id.
const AzurePrefix = "azure_"

// MaxLen bounds the input: a connection string is a few hundred bytes, and
// anything far larger is a mistake (or an attack on the parser).
const MaxLen = 64 << 10

// ErrSyntax reports a connection string that cannot be parsed, or whose
// azure_* keys are given twice.
var ErrSyntax = errors.New("malformed connection string")

// ErrURLKey reports a URL query key that pq would not keep whole: pq turns
// the URL into key='value' pairs without quoting the keys, so a key holding
// white space or "=" (?x%3D1%20host=elsewhere) is read as other keys — here
// host=elsewhere. pgentra refuses such a URL rather than guess.
// errors.Is(err, ErrSyntax) holds.
var ErrURLKey = fmt.Errorf("%w: a URL query key holds white space or \"=\", which pq would read as further keys", ErrSyntax)

// ErrParamName reports a key that pq would send to the server as a
// run-time parameter although it is no PostgreSQL parameter name (letters,
// digits, "_" and "$", components separated by "."): the server would
// refuse the connection for it anyway. The usual cause is a postgres:// URL
// that does not start the string (" postgres://u:pw@h/db?sslmode=require"):
// pq then reads the whole URL up to the first "=" as one key, password
// included, and would dial localhost with it. The key is never shown.
// errors.Is(err, ErrSyntax) holds.
var ErrParamName = fmt.Errorf("%w: a key is not a PostgreSQL parameter name (not shown: it may hold a password); a postgres:// URL must start the string, with nothing before it", ErrSyntax)

// ErrNULByte reports a NUL byte in a value pq sends in the startup message
// (user, dbname, options, application_name, a run-time parameter): pq
// writes them as C strings, so the server would read what follows the NUL
// as further parameters — a second user or database, which it takes over
// the first. errors.Is(err, ErrSyntax) holds.
var ErrNULByte = fmt.Errorf("%w: a value holds a NUL byte, which would end it in PostgreSQL's startup message and start other parameters (user, database, ...)", ErrSyntax)

// DuplicateKeyError reports an azure_* key given more than once: in two
// spellings (azure_client_id and AZURE_CLIENT_ID, in either form), or
// repeated in a URL's query. errors.Is(err, ErrSyntax) holds.
type DuplicateKeyError struct {
	Key       string   // lower case, as pgentra knows it ("<key>" if it does not look like a key name)
	Spellings []string // how it was written, in order; a key repeated in a URL appears repeatedly
}

// Error names the key and its spellings (never a value).
func (e *DuplicateKeyError) Error() string {
	sp := make([]string, len(e.Spellings))
	for i, s := range e.Spellings {
		sp[i] = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%v: key %q given %d times (as %s)", ErrSyntax, e.Key, len(e.Spellings), strings.Join(sp, ", "))
}

// Unwrap makes errors.Is(err, ErrSyntax) true.
func (e *DuplicateKeyError) Unwrap() error { return ErrSyntax }

// Parsed is a connection string as pq reads it, with pgentra's keys taken
// out.
type Parsed struct {
	// Config is pq.NewConfig's result (defaults, PG* environment, service
	// file, then the string) with every azure_* key deleted from Runtime.
	// Its Password may hold PGPASSWORD or a service file's password; the
	// caller replaces it with the token.
	Config pq.Config
	// Azure holds the azure_* keys, lower-cased, and their values.
	Azure map[string]string
	// UserGiven reports a non-empty user from the string, PGUSER or a
	// service file — not pq's fallback to the operating-system user.
	UserGiven bool
	// PasswordInDSN reports a password written in the string itself
	// (key=value, the URL's user info or its query), as opposed to one
	// from PGPASSWORD or a service file.
	PasswordInDSN bool
}

// Parse reads s with pq.NewConfig and takes out the azure_* keys. It never
// returns the input, or any part of a value, in an error: a malformed string
// may hold a password.
//
// pq's own quirks stay pq's: in a URL an empty value (?user=) is dropped as
// if it were absent, and a key given twice in key=value form keeps its last
// value. pgentra's keys are checked more strictly: two spellings of one key
// (azure_client_id and AZURE_CLIENT_ID) are an error in both forms, and so
// is a key repeated in a URL's query, which pq would silently cut to its
// first value (DuplicateKeyError). A URL query key that pq would re-read as
// several keys is refused (ErrURLKey), and so is a run-time parameter whose
// name no PostgreSQL server accepts (ErrParamName): that is how pq reads a
// URL with anything before "postgres://", password included.
func Parse(s string) (Parsed, error) {
	if len(s) > MaxLen {
		return Parsed{}, fmt.Errorf("%w: longer than %d bytes", ErrSyntax, MaxLen)
	}
	if err := checkURLShape(s); err != nil {
		return Parsed{}, err
	}
	urlAzure, err := urlAzureKeys(s)
	if err != nil {
		return Parsed{}, err
	}
	cfg, err := parsePQ(s)
	if err != nil {
		if hint := envListHint(); hint != "" {
			return Parsed{}, fmt.Errorf("%w%s", err, hint)
		}
		return Parsed{}, err
	}
	if err := checkSources(cfg); err != nil {
		return Parsed{}, err
	}
	p := Parsed{Config: cfg, Azure: map[string]string{}}
	spelled := map[string]string{} // lower-case key -> spelling seen
	for _, k := range SortedKeys(cfg.Runtime) {
		lk := strings.ToLower(k)
		if strings.EqualFold(k, "password") {
			// pq would send it to the server as a run-time parameter.
			p.PasswordInDSN = true
		}
		if !strings.HasPrefix(lk, AzurePrefix) {
			if !paramName(k) {
				return Parsed{}, ErrParamName
			}
			continue
		}
		if prev, dup := spelled[lk]; dup {
			return Parsed{}, &DuplicateKeyError{Key: safeKey(lk), Spellings: []string{safeKey(prev), safeKey(k)}}
		}
		spelled[lk] = k
		p.Azure[lk] = cfg.Runtime[k]
		delete(cfg.Runtime, k)
	}
	if nulInStartup(cfg) {
		return Parsed{}, ErrNULByte
	}
	// pq drops a URL's empty values; pgentra reads ?azure_x= as x=''.
	for lk, v := range urlAzure {
		if _, ok := p.Azure[lk]; !ok && v == "" {
			p.Azure[lk] = ""
		}
	}
	p.Config = cfg
	p.UserGiven, p.PasswordInDSN = given(cfg, p.PasswordInDSN)
	return p, nil
}

// nulInStartup reports a NUL byte in anything pq writes into the startup
// message as a string (run-time parameter names are checked by paramName,
// which refuses NUL too).
func nulInStartup(cfg pq.Config) bool {
	for _, v := range []string{cfg.User, cfg.Database, cfg.Options, cfg.ApplicationName} {
		if strings.IndexByte(v, 0) >= 0 {
			return true
		}
	}
	for _, v := range cfg.Runtime {
		if strings.IndexByte(v, 0) >= 0 {
			return true
		}
	}
	return false
}

// paramName reports whether k is a name PostgreSQL accepts for a
// configuration parameter (its valid_custom_variable_name, without the
// requirement of a "."): components of letters, "_" and bytes >= 0x80,
// then also digits and "$", separated by single dots.
func paramName(k string) bool {
	start := true
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c == '.':
			if start {
				return false
			}
			start = true
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
			start = false
		case !start && (c >= '0' && c <= '9' || c == '$'):
		default:
			return false
		}
	}
	return !start
}

// urlAzureKeys looks, for a postgres:// URL, at the keys of its query as
// pq's URL conversion sees them (net/url's Query, the very call pq makes):
// pq keeps only a key's first value and drops empty ones, so a repeated or
// empty pgentra key would otherwise go unnoticed, and it does not quote keys
// (ErrURLKey). It decides nothing that is dialed or sent: it only refuses.
func urlAzureKeys(s string) (map[string]string, error) {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		// url's errors quote the whole input, password included.
		return nil, fmt.Errorf("%w: not a valid postgres:// URL (not shown: it may hold a password). A password does not belong in pgentra's DSN (pgentra sends an Entra token as the password); in a user name or value, percent-encode \"@\", \":\", \"/\", \"?\", \"#\" and \"%%\"", ErrSyntax)
	}
	out := map[string]string{}
	spelled := map[string]string{}
	q := u.Query()
	for _, k := range SortedKeys(q) {
		if strings.IndexFunc(k, func(r rune) bool { return unicode.IsSpace(r) || r == '=' }) >= 0 {
			return nil, ErrURLKey
		}
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, AzurePrefix) {
			continue
		}
		if prev, dup := spelled[lk]; dup {
			return nil, &DuplicateKeyError{Key: safeKey(lk), Spellings: []string{safeKey(prev), safeKey(k)}}
		}
		if n := len(q[k]); n > 1 {
			sp := make([]string, n)
			for i := range sp {
				sp[i] = safeKey(k)
			}
			return nil, &DuplicateKeyError{Key: safeKey(lk), Spellings: sp}
		}
		spelled[lk] = k
		out[lk] = q.Get(k)
	}
	return out, nil
}

// given decides, from pq's record of the parameters it was given, whether
// the user was configured (not pq's OS-user fallback) and whether the
// string itself carried a password.
//
// pq records every parameter set by the environment, the string or a
// service file in an unexported field, Config.set, one entry per source
// (read by pqinternal.SetKeys). If a pq release renames it, pqinternal's
// TestSetKeys fails, and until then a cruder rule applies (a user other than the OS
// user's name was given; a password other than PGPASSWORD's came from the
// string).
func given(cfg pq.Config, runtimePassword bool) (userGiven, passwordInDSN bool) {
	set, ok := pqinternal.SetKeys(cfg)
	if !ok {
		userGiven = cfg.User != "" && (cfg.User != osUser() || os.Getenv("PGUSER") != "")
		passwordInDSN = runtimePassword || cfg.Password != "" && cfg.Password != os.Getenv("PGPASSWORD")
		return userGiven, passwordInDSN
	}
	n := 0
	for _, k := range set {
		switch k {
		case "user":
			userGiven = cfg.User != ""
		case "password":
			n++
		}
	}
	if _, ok := os.LookupEnv("PGPASSWORD"); ok {
		n--
	}
	if cfg.Service != "" && serviceHasPassword(cfg.ServiceFile, cfg.Service) {
		n--
	}
	return userGiven, runtimePassword || n > 0
}

// serviceHasPassword reports whether service's entry in the service file at
// path sets a password (only to attribute a password to its source; the
// values are pq's).
func serviceHasPassword(path, service string) bool {
	sections, _ := readServiceFile(path)
	return has(sections[service], "password")
}

// osUser is the name pq falls back to: $USER, else the account's name.
func osUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := osuser.Current(); err == nil {
		return u.Username
	}
	return ""
}

// scrub rewrites the pq errors that quote a piece of the input which may
// belong to a password: `missing "=" after "ter2"` for "password=hun ter2",
// and a service file's malformed line. pq's other errors quote values of
// keys that are never secret (port, sslmode, datestyle, ...).
func scrub(err error) error {
	switch msg := err.Error(); {
	case strings.Contains(msg, `missing "=" after`):
		return errors.New(`a word without "=" (not shown: it may be part of a password); quote values that contain white space`)
	case strings.Contains(msg, `missing '=' in`), strings.Contains(msg, `no value before '=' in`):
		// pgservice quotes the whole line of the service file.
		return errors.New(`pq: a line of the service file is not key=value (not shown: it may hold a password)`)
	}
	return err
}

// QuoteValue quotes v for a key=value connection string so that pq reads it
// back unchanged: every white-space rune by unicode.IsSpace (as pq splits),
// quotes and backslashes included.
func QuoteValue(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool {
		return unicode.IsSpace(r) || r == '\'' || r == '\\'
	}) < 0 {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Describe returns a form of cfg that is safe to log: where pq connects,
// as whom, with which TLS mode and parameters. It is for people, not for
// pq: it never shows the password or sslkey (inline PEM may be a private
// key), and shows user only when showUser is set (pq fills in the OS user
// otherwise, which is not who pgentra logs in as).
func Describe(cfg pq.Config, showUser bool) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+QuoteValue(v))
		}
	}
	hosts, addrs, ports := []string{cfg.Host}, []string{addrString(cfg.Hostaddr)}, []string{fmt.Sprint(cfg.Port)}
	anyAddr := cfg.Hostaddr.IsValid()
	for _, m := range cfg.Multi {
		hosts, addrs, ports = append(hosts, m.Host), append(addrs, addrString(m.Hostaddr)), append(ports, fmt.Sprint(m.Port))
		anyAddr = anyAddr || m.Hostaddr.IsValid()
	}
	add("host", strings.Join(hosts, ","))
	if anyAddr {
		add("hostaddr", strings.Join(addrs, ","))
	}
	add("port", strings.Join(ports, ","))
	add("dbname", cfg.Database)
	if showUser {
		add("user", cfg.User)
	}
	add("sslmode", string(cfg.SSLMode))
	add("sslrootcert", cfg.SSLRootCert)
	add("sslcert", cfg.SSLCert)
	if cfg.SSLKey != "" {
		add("sslkey", "xxxxx")
	}
	add("service", cfg.Service)
	add("application_name", cfg.ApplicationName)
	add("options", cfg.Options)
	add("target_session_attrs", string(cfg.TargetSessionAttrs))
	add("load_balance_hosts", string(cfg.LoadBalanceHosts))
	if cfg.ConnectTimeout > 0 {
		add("connect_timeout", fmt.Sprint(int64(cfg.ConnectTimeout.Seconds())))
	}
	for _, k := range SortedKeys(cfg.Runtime) {
		v := cfg.Runtime[k]
		if isSecretKey(k) {
			v = "xxxxx"
		}
		add(QuoteValue(k), v)
	}
	return strings.Join(parts, " ")
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// isSecretKey reports whether a run-time parameter's value must never be
// logged. pq sends unknown keys to the server, so these would be refused
// there anyway; they are hidden in case someone tries, under any of the
// usual spellings (Pwd is ADO.NET's and ODBC's, passwd Unix's).
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"pass", "pwd", "secret", "token", "key", "cred", "auth"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// SortedKeys returns m's keys in order, for stable error messages.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// safeKey shows a key in an error only when it looks like a key name, never
// something that could be a stray secret.
func safeKey(k string) string {
	if len(k) > 40 || strings.IndexFunc(k, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		return "<key>"
	}
	return k
}

// NewConfig is pq.NewConfig(s) for a string pgentra wrote itself (Build's),
// with pq's panics turned into an error (ErrSyntax) instead of a crash: pq
// reads the PG* environment each time it parses, and comma lists in PGHOST
// and PGPORT, which it prepends to the string's own, can make a string that
// parsed cleanly once index out of range the next time. Its errors never
// quote a word that may belong to a password (see Parse).
func NewConfig(s string) (pq.Config, error) { return parsePQ(s) }

// parsePQ is pq.NewConfig, with pq's panics turned into ErrSyntax: pq
// v1.12.3 indexes out of range on some multi-host lists (an empty first host
// with more hostaddrs than hosts, "host=,a,b hostaddr=127.0.0.1,127.0.0.2"),
// and a user's DSN must never crash the program. Neither the input nor the
// panic's value is quoted: the string may hold a password.
func parsePQ(s string) (cfg pq.Config, err error) {
	defer func() {
		if recover() != nil {
			cfg, err = pq.Config{}, fmt.Errorf("%w: lib/pq could not parse it (it panicked; check the host, hostaddr and port lists)", ErrSyntax)
		}
	}()
	cfg, err = pq.NewConfig(s)
	if err != nil {
		return pq.Config{}, fmt.Errorf("%w: %w", ErrSyntax, scrub(err))
	}
	return cfg, nil
}
