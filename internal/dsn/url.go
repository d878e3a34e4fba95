package dsn

import (
	"fmt"
	"net/url"
	"strings"
)

// ErrURLPassword reports a postgres:// URL of a shape in which pq would
// read part of a password as another field: net/url ends the host part at
// the first "/", "?" or "#", so postgres://app:1234/s3cret@srv/db is host
// app, port 1234 and dbname "s3cret@srv/db", and after "#" everything is
// dropped. The error never shows the URL. errors.Is(err, ErrSyntax) holds.
var ErrURLPassword = fmt.Errorf("%w: a postgres:// URL in which pq would read part of a password as another field", ErrSyntax)

// URLPasswordError is ErrURLPassword with the place in the URL at fault.
type URLPasswordError struct {
	// Where describes the place, never its text: `an "@" in the path`.
	Where string
}

// Error names the place and the fix, never any part of the URL.
func (e *URLPasswordError) Error() string {
	return fmt.Sprintf(`%v: the URL (not shown: it may hold a password) has %s. pq ends a URL's host part at the first "/", "?" or "#", `+
		`so a password written with one of them would be read, in part, as the port, the database name or a parameter, or dropped. `+
		`A password does not belong in pgentra's DSN (pgentra sends an Entra token as the password): remove it. `+
		`In a user name or value, write "@" as %%40, "/" as %%2F, "?" as %%3F, "#" as %%23`, ErrSyntax, e.Where)
}

// Unwrap makes errors.Is(err, ErrURLPassword) and errors.Is(err, ErrSyntax)
// true.
func (e *URLPasswordError) Unwrap() error { return ErrURLPassword }

// checkURLShape refuses, for a string pq reads as a URL, the shapes that a
// password holding an unescaped "/", "?" or "#" takes: the "@" that was to
// end the user information then follows the host part. It reads the raw
// string (the text net/url and so pq split it on) and decides nothing that
// is dialed: it only refuses.
//
//   - "#": pq drops everything after it (libpq does not), a password's tail
//     included.
//   - "@" in the path: the database name holds what followed the "/".
//   - "@" in a query key: no PostgreSQL parameter name holds one.
//   - "@" in a query value after a user:password part (the password read
//     is then only the part before a "@" it held).
//   - "@" in a query value when the host part has a ":" (user:password
//     read as host:port): refused unless the value is an e-mail-like user or
//     application name (user=alice@contoso.com) that pq reads (the first
//     value of its key: pq drops the others, and with them what a password
//     put there), since the rest of a URL after the "@" would hold "/",
//     ":", "?" or another "@". A password
//     ending in "?user=x" before a bare host (postgres://app:1?user=x@srv)
//     reads exactly as a legitimate URL and is accepted.
func checkURLShape(s string) error {
	rest, ok := strings.CutPrefix(s, "postgres://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "postgresql://"); !ok {
			return nil
		}
	}
	if strings.Contains(rest, "#") {
		return &URLPasswordError{Where: `a "#", after which pq ignores everything`}
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		return nil
	}
	authority, rest := rest[:end], rest[end:]
	path, query, _ := strings.Cut(rest, "?")
	if strings.Contains(path, "@") {
		return &URLPasswordError{Where: `an "@" in its path (the database name)`}
	}
	at := strings.LastIndex(authority, "@")
	password := at >= 0 && strings.Contains(authority[:at], ":")
	colon := strings.Contains(authority[at+1:], ":")
	read, _ := url.ParseQuery(query) // what pq reads is each key's first value
	for pair := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		switch {
		case strings.Contains(k, "@"):
			return &URLPasswordError{Where: `an "@" in a query key`}
		case !strings.Contains(v, "@"):
		case password:
			return &URLPasswordError{Where: `an "@" in a query value after a user:password part`}
		case colon && !emailLike(k, v, read):
			return &URLPasswordError{Where: `an "@" in a query value while its host part has a ":" (user:password reads as host:port)`}
		}
	}
	return nil
}

// emailLike reports a value that is a plausible e-mail address or UPN for
// a key that takes one: something@domain, the domain of letters, digits,
// ".", "-" and "_". Only a pair pq reads counts: not one net/url cannot
// parse (bad percent-encoding, a ";"), which it drops, nor a repeated key's
// later value (read holds the query as net/url parses it; pq takes each
// key's first value), since pq would read neither it nor what it held.
func emailLike(k, v string, read url.Values) bool {
	pair, err := url.ParseQuery(k + "=" + v)
	if err != nil {
		return false
	}
	for key, vals := range pair {
		if first := read[key]; len(first) == 0 || first[0] != vals[0] {
			return false
		}
	}
	switch k {
	case "user", "application_name", "fallback_application_name":
	default:
		return false
	}
	_, domain, _ := strings.Cut(v, "@")
	return domain != "" && strings.IndexFunc(domain, func(r rune) bool {
		return !(r == '.' || r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0
}
