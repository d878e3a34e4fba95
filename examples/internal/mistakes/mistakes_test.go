package mistakes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/examples/internal/exenv"
	"github.com/pgentra/pgentra/examples/internal/extest"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

// An attempt is one careless try. The newcomer sees err; the fix must be
// named in pgentra's hint (LoginError.Hint) or, for errors that are not a
// LoginError, in the message — and, where pgentra never gets to explain
// (GORM on pgx, a query sqlx left with `?`), in the docs section that
// quotes what the newcomer sees.
type attempt struct {
	name string
	try  func(t *testing.T, env *emulator.Env) error
	// want: key words of the hint, or of the message when there is no
	// LoginError.
	want []string
	// readme: what the docs (docs/*.md) must explain.
	readme []readmeCheck
	// foreign: the error is not pgentra's (pgentra is never called, or the
	// query failed), so it does not say "pgentra:".
	foreign bool
}

// maxMessage is the longest error message a newcomer should have to read:
// the cause, a one-line hint and a link; the full hint is in the Hint field.
const maxMessage = 300

// readmeCheck: a section of docs/troubleshooting.md (or, with file and
// section set, that section of that page) must quote quote and name every
// fix.
type readmeCheck struct {
	quote, file, section string
	fix                  []string
}

// TestCarelessAttempts is issue 15's table: every mistake, the words that
// name its fix. Rows marked "words" need the hints of driver/hint.go as
// the words engineer rewrites them (and the emulator's Azure texts); they
// fail on this branch alone until the coordinator merges both.
func TestCarelessAttempts(t *testing.T) {
	attempts := []attempt{
		{
			// words: the hint for a TLS-required refusal names sslmode.
			name: "sslmode=disable to a loopback server that requires TLS",
			try: func(t *testing.T, env *emulator.Env) error {
				p := identity(t, env, "tls-app")
				conf, err := env.CA.ServerTLS(emulator.Host, "127.0.0.1", "::1")
				if err != nil {
					t.Fatal(err)
				}
				front, err := env.StartFront(conf, true, nil) // Azure: require_secure_transport=on
				if err != nil {
					t.Fatal(err)
				}
				defer front.Close()
				err = ping(t, fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=disable azure_client_id=%s",
					emulator.Host, front.Port(), p.Name, p.AppID))
				if pw := front.Passwords(); len(pw) != 0 {
					t.Errorf("the token travelled in clear: the front received %d password(s)", len(pw))
				}
				return err
			},
			want: []string{"sslmode"},
		},
		{
			// words: with a given user and a token that names no one (a
			// managed identity's database token), the hint says how to find
			// the identity's role.
			name: "user names another identity's role (managed identity)",
			try: func(t *testing.T, env *emulator.Env) error {
				mine, other := identity(t, env, "orders"), identity(t, env, "billing")
				err := ping(t, env.DSN(other.Name, "azure_client_id="+mine.AppID))
				// The database token names no one: the management-scope
				// lookup tells which role this token maps to.
				wantHint(t, err, fmt.Sprintf("maps to role %q", mine.Name))
				if err != nil && !strings.Contains(err.Error(), mine.Name) {
					t.Errorf("the message does not name the token's role %q: %v", mine.Name, err)
				}
				var le *driver.LoginError
				if errors.As(err, &le) && strings.Contains(le.Hint, "pgaadauth_create_principal('"+other.Name) {
					t.Errorf("the hint suggests creating a role named after the wrong user: %s", le.Hint)
				}
				return err
			},
			want: []string{"set user="},
		},
		{
			// words: a user's token names its role (upn): the hint says
			// which role this token maps to, without a second login.
			name: "user names a role that is not the signed-in user's (Azure CLI)",
			try: func(t *testing.T, env *emulator.Env) error {
				carol, err := env.Tenant.AddUser(unique("carol") + "@contoso.com")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := env.CreatePrincipal(context.Background(), carol, false); err != nil {
					t.Fatal(err)
				}
				other := identity(t, env, "reports")
				dir := t.TempDir()
				if _, err := entra.InstallFakeAZ(dir, env.Tenant, carol); err != nil {
					t.Fatal(err)
				}
				t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
				err = ping(t, env.DSN(other.Name, "azure_credential=azure_cli"))
				if err != nil {
					wantHint(t, err, fmt.Sprintf("maps to role %q", carol.Name))
				}
				return err
			},
			want: nil, // the attempt asserts `maps to role "<upn>"` itself
		},
		{
			name: "azure_client_id of an identity not on the compute",
			try: func(t *testing.T, env *emulator.Env) error {
				const notHere = "0c0ffee0-0000-4000-8000-00000000dead"
				err := ping(t, env.DSN("orders", "azure_client_id="+notHere))
				var te *driver.TokenError
				if !errors.As(err, &te) || te.IdentityKey != "azure_client_id" {
					t.Errorf("err = %v, want a *driver.TokenError naming azure_client_id", err)
				}
				if err != nil && strings.Count(err.Error(), "pgentra:") != 1 {
					t.Errorf(`"pgentra:" is not said once: %v`, err)
				}
				return err
			},
			want: []string{"azure_client_id=0c0ffee0-0000-4000-8000-00000000dead", "DefaultAzureCredential chain",
				"az webapp identity show", "az containerapp identity show", "az vm identity show"},
			readme: []readmeCheck{
				// App Service's wording (the VM's has its own row).
				{quote: "Unable to load the proper Managed Identity", fix: []string{"azure_client_id", "az webapp identity show", "az containerapp identity show"}},
				// The chain pgentra builds for a named identity reports as ChainedTokenCredential.
				{quote: "ChainedTokenCredential: failed to acquire a token", fix: []string{"DefaultAzureCredential chain", "azure_client_id"}},
			},
		},
		{
			name: "GORM without DriverName: pgx sends the empty password, pgentra is never called",
			try: func(t *testing.T, env *emulator.Env) error {
				p := identity(t, env, "gorm-pgx")
				dsn := env.DSN(p.Name, "azure_client_id="+p.AppID)
				before := len(env.Front.Passwords())
				var errs []error
				for _, d := range []gorm.Dialector{postgres.Open(dsn), postgres.New(postgres.Config{DSN: dsn})} {
					db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
					if err == nil {
						sqlDB, _ := db.DB()
						err = sqlDB.Ping()
						sqlDB.Close()
					}
					errs = append(errs, err)
				}
				// sql.Open("postgres", …) is lib/pq alone: no token either.
				db, err := sql.Open("postgres", dsn)
				if err == nil {
					err = db.Ping()
					db.Close()
				}
				errs = append(errs, err)
				for i, err := range errs {
					if err == nil || !strings.Contains(err.Error(), "invalid format") {
						t.Errorf("attempt %d: err = %v, want the server's invalid-format refusal", i, err)
					}
				}
				for _, pw := range env.Front.Passwords()[before:] {
					if _, err := token.ParseClaims(pw); err == nil {
						t.Errorf("a token reached the server: pgentra was called after all")
					}
				}
				return errs[0]
			},
			want:    []string{"invalid format"},
			readme:  []readmeCheck{{quote: "invalid format", fix: []string{"DriverName", `sql.Open("postgres"`, "didn't go through pgentra"}}},
			foreign: true,
		},
		{
			name: "sqlx without BindDriver: Rebind leaves ? in the query",
			try: func(t *testing.T, env *emulator.Env) error {
				p := identity(t, env, "sqlx-app")
				if err := exenv.RunAdminSQL(extest.Context(t, time.Minute), env, p.Name, exenv.Database); err != nil {
					t.Fatal(err) // docs/admin.sql, as the Entra administrator: a schema for the role
				}
				dsn := env.DSN(p.Name, "azure_client_id="+p.AppID)
				db, err := sqlx.Open("pgentra", dsn) // sqlx does not know the name "pgentra"
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				ctx := extest.Context(t, time.Minute)
				if _, err := db.ExecContext(ctx, "create table notes (id int, body text)"); err != nil {
					t.Fatal(err)
				}
				const q = "insert into notes (id, body) values (?, ?)"
				if got := db.Rebind(q); got != q {
					t.Errorf("Rebind = %q; sqlx now knows pgentra: this row tests nothing", got)
				}
				_, err = db.ExecContext(ctx, db.Rebind(q), 1, "x")
				// The fix the docs prefer: the same *sql.DB, named "postgres" for sqlx.
				fixed := sqlx.NewDb(db.DB, "postgres")
				if got := fixed.Rebind(q); got != "insert into notes (id, body) values ($1, $2)" {
					t.Errorf("sqlx.NewDb(db, \"postgres\").Rebind = %q", got)
				}
				if _, err := fixed.ExecContext(ctx, fixed.Rebind(q), 1, "x"); err != nil {
					t.Errorf("with sqlx.NewDb(db, \"postgres\"): %v", err)
				}
				return err
			},
			want: []string{`syntax error at or near ","`},
			readme: []readmeCheck{{quote: `pq: syntax error at or near ","`, file: "docs/orms-and-tools.md", section: "## sqlx",
				fix: []string{`sqlx.NewDb(sqlDB, "postgres")`, `sqlx.BindDriver("pgentra", sqlx.DOLLAR)`}}},
			foreign: true,
		},
		{
			name: "AutoMigrate as a role without CREATE on schema public",
			try: func(t *testing.T, env *emulator.Env) error {
				p := identity(t, env, "migrator") // the administrator stopped after pgaadauth_create_principal
				dsn := env.DSN(p.Name, "azure_client_id="+p.AppID)
				err := migrate(t, dsn)
				var pe *pq.Error
				if !errors.As(err, &pe) || pe.Code != "42501" {
					t.Errorf("err = %v, want *pq.Error 42501", err)
				}
				// The docs' fixes work: a schema the role owns, named in
				// the DSN's search_path (pq's run-time key, or options).
				ctx := extest.Context(t, time.Minute)
				schema := fmt.Sprintf("app_nc%d", seq.Add(1))
				if _, err := env.AdminDB.ExecContext(ctx, "CREATE SCHEMA "+schema+" AUTHORIZATION "+pq.QuoteIdentifier(p.Name)); err != nil {
					t.Fatal(err)
				}
				for _, extra := range []string{"search_path=" + schema, "options='-c search_path=" + schema + "'"} {
					if err := migrate(t, dsn+" "+extra); err != nil {
						t.Errorf("AutoMigrate with %s: %v", extra, err)
					}
				}
				var got string
				if err := env.AdminDB.QueryRowContext(ctx, "select to_regclass($1)::text", schema+".widgets").Scan(&got); err != nil || got != schema+".widgets" {
					t.Errorf("table %s.widgets: %q, %v", schema, got, err)
				}
				return err
			},
			want: []string{"permission denied for schema public"},
			readme: []readmeCheck{
				{quote: "permission denied for schema public", fix: []string{`GRANT CREATE ON SCHEMA public TO "<role>"`, "docs/admin.sql", "search_path"}},
				{quote: "permission denied for schema public", file: "docs/azure-setup.md", section: "## Schemas and migrations",
					fix: []string{`GRANT CREATE ON SCHEMA public TO "id-orders"`, "docs/admin.sql", "search_path=orders", "options='-c search_path=orders'"}},
			},
			foreign: true,
		},
		{
			name: "dbname names a database that does not exist",
			try: func(t *testing.T, env *emulator.Env) error {
				p := identity(t, env, "nodb-app")
				err := ping(t, env.DSN(p.Name, "azure_client_id="+p.AppID, "dbname=orders"))
				var pe *pq.Error
				if !errors.As(err, &pe) || pe.Code != "3D000" {
					t.Errorf("err = %v, want *pq.Error 3D000", err)
				}
				if err != nil && strings.Contains(err.Error(), "login as") {
					t.Errorf("the message frames a missing database as a failed login: %v", err)
				}
				return err
			},
			want: []string{"dbname", "PGDATABASE", "-l", "select datname from pg_database"},
		},
		{
			// Not on Azure compute, `source env.sh` forgotten: the identity
			// endpoint does not answer and nothing else in the chain works.
			name: "not on Azure compute and no developer sign-in (DefaultAzureCredential)",
			try: func(t *testing.T, env *emulator.Env) error {
				noIdentityEndpoint(t)
				db, err := sql.Open("pgentra", env.DSN("orders"))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				err = db.PingContext(ctx)
				if !errors.As(err, new(*driver.TokenError)) {
					t.Errorf("err = %v, want a *driver.TokenError", err)
				}
				return err
			},
			want: []string{"az login", "azure_credential", "#no-credential-available"},
		},
		{
			// The identity endpoint does not answer; the caller's deadline
			// ends the wait: the error keeps the endpoint's last answer.
			name: "managed identity endpoint unreachable, the wait ended by the caller's deadline",
			try: func(t *testing.T, env *emulator.Env) error {
				noIdentityEndpoint(t)
				db, err := sql.Open("pgentra", env.DSN("orders", "azure_credential=managed_identity"))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				err = db.PingContext(ctx)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want context.DeadlineExceeded", err)
				}
				return err
			},
			want: []string{"context deadline exceeded", "(no answer: connection refused)", "#identity-endpoint-unreachable"},
		},
		{
			// The role was never created: the Listener's first login is
			// refused, and Listen says why instead of waiting for good.
			name: "a Listener whose identity has no role",
			try: func(t *testing.T, env *emulator.Env) error {
				p, err := env.Tenant.AddUserAssignedIdentity(unique("listen-norole"))
				if err != nil {
					t.Fatal(err)
				}
				l, err := driver.NewListener(env.DSN(p.Name, "azure_client_id="+p.AppID), 100*time.Millisecond, time.Second, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				done := make(chan error, 1)
				go func() { done <- l.Listen("orders") }()
				select {
				case err = <-done:
				case <-time.After(time.Minute):
					l.Close()
					t.Fatal("Listen still waits a minute after the first login was refused")
				}
				if perr := l.Ping(); perr == nil || perr.Error() != errorText(err) {
					t.Errorf("Ping = %v, want Listen's error", perr)
				}
				return err
			},
			want: []string{"pgaadauth_create_principal"},
		},
		{
			name: "a misspelled azure_* key",
			try: func(t *testing.T, env *emulator.Env) error {
				return ping(t, env.DSN("orders", "azure_clientid=0c0ffee0-0000-4000-8000-000000000001"))
			},
			want: []string{"azure_clientid", "azure_client_id"},
		},
		{
			name: "a password in the DSN",
			try: func(t *testing.T, env *emulator.Env) error {
				err := ping(t, env.DSN("orders", "password=hunter2"))
				if err != nil && strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error shows the password: %v", err)
				}
				return err
			},
			want: []string{"password", "token"},
		},
		{
			// words: an x509 unknown-authority failure's hint names sslrootcert.
			name: "no sslrootcert for a server whose CA is not in the system roots",
			try: func(t *testing.T, env *emulator.Env) error {
				p := identity(t, env, "ca-app")
				before := len(env.Front.Passwords())
				err := ping(t, fmt.Sprintf("host=%s port=%d dbname=postgres user=%s azure_client_id=%s",
					emulator.Host, env.Front.Port(), p.Name, p.AppID))
				if n := len(env.Front.Passwords()) - before; n != 0 {
					t.Errorf("the token reached an unverified server (%d password(s))", n)
				}
				return err
			},
			want: []string{"sslrootcert"},
		},
		{
			name: "sslmode=disable to a remote host",
			try: func(t *testing.T, env *emulator.Env) error {
				// something.invalid is never dialed: the error comes first.
				return ping(t, "host=something.invalid dbname=app user=orders sslmode=disable")
			},
			want: []string{"sslmode", "verify-full", "azure_allow_insecure_tls"},
		},
		{
			// words: the audience hint names the scope the server wants.
			name: "the wrong cloud's scope",
			try: func(t *testing.T, env *emulator.Env) error {
				p := identity(t, env, "cloud-app")
				return ping(t, env.DSN(p.Name, "azure_client_id="+p.AppID, "azure_scope="+token.ScopeChina))
			},
			want: []string{"azure_scope", "https://ossrdbms-aad.database.windows.net"},
		},
		{
			// words: Azure's AAD_AUTH_TOKENTYPE_* messages get this hint
			// (today's emulator text gets it already).
			name: "a role of the wrong type (created for a user, used by a managed identity)",
			try: func(t *testing.T, env *emulator.Env) error {
				p, err := env.Tenant.AddUserAssignedIdentity(unique("typed"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := env.AdminDB.Exec("select * from pgaadauth_create_principal_with_oid($1, $2, 'user', false, false)", p.Name, p.ObjectID); err != nil {
					t.Fatal(err)
				}
				return ping(t, env.DSN(p.Name, "azure_client_id="+p.AppID))
			},
			want: []string{"pgaadauth_create_principal_with_oid"},
		},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			env := extest.Env(t)
			appService(t, env)
			err := a.try(t, env)
			if err == nil {
				t.Fatal("the careless attempt worked")
			}
			wantHint(t, err, a.want...)
			msg := err.Error()
			t.Logf("message (%d characters): %s", len(msg), msg)
			if len(msg) > maxMessage {
				t.Errorf("the message is %d characters, want at most %d:\n%s", len(msg), maxMessage, msg)
			}
			pgentraSays := 1
			if a.foreign {
				pgentraSays = 0
			}
			if n := strings.Count(msg, "pgentra:"); n != pgentraSays {
				t.Errorf(`"pgentra:" appears %d times, want %d:\n%s`, n, pgentraSays, msg)
			}
			for _, r := range a.readme {
				checkDocs(t, r)
			}
		})
	}
}

// wantHint asserts that the hint of a *driver.LoginError (of a
// *driver.TokenError: its message and hint; for any other error, its
// message) contains every word.
func wantHint(t *testing.T, err error, words ...string) {
	t.Helper()
	text, what := err.Error(), "error"
	var le *driver.LoginError
	var te *driver.TokenError
	switch {
	case errors.As(err, &le):
		text, what = le.Hint, "hint"
	case errors.As(err, &te):
		text, what = err.Error()+"\n"+te.Hint, "error and hint"
	}
	for _, w := range words {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s\n(error: %v)", what, w, text, err)
		}
	}
}

var seq atomic.Int32

// unique makes names unique in the test binary (its cluster is shared).
func unique(base string) string { return fmt.Sprintf("%s-nc%d", base, seq.Add(1)) }

// appService makes the test an App Service app: the two variables App
// Service sets, and none of the others that steer azidentity.
func appService(t *testing.T, env *emulator.Env) {
	t.Helper()
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_TOKEN_CREDENTIALS", "AZURE_AUTHORITY_HOST", "MSI_ENDPOINT", "MSI_SECRET",
		"IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT", "AZURE_POSTGRESQL_CONNECTIONSTRING", "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env.Identity.AppServiceEnv() {
		t.Setenv(k, v)
	}
}

// noIdentityEndpoint makes the test a machine that is not Azure compute
// and has no developer sign-in: App Service's identity endpoint points at a
// loopback port nobody listens on (IMDS' fixed address is never tried: an
// endpoint variable is set), and neither az nor azd is on PATH.
func noIdentityEndpoint(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("IDENTITY_ENDPOINT", "http://"+addr+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "not-a-secret")
	t.Setenv("PATH", t.TempDir())
}

// identity adds a user-assigned identity (the app uses it through
// azure_client_id), and has the Entra administrator create its role and run
// the given further steps.
func identity(t *testing.T, env *emulator.Env, base string, steps ...func(role, database string) []string) entra.Principal {
	t.Helper()
	p, err := env.Tenant.AddUserAssignedIdentity(unique(base))
	if err != nil {
		t.Fatal(err)
	}
	ctx := extest.Context(t, time.Minute)
	if _, err := env.CreatePrincipal(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	for _, step := range steps {
		for _, stmt := range step(p.Name, exenv.Database) {
			if _, err := env.AdminDB.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	return p
}

// ping does what a newcomer's program does first.
func ping(t *testing.T, dsn string) error {
	t.Helper()
	db, err := sql.Open("pgentra", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(extest.Context(t, time.Minute))
}

// Widget is the table of the AutoMigrate attempt.
type Widget struct {
	ID   uint `gorm:"primaryKey"`
	Name string
}

// migrate runs GORM's AutoMigrate through pgentra, as the gorm example does.
func migrate(t *testing.T, dsn string) error {
	t.Helper()
	db, err := gorm.Open(postgres.New(postgres.Config{DriverName: "pgentra", DSN: dsn}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	return db.WithContext(extest.Context(t, time.Minute)).AutoMigrate(&Widget{})
}

// checkDocs asserts that the docs explain r.quote and name every fix: in
// one section (text from a heading to the next) of r.file, default
// docs/troubleshooting.md, whose heading starts with r.section when set.
// White space is collapsed, so reflowed lines still match.
func checkDocs(t *testing.T, r readmeCheck) {
	t.Helper()
	file := orDefault(r.file, "docs/troubleshooting.md")
	b, err := os.ReadFile(filepath.Join("..", "..", "..", filepath.FromSlash(file)))
	if err != nil {
		t.Fatal(err)
	}
	quote := collapse(r.quote)
	var places []string
	for _, s := range docSections(string(b)) {
		if r.section != "" && !strings.HasPrefix(s, r.section) {
			continue
		}
		if strings.Contains(collapse(s), quote) {
			places = append(places, s)
		}
	}
	what := file + " " + orDefault(r.section, "section")
	if len(places) == 0 {
		t.Errorf("%s: none quotes %q", what, r.quote)
		return
	}
	for _, p := range places {
		ok := true
		for _, f := range r.fix {
			ok = ok && strings.Contains(collapse(p), collapse(f))
		}
		if ok {
			return
		}
	}
	t.Errorf("%s: none quoting %q names all of %q:\n%s", what, r.quote, r.fix, strings.Join(places, "\n"))
}

// docSections splits a Markdown page at its headings (lines starting with
// "#" outside code fences); each section starts with its heading line.
func docSections(text string) []string {
	var sections []string
	var cur strings.Builder
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if !fenced && strings.HasPrefix(line, "#") && cur.Len() > 0 {
			sections = append(sections, cur.String())
			cur.Reset()
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(sections, cur.String())
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
