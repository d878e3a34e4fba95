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
