package dsn

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// cleanPGEnv unsets the PG* variables that would change pq's parse.
func cleanPGEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"PGUSER", "PGPASSWORD", "PGSERVICE", "PGSERVICEFILE", "PGHOST", "PGSSLMODE", "PGAPPNAME", "PGPASSFILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestParseMatchesPQ(t *testing.T) {
	cleanPGEnv(t)
	tests := []struct {
		name, in, pqAlone string // pqAlone: the same string without pgentra's keys
		azure             map[string]string
	}{
		{"key=value", "host=srv.postgres.database.azure.com user=app dbname=orders azure_client_id=abc sslmode=verify-full",
			"host=srv.postgres.database.azure.com user=app dbname=orders sslmode=verify-full", map[string]string{"azure_client_id": "abc"}},
		{"quoted, escaped, any case", `application_name='my app' options='-c search_path=a\'b' AZURE_SCOPE = 'x y'`,
			`application_name='my app' options='-c search_path=a\'b'`, map[string]string{"azure_scope": "x y"}},
		{"U+00A0 inside quotes stays inside", "application_name='x\u00a0host=evil.example.invalid' azure_credential=azure_cli",
			"application_name='x\u00a0host=evil.example.invalid'", map[string]string{"azure_credential": "azure_cli"}},
		{"U+3000 separates, as in pq", "host=h\u3000azure_scope=s\u2028dbname=d",
			"host=h dbname=d", map[string]string{"azure_scope": "s"}},
		{"URL", "postgres://app@srv:5433/orders?sslmode=require&azure_credential=managed_identity&application_name=x&work_mem=64kB",
			"postgres://app@srv:5433/orders?sslmode=require&application_name=x&work_mem=64kB", map[string]string{"azure_credential": "managed_identity"}},
		{"URL empty azure value is kept as empty", "postgres://h/db?azure_client_id=&sslmode=require",
			"postgres://h/db?sslmode=require", map[string]string{"azure_client_id": ""}},
		{"multi-host", "host=a,b port=1,2 azure_scope=s", "host=a,b port=1,2", map[string]string{"azure_scope": "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want, err := pq.NewConfig(tt.pqAlone)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Config, want) {
				t.Errorf("Config\n got %+v\nwant %+v", got.Config, want)
			}
			if !reflect.DeepEqual(got.Azure, tt.azure) {
				t.Errorf("Azure = %q, want %q", got.Azure, tt.azure)
			}
		})
	}
}

func TestParseAzureSpellings(t *testing.T) {
	cleanPGEnv(t)
	for _, in := range []string{
		"postgres://h/db?azure_client_id=aaa&AZURE_CLIENT_ID=bbb",
		"postgres://h/db?azure_client_id=aaa&azure_client_id=bbb",
		"postgres://h/db?azure_client_id=aaa&Azure_Client_Id=",
		"host=h azure_client_id=aaa AZURE_CLIENT_ID=bbb",
		"host=h AZURE_CLIENT_ID=aaa\u00a0azure_client_id=bbb",
	} {
		_, err := Parse(in)
		var dup *DuplicateKeyError
		if !errors.As(err, &dup) || dup.Key != "azure_client_id" || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want a DuplicateKeyError for azure_client_id", in, err)
			continue
		}
		if strings.Contains(err.Error(), "aaa") || strings.Contains(err.Error(), "bbb") {
			t.Errorf("error shows a value: %v", err)
		}
	}
	// The same spelling twice in key=value form: pq keeps the last value for
	// every key, and pgentra cannot see the first (it has no splitter).
	got, err := Parse("host=h azure_client_id=aaa azure_client_id=bbb")
	if err != nil || got.Azure["azure_client_id"] != "bbb" {
		t.Errorf("got %q, %v; want pq's last value", got.Azure, err)
	}
}

func TestParseUserGiven(t *testing.T) {
	cleanPGEnv(t)
	t.Setenv("USER", "osaccount")
	tests := []struct {
		in   string
		env  map[string]string
		want bool
	}{
		{"host=h user=app", nil, true},
		{"host=h user=osaccount", nil, true}, // the OS user's name, but written: given
		{"host=h", nil, false},
		{"host=h user=''", nil, false},
		{"postgres://h/db?user=", nil, false}, // pq drops empty URL values
		{"postgres://app@h/db", nil, true},
		{"postgres://h/db?user=app", nil, true},
		{"host=h", map[string]string{"PGUSER": "envuser"}, true},
		{"host=h", map[string]string{"PGUSER": "osaccount"}, true},
	}
	for _, tt := range tests {
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		got, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got.UserGiven != tt.want {
			t.Errorf("%s (env %v): UserGiven = %v, want %v (user %q)", tt.in, tt.env, got.UserGiven, tt.want, got.Config.User)
		}
		for k := range tt.env {
			os.Unsetenv(k)
		}
	}
}

func TestParsePasswordInDSN(t *testing.T) {
	cleanPGEnv(t)
	dir := t.TempDir()
	svc := filepath.Join(dir, "pg_service.conf")
	if err := os.WriteFile(svc, []byte("[withpw]\nhost=h\npassword = fromfile\n[nopw]\nhost=h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		env  map[string]string
		want bool
	}{
		{"host=h password=hunter2", nil, true},
		{"host=h password\u00a0=hunter2", nil, true},
		{"application_name=a\u00a0password=hunter2", nil, true},
		{"host=h password=''", nil, true},
		{"host=h PASSWORD=hunter2", nil, true}, // pq would send it to the server
		{"postgres://u:hunter2@h/db", nil, true},
		{"postgres://u@h/db?password=hunter2", nil, true},
		{"host=h", nil, false},
		{"host=h", map[string]string{"PGPASSWORD": "fromenv"}, false},
		{"host=h password=hunter2", map[string]string{"PGPASSWORD": "hunter2"}, true},
		{"service=withpw", map[string]string{"PGSERVICEFILE": svc}, false},
		{"service=withpw password=hunter2", map[string]string{"PGSERVICEFILE": svc}, true},
		{"service=nopw password=hunter2", map[string]string{"PGSERVICEFILE": svc}, true},
		{"service=nopw", map[string]string{"PGSERVICEFILE": svc, "PGPASSWORD": "x"}, false},
	}
	for _, tt := range tests {
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		got, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got.PasswordInDSN != tt.want {
			t.Errorf("%s (env %v): PasswordInDSN = %v, want %v", tt.in, tt.env, got.PasswordInDSN, tt.want)
		}
		for k := range tt.env {
			os.Unsetenv(k)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cleanPGEnv(t)
	const secret = "hunter2-SECRET"
	svc := filepath.Join(t.TempDir(), "pg_service.conf")
	if err := os.WriteFile(svc, []byte("[bad]\nhost=h\npassword "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSERVICEFILE", svc)
	tests := []struct{ name, in, want string }{
		{"a word without =", "host=h password=x " + secret, `without "="`},
		{"unterminated quote", "password='" + secret, "unterminated"},
		{"bad URL", "postgres://u:" + secret + "@[::1", "not a valid postgres:// URL"},
		{"too long", "host=" + strings.Repeat("x", MaxLen), "longer than"},
		{"pq rejects a value", "host=h port=notaport", "port"},
		{"service file line", "service=bad", "service file"},
		{"URL key pq would split", "postgres://h/db?x%3D1%20host=evil.example.invalid", "URL query key"},
		{"URL key with U+00A0", "postgres://h/db?application_name%C2%A0host=evil.example.invalid", "URL query key"},
		// pq reads a URL that does not start the string as key=value: the
		// URL up to its first "=", password included, becomes one run-time
		// parameter's name, which String() showed and pq sent to localhost.
		{"URL after white space", " postgres://u:" + secret + "@h.example.invalid/db?sslmode=require", "not a PostgreSQL parameter name"},
		{"URL after a newline", "\npostgresql://u:" + secret + "@h.example.invalid/db?sslmode=require&application_name=x", "not a PostgreSQL parameter name"},
		{"URL scheme in capitals", "Postgres://u:" + secret + "@h.example.invalid/db?sslmode=require", "not a PostgreSQL parameter name"},
		{"URL query key no server takes", "postgres://h/db?x:" + secret + "=1", "not a PostgreSQL parameter name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatal("want error")
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v is not ErrSyntax", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the secret: %q", err)
			}
		})
	}
}

// Run-time parameter names are PostgreSQL's (the server refuses others):
// letters, digits, "_", "$", bytes >= 0x80, dot-separated components.
func TestParamName(t *testing.T) {
	for k, want := range map[string]bool{
		"work_mem": true, "search_path": true, "myext.setting": true, "_pq_.x": true, "a$1": true,
		"sch\u00e9ma": true, "Work_Mem": true,
		"": false, "1abc": false, "a.": false, ".a": false, "a..b": false, "a.1b": false, "$a": false,
		"a-b": false, "a:b": false, "postgres://u:pw@h/db?sslmode": false, "a\x00user": false,
	} {
		if got := paramName(k); got != want {
			t.Errorf("paramName(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestDescribe(t *testing.T) {
	cleanPGEnv(t)
	const secret = "hunter2-SECRET"
	cfg, err := pq.NewConfig("host=a,b port=5432,6432 dbname='d b' user=u sslmode=verify-full sslkey=/k.pem application_name=x search_path=s my_password=" + secret)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = secret
	got := Describe(cfg, true)
	want := "host=a,b port=5432,6432 dbname='d b' user=u sslmode=verify-full sslkey=xxxxx application_name=x my_password=xxxxx search_path=s"
	if got != want {
		t.Errorf("Describe =\n %s\nwant\n %s", got, want)
	}
	if strings.Contains(got, secret) || strings.Contains(Describe(cfg, false), "user=") {
		t.Errorf("Describe shows the secret or a user it should not: %s", got)
	}
}

func TestQuoteValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"":             "''",
		"a b":          "'a b'",
		`a'b\c`:        `'a\'b\\c'`,
		"a\u00a0b":     "'a\u00a0b'",
		"a\u3000b":     "'a\u3000b'",
		"x\u0085y":     "'x\u0085y'",
		"host=e\u2028": "'host=e\u2028'",
	} {
		if got := QuoteValue(in); got != want {
			t.Errorf("QuoteValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// pq v1.12.3 panics on this multi-host list; Parse must return an error
// instead, without quoting the input.
func TestParsePQPanicIsAnError(t *testing.T) {
	in := "host=,a,b hostaddr=127.0.0.1,127.0.0.2 password=hunter2"
	_, err := Parse(in)
	if !errors.Is(err, ErrSyntax) {
		t.Fatalf("Parse(%q) = %v, want ErrSyntax", in, err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error quotes the password: %v", err)
	}
}

// pq writes each value of its startup message as a C string: a NUL byte
// inside one ends it, and what follows is read by the server as further
// parameters — here a second "user", which the server takes over the
// first, so the role pgentra decided on is not the one the server sees.
// Every source is refused: the string in either form and a service file.
func TestParseRefusesNULInStartupValues(t *testing.T) {
	cleanPGEnv(t)
	svc := filepath.Join(t.TempDir(), "pg_service.conf")
	if err := os.WriteFile(svc, []byte("[nul]\nhost=h\napplication_name=x\x00user\x00bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSERVICEFILE", svc)
	for _, in := range []string{
		"host=h user=alice application_name='x\x00user\x00bob'",
		"host=h user=alice dbname=d\x00user\x00bob",
		"host=h user=alice options='-c a=b\x00user\x00bob'",
		"host=h user=alice work_mem='1MB\x00user\x00bob'",
		"host=h user='alice\x00database\x00other'",
		"postgres://alice@h/db?application_name=x%00user%00bob",
		"postgres://alice@h/d%00user%00bob",
		"service=nul user=alice",
	} {
		p, err := Parse(in)
		if err == nil {
			t.Errorf("%q accepted: user %q, application_name %q, dbname %q", in, p.Config.User, p.Config.ApplicationName, p.Config.Database)
			continue
		}
		if !errors.Is(err, ErrSyntax) || !errors.Is(err, ErrNULByte) {
			t.Errorf("%q: %v, want ErrNULByte (and ErrSyntax)", in, err)
		}
	}
	if _, err := Parse("host=h user=alice application_name='x user bob'"); err != nil {
		t.Errorf("no NUL: %v", err)
	}
}

// A password under a key pq does not know is a run-time parameter, which
// Describe (and so Connector.String) shows: only "password" itself was
// refused as a DSN password, and only keys containing password, secret or
// token were hidden. ADO.NET and ODBC spell it Pwd; passwd is common too.
func TestDescribeHidesPasswordLikeKeys(t *testing.T) {
	cleanPGEnv(t)
	const secret = "hunter2-SECRET"
	for _, k := range []string{"Pwd", "pwd", "passwd", "PASS", "pass_word", "passphrase", "api_key", "client_secret", "access_token", "auth", "credential"} {
		cfg, err := pq.NewConfig("host=h user=u " + k + "=" + secret)
		if err != nil {
			t.Fatal(err)
		}
		if got := Describe(cfg, true); strings.Contains(got, secret) {
			t.Errorf("%s: Describe shows the value: %s", k, got)
		}
	}
	cfg, err := pq.NewConfig("host=h work_mem=64kB search_path=s statement_timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Describe(cfg, false), "host=h port=5432 search_path=s statement_timeout=5s work_mem=64kB"; got != want {
		t.Errorf("Describe = %s, want %s", got, want)
	}
}
