package dsn

import (
	"errors"
	"strings"
	"testing"
)

// A password written into a URL with an unescaped "/", "?" or "#" ends the
// URL's host part early: pq (net/url) read postgres://app:1234/s3cretpart@srv/db
// as host app, port 1234 and dbname "s3cretpart@srv/db", accepted it, and
// Connector.String() showed the piece. Such shapes are refused, and the
// error shows no part of the password.
func TestParseURLPasswordSpillRefused(t *testing.T) {
	noPGEnv(t)
	for _, in := range []string{
		"postgres://app:1234/s3cretpart@srv/db",
		"postgresql://app:1234/s3cretpart@srv.postgres.database.azure.com:5432/db?sslmode=require",
		"postgres://app:1234?s3cretpart@srv/db",
		"postgres://app:1234?s3cretpart@srv",
		"postgres://app:1234#s3cretpart@srv/db",
		"postgres://app:pw#s3cretpart@srv/db",
		"postgres://app:1234?s3cret=part@srv.example.com/db?sslmode=require",
		"postgres://app:1234?x=s3cretpart@srv.example.com:5432/db",
		"postgres://app:1234?application_name=s3cretpart@srv/db",
		"postgres://app:1234/db?s3cretpart@srv",
		"postgres://app:12/s3cret?part@srv/db",
		"postgres://app:1234?x=y&s3cretpart@srv/db",
		"postgres://app:1234?x;s3cretpart@srv/db",
		"postgres://ap/p:s3cretpart@srv/db", // a user name with "/": the password lands in the path
		"postgres://app@corp:1234?s3cretpart@srv/db",
		"postgres://app:@?user=s3cretpart@srv", // found by FuzzURLPassword: the password "@?user=s3cretpart"
		"postgres://app:p@ss?user=s3cretpart@srv.example.com",
		"postgres://app:1234?user&user=s3cretpart@srv", // found by FuzzURLPassword: pq reads the first user (none) and drops the rest
		"postgres://app:1234?user=&user=s3cretpart@srv",
		"postgres://app:1234?user=u&user=s3cretpart@srv",
	} {
		p, err := Parse(in)
		if err == nil {
			t.Errorf("%q accepted: %s", in, Describe(p.Config, true))
			continue
		}
		msg := err.Error()
		for _, piece := range []string{"s3cret", "part@"} {
			if strings.Contains(msg, piece) {
				t.Errorf("%q: error shows the password: %s", in, msg)
			}
		}
		if !strings.Contains(msg, "password") || !strings.Contains(msg, "DSN") {
			t.Errorf("%q: error %q does not say that a password does not belong in the DSN", in, msg)
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v is not ErrSyntax", in, err)
		}
	}
}

// What the rule must not refuse: an "@" where a URL legitimately has one.
// Entra user names are e-mail addresses.
func TestParseURLWithAtKept(t *testing.T) {
	noPGEnv(t)
	for _, tt := range []struct{ in, user, app, db string }{
		{"postgres://srv.postgres.database.azure.com:5432/db?user=alice@contoso.com&sslmode=require", "alice@contoso.com", "", "db"},
		{"postgres://srv.postgres.database.azure.com/db?user=alice@contoso.com", "alice@contoso.com", "", "db"},
		{"postgres://alice@contoso.com@srv.postgres.database.azure.com:5432/db", "alice@contoso.com", "", "db"},
		{"postgres://alice%40contoso.com@srv:5432/d%40b", "alice@contoso.com", "", "d@b"},
		{"postgres://srv:5432/db?application_name=me@corp.example&user=u", "u", "me@corp.example", "db"},
		{"postgres://srv/db?search_path=a@b&user=u", "u", "", "db"},
		{"postgres://srv:5432/db?user=a%40b%2Fc", "a@b/c", "", "db"},
	} {
		p, err := Parse(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if p.Config.User != tt.user || p.Config.ApplicationName != tt.app || p.Config.Database != tt.db {
			t.Errorf("%q: user %q app %q dbname %q", tt.in, p.Config.User, p.Config.ApplicationName, p.Config.Database)
		}
	}
}

// FuzzURLPassword (run by CI as -fuzz=FuzzURLPassword): a URL written with
// a password holding a raw "/", "?" or "#" — postgres://user:pw@host/tail —
// is never accepted with the password cut into other fields, and no error
// shows the password. A password ending in "?user=x" before a
// bare host (no port, no path) reads exactly as a legitimate URL
// (postgres://app:1?user=x@srv: host app, user x@srv): only that is
// accepted, as documented.
func FuzzURLPassword(f *testing.F) {
	noPGEnv(f)
	for _, s := range [][4]string{
		{"app", "1234/s3cretpart", "srv", "/db"},
		{"app", "1234?s3cretpart", "srv.postgres.database.azure.com:5432", "/db?sslmode=require"},
		{"app", "1234#s3cretpart", "srv", "/db"},
		{"app", "1234?k=s3cretpart", "srv", "/db"},
		{"app", "1234?user=x", "srv", ""},
		{"app", "1234?user=x&a=b", "srv", "/db"},
		{"app", "12/x?user=x", "srv", "?sslmode=require"},
		{"app", "pw/x", "srv", "/db"},
		{"app", "1234?a;b", "srv", "/db"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, user, pw, host, tail string) {
		if !plain(user, "._-") || !plain(strings.TrimRight(host, "0123456789:"), ".-") || strings.Count(host, ":") > 1 ||
			!strings.ContainsAny(pw, "/?#") || strings.ContainsAny(tail, "@#") || tail != "" && tail[0] != '/' && tail[0] != '?' {
			return
		}
		// The password ends in a marker: the piece a spill puts into the
		// database name, a parameter or the fragment.
		const marker = "QzX7wv"
		pw += marker
		in := "postgres://" + user + ":" + pw + "@" + host + tail
		p, err := Parse(in)
		if err == nil {
			if p.Config.Password == pw {
				return // read whole: the driver refuses it as a DSN password
			}
			bare := !strings.Contains(host, ":") && tail == ""
			for _, v := range []string{p.Config.User, p.Config.ApplicationName, p.Config.FallbackApplicationName} {
				if bare && strings.HasSuffix(v, "@"+host) {
					return // the documented ambiguity
				}
			}
			t.Fatalf("%q accepted with the password cut up: %s", in, Describe(p.Config, true))
		}
		if msg := err.Error(); strings.Contains(msg, "zX7w") || len(pw) >= 10 && strings.Contains(msg, pw) {
			t.Fatalf("%q: the error shows the password: %s", in, msg)
		}
	})
}

// plain reports a non-empty s of ASCII letters, digits and extra.
func plain(s, extra string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r))
	}) < 0
}
