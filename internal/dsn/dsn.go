// Package dsn splits a PostgreSQL connection string into the part lib/pq
// understands and pgentra's own azure_* settings.
//
// pq sends every key it does not know to the server as a run-time parameter,
// so pgentra's keys must be removed before pq sees the string. Both of pq's
// forms are accepted: postgres:// URLs and libpq key=value strings. The
// result keeps the caller's form so pq parses it exactly as it would have.
package dsn

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// AzurePrefix marks the keys that belong to pgentra.
const AzurePrefix = "azure_"

// MaxLen bounds the input: a connection string is a few hundred bytes, and
// anything far larger is a mistake (or an attack on the parser).
const MaxLen = 64 << 10

// ErrSyntax reports a connection string that cannot be parsed.
var ErrSyntax = errors.New("malformed connection string")

// Split is a connection string taken apart.
type Split struct {
	// PQ is the connection string without any azure_* key, in the form it
	// was given (URL or key=value), ready for pq.NewConfig.
	PQ string
	// Azure holds the azure_* keys (lower-case, prefix included) and values.
	Azure map[string]string
	// Keys records which of pq's keys the string set (user, password,
	// sslmode, host, ...). Values are not kept: one of them may be a password.
	Keys map[string]bool
}

// Parse splits s. It never returns the input, or any part of a value, in an
// error: a malformed string may hold a password.
func Parse(s string) (Split, error) {
	if len(s) > MaxLen {
		return Split{}, fmt.Errorf("%w: longer than %d bytes", ErrSyntax, MaxLen)
	}
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return parseURL(s)
	}
	return parseKV(s)
}

func parseURL(s string) (Split, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url's errors quote the whole input, password included.
		return Split{}, fmt.Errorf("%w: not a valid postgres:// URL", ErrSyntax)
	}
	out := Split{Azure: map[string]string{}, Keys: map[string]bool{}}
	if u.User != nil {
		if u.User.Username() != "" {
			out.Keys["user"] = true
		}
		if _, ok := u.User.Password(); ok {
			out.Keys["password"] = true
		}
	}
	if u.Host != "" {
		out.Keys["host"] = true
		if u.Port() != "" {
			out.Keys["port"] = true
		}
	}
	if strings.TrimPrefix(u.Path, "/") != "" {
		out.Keys["dbname"] = true
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Split{}, fmt.Errorf("%w: bad query string in URL", ErrSyntax)
	}
	for k, vs := range q {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, AzurePrefix) {
			if len(vs) > 1 {
				return Split{}, fmt.Errorf("%w: key %q given %d times", ErrSyntax, safeKey(k), len(vs))
			}
			out.Azure[lk] = vs[0]
			q.Del(k)
			continue
		}
		out.Keys[k] = true
	}
	if len(out.Azure) == 0 {
		out.PQ = s // nothing to remove: hand pq exactly what it was given
		return out, nil
	}
	// Rebuild by hand: url.URL.String drops the "//" of a URL without a host.
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.User != nil {
		b.WriteString(u.User.String())
		b.WriteByte('@')
	}
	b.WriteString(u.Host)
	b.WriteString(u.EscapedPath())
	if rq := q.Encode(); rq != "" {
		b.WriteByte('?')
		b.WriteString(rq)
	}
	out.PQ = b.String()
	return out, nil
}

// parseKV follows libpq's conninfo_parse (and pq's port of it): key = value
// pairs separated by white space; a value is either a bare word or a
// single-quoted string; a backslash escapes the next character in both.
func parseKV(s string) (Split, error) {
	pairs, err := scanKV(s)
	if err != nil {
		return Split{}, err
	}
	out := Split{Azure: map[string]string{}, Keys: map[string]bool{}}
	var b strings.Builder
	for _, p := range pairs {
		lk := strings.ToLower(p.key)
		if strings.HasPrefix(lk, AzurePrefix) {
			if _, dup := out.Azure[lk]; dup {
				return Split{}, fmt.Errorf("%w: key %q given twice", ErrSyntax, safeKey(p.key))
			}
			out.Azure[lk] = p.value
			continue
		}
		out.Keys[p.key] = true
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(QuoteValue(p.value))
	}
	out.PQ = b.String()
	return out, nil
}

type pair struct{ key, value string }

func scanKV(s string) ([]pair, error) {
	var (
		pairs []pair
		r     = []rune(s)
		i     int
	)
	isSpace := func(c rune) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	for {
		for i < len(r) && isSpace(r[i]) {
			i++
		}
		if i >= len(r) {
			return pairs, nil
		}
		start := i
		for i < len(r) && !isSpace(r[i]) && r[i] != '=' {
			i++
		}
		key := string(r[start:i])
		for i < len(r) && isSpace(r[i]) {
			i++
		}
		if i >= len(r) || r[i] != '=' {
			// The key is not quoted: a stray word may be half of a password.
			return nil, fmt.Errorf("%w: missing \"=\" after the word at byte %d", ErrSyntax, len(string(r[:start])))
		}
		if key == "" {
			return nil, fmt.Errorf("%w: \"=\" without a key", ErrSyntax)
		}
		i++ // '='
		for i < len(r) && isSpace(r[i]) {
			i++
		}
		var val []rune
		if i < len(r) && r[i] == '\'' {
			i++
			closed := false
			for i < len(r) {
				c := r[i]
				i++
				if c == '\\' {
					if i >= len(r) {
						break
					}
					val = append(val, r[i])
					i++
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				val = append(val, c)
			}
			if !closed {
				return nil, fmt.Errorf("%w: unterminated quoted value for key %q", ErrSyntax, safeKey(key))
			}
		} else {
			for i < len(r) && !isSpace(r[i]) {
				c := r[i]
				i++
				if c == '\\' && i < len(r) {
					c = r[i]
					i++
				}
				val = append(val, c)
			}
		}
		pairs = append(pairs, pair{key: key, value: string(val)})
	}
}

// QuoteValue quotes v for a key=value connection string so that pq reads it
// back unchanged.
func QuoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Redact returns a form of s that is safe to log: values of keys that may
// hold secrets are replaced, and a URL's password is hidden. A string that
// cannot be parsed is replaced entirely.
func Redact(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return "<unparseable connection string>"
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
		}
		q := u.Query()
		for k := range q {
			if isSecretKey(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
		return u.Redacted()
	}
	pairs, err := scanKV(s)
	if err != nil {
		return "<unparseable connection string>"
	}
	parts := make([]string, 0, len(pairs))
	for _, p := range pairs {
		v := p.value
		if isSecretKey(p.key) {
			v = "xxxxx"
		}
		parts = append(parts, p.key+"="+QuoteValue(v))
	}
	return strings.Join(parts, " ")
}

// isSecretKey reports whether a key's value must never be logged. Unknown
// keys are not secret: pq sends them to the server as run-time parameters.
func isSecretKey(k string) bool {
	switch strings.ToLower(k) {
	case "password", "sslpassword", "sslkey", "azure_client_secret", "azure_client_certificate_password":
		return true
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
