package driver

// Regression tests for issue 10 item 3 (one parser, pq's) and for the
// warnings of items 10 and issue 11 item 7. Each of the "refused"/"kept"
// cases failed with the splitter pgentra had before.

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// cleanPGEnv unsets the PG* variables that would change pq's parse.
func cleanPGEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"PGUSER", "PGPASSWORD", "PGSERVICE", "PGSERVICEFILE", "PGHOST", "PGHOSTADDR", "PGPORT", "PGSSLMODE", "PGAPPNAME"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// The first finding: U+00A0 is white space to pq, not to the old
// splitter, which re-joined the quoted value unquoted — and pq read a new
// host= key out of it.
func TestQuotedUnicodeSpaceKeepsPQsHost(t *testing.T) {
	cleanPGEnv(t)
	const app = "x\u00a0host=evil.example.invalid"
	in := "host=127.0.0.1 port=5432 user=u dbname=d sslmode=disable application_name='" + app + "' azure_credential=azure_cli"
	c, err := NewConnector(in, withGetenv(env(nil)))
	if err != nil {
		t.Fatalf("NewConnector: %v", err)
	}
	defer c.Close()
	want, err := pq.NewConfig("host=127.0.0.1 port=5432 user=u dbname=d sslmode=disable application_name='" + app + "'")
	if err != nil {
		t.Fatal(err)
	}
	if c.base.Host != want.Host || c.base.Host != "127.0.0.1" || len(c.base.Multi) != 0 {
		t.Errorf("host = %q (multi %v), pq alone dials %q", c.base.Host, c.base.Multi, want.Host)
	}
	if c.base.ApplicationName != app {
		t.Errorf("application_name = %q, want %q", c.base.ApplicationName, app)
	}
	// The other unicode spaces pq splits on: unquoted, they separate keys
	// exactly as pq says; quoted, they stay inside the value.
	for _, sp := range []string{"\u0085", "\u2028", "\u3000"} {
		c, err := NewConnector("host=127.0.0.1"+sp+"user=u"+sp+"sslmode=disable"+sp+"application_name='a"+sp+"host=evil.example.invalid'", withGetenv(env(nil)))
		if err != nil {
			t.Fatalf("%U: %v", []rune(sp)[0], err)
		}
		c.Close()
		if c.base.Host != "127.0.0.1" || c.base.User != "u" || c.base.ApplicationName != "a"+sp+"host=evil.example.invalid" {
			t.Errorf("%U: host %q user %q application_name %q", []rune(sp)[0], c.base.Host, c.base.User, c.base.ApplicationName)
		}
	}
}

// The server sees the application_name whole — what pq alone sends — and
// the login goes to the host pq alone would dial.
func TestQuotedUnicodeSpaceReachesServerWhole(t *testing.T) {
	it := newITest(t, spClaims(), "nbsp-app")
	it.setPassword(it.cred.peekNext())
	const app = "x\u00a0host=evil.example.invalid"
	c := it.connector("user=nbsp-app application_name='" + app + "'")
	db := sql.OpenDB(c)
	defer db.Close()
	var got, addr string
	if err := db.QueryRow("select current_setting('application_name'), host(inet_server_addr())").Scan(&got, &addr); err != nil {
		t.Fatal(err)
	}
	// The same string given to pq alone, with a password.
	plain, err := pq.NewConnector(fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres sslmode=disable user=nbsp-app password=%s application_name='%s'",
		it.pg.Port, it.cred.lastToken(), app))
	if err != nil {
		t.Fatal(err)
	}
	pdb := sql.OpenDB(plain)
	defer pdb.Close()
	var want string
	if err := pdb.QueryRow("select current_setting('application_name')").Scan(&want); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL shows non-ASCII as "?" (15) or escapes (16+); either way the
	// whole value arrives, "host=" included.
	if got != want || !strings.HasSuffix(got, "host=evil.example.invalid") || !strings.HasPrefix(got, "x") {
		t.Errorf("server's application_name = %q, pq alone gives %q", got, want)
	}
	if addr != "127.0.0.1" {
		t.Errorf("connected to %q", addr)
	}
}

func TestDSNPasswordRefusedWithoutShowingIt(t *testing.T) {
	cleanPGEnv(t)
	const secret = "hunter2"
	for _, in := range []string{
		"host=h.postgres.database.azure.com user=u password\u00a0=hunter2",
		"host=h.postgres.database.azure.com user=u application_name=a\u00a0password=hunter2",
		"host=h.postgres.database.azure.com user=u password=hunter2",
		"host=h.postgres.database.azure.com user=u PASSWORD=hunter2",
		"postgres://u:hunter2@h.postgres.database.azure.com/db",
		"postgres://u@h.postgres.database.azure.com/db?password=hunter2",
		"host=h.postgres.database.azure.com user=u password=hun ter2", // malformed: pq sees a stray word
	} {
		c, err := NewConnector(in, withGetenv(env(nil)))
		if err == nil {
			c.Close()
			t.Errorf("%q accepted", in)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%q: %v is not ErrInvalidConfig", in, err)
		}
		var ce *ConfigError
		if !strings.Contains(in, "hun ter2") && (!errors.As(err, &ce) || ce.Key != "password") {
			t.Errorf("%q: error %v does not name the password key", in, err)
		}
		for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(out, secret) || strings.Contains(out, "ter2") {
				t.Errorf("%q: error shows the password: %s", in, out)
			}
		}
	}
	// PGPASSWORD is not the DSN: accepted, ignored (the token replaces it),
	// and never shown.
	t.Setenv("PGPASSWORD", secret)
	c, err := NewConnector("host=h.postgres.database.azure.com user=u my_password=hunter2", withGetenv(env(nil)))
	if err != nil {
		t.Fatalf("PGPASSWORD refused: %v", err)
	}
	defer c.Close()
	if c.base.Password != "" {
		t.Errorf("base keeps a password")
	}
	for _, out := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(out, secret) {
			t.Errorf("Connector output shows the password: %s", out)
		}
	}
}

// A password with an unescaped "/", "?" or "#" ends the URL's host part
// early: pq read postgres://app:1234/s3cretpart@srv/db as host app, port
// 1234 and dbname "s3cretpart@srv/db", NewConnector accepted it, and
// String() showed dbname=s3cretpart@…. Now such shapes are refused, and the
// error says that a password does not belong in the DSN without showing it.
func TestURLPasswordSpillRefusedWithoutShowingIt(t *testing.T) {
	cleanPGEnv(t)
	for _, in := range []string{
		"postgres://app:1234/s3cretpart@srv.postgres.database.azure.com/db",
		"postgres://app:1234?s3cretpart@srv.postgres.database.azure.com/db?sslmode=verify-full",
		"postgres://app:1234#s3cretpart@srv.postgres.database.azure.com/db",
		"postgres://app:1234?k=s3cretpart@srv.postgres.database.azure.com:5432/db",
	} {
		c, err := NewConnector(in, withGetenv(env(nil)), WithCredential(tokenFunc(func() string { return "t" })))
		if err == nil {
			t.Errorf("%q accepted: %s", in, c.String())
			c.Close()
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%q: %v is not ErrInvalidConfig", in, err)
		}
		for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(out, "s3cret") {
				t.Errorf("%q: error shows the password: %s", in, out)
			}
		}
		if !strings.Contains(err.Error(), "password does not belong in pgentra's DSN") {
			t.Errorf("%q: error %q does not say where the password belongs", in, err)
		}
	}
	// An Entra user name in the query is no such shape.
	c, err := NewConnector("postgres://srv.postgres.database.azure.com:5432/db?user=alice@contoso.com&sslmode=verify-full",
		withGetenv(env(nil)), WithCredential(tokenFunc(func() string { return "t" })))
	if err != nil {
		t.Fatalf("user=alice@contoso.com: %v", err)
	}
	defer c.Close()
	if c.base.User != "alice@contoso.com" || c.base.Host != "srv.postgres.database.azure.com" {
		t.Errorf("user %q host %q", c.base.User, c.base.Host)
	}
}

// A postgres:// URL that does not start the string is read by pq as
// key=value: everything up to its first "=" (the password included) is one
// run-time parameter's name, the host is localhost. That was accepted, and
// String() and %+v showed the password (and pq would have sent it to the
// server as a parameter name). Now it is refused without showing it.
func TestURLNotAtStartRefusedWithoutShowingPassword(t *testing.T) {
	cleanPGEnv(t)
	const secret = "hunter2"
	for _, in := range []string{
		" postgres://app:hunter2@db.example.invalid/db?sslmode=verify-full",
		"\npostgresql://app:hunter2@db.example.invalid/db?sslmode=require&application_name=x",
		"Postgres://app:hunter2@db.example.invalid/db?sslmode=require",
	} {
		c, err := NewConnector(in, withGetenv(env(nil)), WithCredential(tokenFunc(func() string { return "t" })))
		if err == nil {
			for _, out := range []string{c.String(), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
				if strings.Contains(out, secret) {
					t.Errorf("%q: Connector output shows the password: %s", in, out)
				}
			}
			c.Close()
			t.Errorf("%q accepted (host %q, run-time parameters %d)", in, c.base.Host, len(c.base.Runtime))
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%q: %v is not ErrInvalidConfig", in, err)
		}
		if out := fmt.Sprintf("%v %+v %#v", err, err, err); strings.Contains(out, secret) {
			t.Errorf("%q: error shows the password: %s", in, out)
		}
	}
}

func TestAzureKeyInTwoSpellingsRefused(t *testing.T) {
	cleanPGEnv(t)
	for _, in := range []string{
		"postgres://u@h.postgres.database.azure.com/db?azure_client_id=aaa&AZURE_CLIENT_ID=bbb",
		"postgres://u@h.postgres.database.azure.com/db?azure_client_id=aaa&azure_client_id=bbb",
		"host=h.postgres.database.azure.com user=u azure_client_id=aaa AZURE_CLIENT_ID=bbb",
	} {
		c, err := NewConnector(in, withGetenv(env(nil)))
		if err == nil {
			c.Close()
			t.Errorf("%q accepted (client id %q)", in, "?")
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != "azure_client_id" || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%q: %v does not name azure_client_id", in, err)
		}
	}
	// An unknown key in any spelling is pgentra's, and the error lists the
	// known ones.
	_, err := NewConnector("postgres://u@h.postgres.database.azure.com/db?AZURE_CLIENTID=x", withGetenv(env(nil)))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "azure_clientid" || !strings.Contains(err.Error(), keyClientID) || !strings.Contains(err.Error(), keyAllowInsecureTLS) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestEmptyURLUserDerives(t *testing.T) {
	cleanPGEnv(t)
	for _, in := range []string{
		"postgres://h.postgres.database.azure.com/db?user=",
		"postgres://h.postgres.database.azure.com/db",
		"host=h.postgres.database.azure.com user=''",
	} {
		c, err := NewConnector(in, withGetenv(env(nil)))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		c.Close()
		if !c.deriveUser {
			t.Errorf("%q: user %q taken as given; want it derived from the token", in, c.base.User)
		}
	}
	// A user written in the DSN is given, even when it is the OS user's name.
	t.Setenv("USER", "osaccount")
	c, err := NewConnector("host=h.postgres.database.azure.com user=osaccount", withGetenv(env(nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.deriveUser {
		t.Error("user=osaccount ignored because it is the OS user's name")
	}
}

// End to end: ?user= logs in as the role derived from the token, not as the
// operating-system user pq would have filled in.
func TestEmptyURLUserDerivesEndToEnd(t *testing.T) {
	it := newITest(t, userClaims(), "carol@contoso.com")
	it.setPassword(it.cred.peekNext())
	c, err := NewConnector(fmt.Sprintf("postgres://127.0.0.1:%d/postgres?sslmode=disable&user=", it.pg.Port), WithCredential(it.cred))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if u := currentUser(t, db); u != "carol@contoso.com" {
		t.Errorf("current_user = %q", u)
	}
}

func TestDotLocalhostIsRemote(t *testing.T) {
	cleanPGEnv(t)
	for _, in := range []string{
		"host=db.localhost user=u sslmode=disable",
		"host=localhost. user=u sslmode=prefer",
		"host=localhost,db.localhost user=u sslmode=disable",
	} {
		c, err := NewConnector(in, withGetenv(env(nil)))
		if err == nil {
			c.Close()
			t.Errorf("%q accepted: only localhost, loopback addresses and Unix sockets are local", in)
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != "sslmode" {
			t.Errorf("%q: %v", in, err)
		}
	}
	for _, in := range []string{"host=localhost user=u sslmode=disable", "host=LOCALHOST user=u sslmode=disable", "host=::1 user=u sslmode=disable", "host=@abstract user=u"} {
		c, err := NewConnector(in, withGetenv(env(nil)))
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		c.Close()
	}
}

// warnings builds a Connector with a logger and returns its warn lines.
func warnings(t *testing.T, in string, getenv map[string]string) (*Connector, []string) {
	t.Helper()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := NewConnector(in, withGetenv(env(getenv)), WithLogger(logger), WithCredential(tokenFunc(func() string { return "t" })))
	if err != nil {
		t.Fatalf("%q: %v", in, err)
	}
	t.Cleanup(func() { c.Close() })
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return c, lines
}

func TestPQGODebugWarning(t *testing.T) {
	cleanPGEnv(t)
	const in = "host=h.postgres.database.azure.com user=u"
	_, lines := warnings(t, in, map[string]string{"PQGO_DEBUG": "1"})
	if len(lines) != 1 || !strings.Contains(lines[0], "PQGO_DEBUG=1") || !strings.Contains(lines[0], "access token") || !strings.Contains(lines[0], "level=WARN") {
		t.Errorf("with PQGO_DEBUG=1: %q, want one warning", lines)
	}
	for _, v := range []string{"", "0", "2"} {
		if _, lines := warnings(t, in, map[string]string{"PQGO_DEBUG": v}); len(lines) != 0 {
			t.Errorf("PQGO_DEBUG=%q: %q, want no warning (pq prints only for \"1\")", v, lines)
		}
	}
	// Without a logger there is nowhere to warn; it must still work.
	c, err := NewConnector(in, withGetenv(env(map[string]string{"PQGO_DEBUG": "1"})))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestWeakTLSWarningAndServiceConnectorUpgrade(t *testing.T) {
	cleanPGEnv(t)
	tests := []struct {
		name, dsn string
		env       map[string]string
		mode      pq.SSLMode
		warn      bool
	}{
		{"user require to a custom name", "host=db.example.com user=u sslmode=require", nil, pq.SSLModeRequire, true},
		{"user verify-ca to a custom name", "host=db.example.com user=u sslmode=verify-ca", nil, pq.SSLModeVerifyCA, true},
		{"user require to a second, remote host", "host=localhost,db.example.com user=u sslmode=require", nil, pq.SSLModeRequire, true},
		{"user require to Azure: verified", "host=srv.postgres.database.azure.com user=u sslmode=require", nil, pq.SSLModeVerifyFull, false},
		{"user require to localhost", "host=localhost user=u sslmode=require", nil, pq.SSLModeRequire, false},
		{"user verify-full", "host=srv.postgres.database.azure.com user=u sslmode=verify-full", nil, pq.SSLModeVerifyFull, false},
		{"default", "host=srv.postgres.database.azure.com user=u", nil, pq.SSLModeVerifyFull, false},
		{"Service Connector require", "", map[string]string{envConnectionString: "host=srv.postgres.database.azure.com port=5432 dbname=orders sslmode=require user=app"}, pq.SSLModeVerifyFull, false},
		{"Service Connector verify-ca", "", map[string]string{envConnectionString: "host=srv.postgres.database.azure.com dbname=orders sslmode=verify-ca user=app"}, pq.SSLModeVerifyFull, false},
		{"Service Connector without sslmode", "", map[string]string{envConnectionString: "host=srv.postgres.database.azure.com dbname=orders user=app"}, pq.SSLModeVerifyFull, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, lines := warnings(t, tt.dsn, tt.env)
			if c.base.SSLMode != tt.mode {
				t.Errorf("sslmode %q, want %q", c.base.SSLMode, tt.mode)
			}
			if tt.warn != (len(lines) == 1) || len(lines) > 1 {
				t.Errorf("warnings %q, want %v", lines, tt.warn)
			}
			if tt.warn && (!strings.Contains(lines[0], "sslmode="+string(tt.mode)) || !strings.Contains(lines[0], "verify-full")) {
				t.Errorf("warning %q does not name the mode and the fix", lines[0])
			}
		})
	}
	// Service Connector's string to a remote host with sslmode=disable is
	// still refused.
	_, err := NewConnector("", withGetenv(env(map[string]string{envConnectionString: "host=srv.postgres.database.azure.com sslmode=disable user=app"})))
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Service Connector sslmode=disable: %v", err)
	}
}

// The config pgentra hands pq is pq's own parse of the string without the
// azure_* keys, except the password (the token) and sslmode (verify-full
// when none was given).
func TestBaseConfigIsPQsParse(t *testing.T) {
	cleanPGEnv(t)
	tests := []struct{ in, pqAlone string }{
		{"host=srv.postgres.database.azure.com user=u dbname=d azure_credential=azure_cli application_name='a\u00a0b' work_mem=64kB",
			"host=srv.postgres.database.azure.com user=u dbname=d application_name='a\u00a0b' work_mem=64kB"},
		{"postgres://u@[::1%25lo]:5433/d%20b?sslmode=disable&AZURE_SCOPE=https%3A%2F%2Ftoken.postgres.cosmos.azure.com%2F.default&options=-c%20a%3Db",
			"postgres://u@[::1%25lo]:5433/d%20b?sslmode=disable&options=-c%20a%3Db"},
		{"host=a.example.com,b.example.com port=1,2 user=u sslmode=require target_session_attrs=read-write azure_refresh_margin=1m",
			"host=a.example.com,b.example.com port=1,2 user=u sslmode=require target_session_attrs=read-write"},
	}
	for _, tt := range tests {
		c, err := NewConnector(tt.in, withGetenv(env(nil)))
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		c.Close()
		want, err := pq.NewConfig(tt.pqAlone)
		if err != nil {
			t.Fatal(err)
		}
		if want.SSLMode == "" {
			want.SSLMode = pq.SSLModeVerifyFull
		}
		if fmt.Sprintf("%#v", c.base) != fmt.Sprintf("%#v", want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tt.in, c.base, want)
		}
	}
}

// FuzzConnectorConfig is FuzzParse (internal/dsn) one level up: for any DSN
// that NewConnector accepts, the config it hands pq is pq's own parse of the
// string with the azure_* keys taken out — except the password (the token,
// blank until Connect) and sslmode (verify-full when none was given, or
// when require or verify-ca was verified as verify-full; or refused). Its
// seeds run with every go test.
func FuzzConnectorConfig(f *testing.F) {
	for _, s := range []string{
		"host=127.0.0.1 user=u sslmode=disable application_name='x\u00a0host=evil.example.invalid' azure_scope=https://token.postgres.cosmos.azure.com/.default",
		"host=h.postgres.database.azure.com\u3000user=u\u2028dbname=d\u0085AZURE_REFRESH_MARGIN=1m",
		`host=a.postgres.database.azure.com,b.postgres.database.azure.com port=1,2 options='-c a=b' dbname=d\ b`,
		"postgres://u@[::1%25lo]:5433/d%20b?sslmode=disable&azure_client_id=c&options=-c%20a%3Db",
		"postgres://h.postgres.database.azure.com/db?user=&sslmode=",
		"host=localhost hostaddr=127.0.0.1 sslmode=prefer service=",
		"host=h.postgres.database.azure.com sslmode=require",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if strings.TrimSpace(in) == "" {
			return // Service Connector / PG* path, covered elsewhere
		}
		c, err := NewConnector(in, withGetenv(env(nil)), WithCredential(tokenFunc(func() string { return "t" })))
		if err != nil {
			return
		}
		c.Close()
		want, err := pq.NewConfig(in)
		if err != nil {
			t.Fatalf("NewConnector accepts %q, pq does not: %v", in, err)
		}
		for k := range want.Runtime {
			if strings.HasPrefix(strings.ToLower(k), "azure_") {
				delete(want.Runtime, k)
			}
		}
		if want.SSLMode == "" || c.tls.from != "" && c.tls.from == want.SSLMode {
			want.SSLMode = pq.SSLModeVerifyFull
		}
		want.Password = ""
		if fmt.Sprintf("%#v", c.base) != fmt.Sprintf("%#v", want) {
			t.Fatalf("%q:\n got %#v\nwant %#v", in, c.base, want)
		}
	})
}
