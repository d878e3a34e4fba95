package pgfront_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pgentra/pgentra/internal/emulator/pgfront"
	"github.com/pgentra/pgentra/internal/emulator/testca"
)

func TestLoginSucceeds(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	userOID, appOID, adminOID := newOID(t), newOID(t), newOID(t)
	userRole := unique(t, "carol") + "@contoso.com"
	appRole, adminRole := unique(t, "id-orders"), unique(t, "admin")
	e.principal(userRole, userOID, pgfront.TypeUser, false)
	e.principal(appRole, appOID, pgfront.TypeService, false)
	e.principal(adminRole, adminOID, pgfront.TypeUser, true)

	for _, tc := range []struct {
		name, role string
		claims     jwt.MapClaims
	}{
		{"user", userRole, userClaims(userOID, userRole, now)},
		{"managed identity", appRole, appClaims(appOID, now)},
		{"admin", adminRole, userClaims(adminOID, adminRole, now)},
		{"oid in upper case", appRole, appClaims(strings.ToUpper(appOID), now)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.front.Reset()
			tok := e.token(tc.claims)
			db, err := e.connect(e.dsn(tc.role, tok, "application_name=pgfront-test"))
			if err != nil {
				t.Fatal(err)
			}
			if got := currentUser(t, db); got != tc.role {
				t.Fatalf("current_user = %q, want %q", got, tc.role)
			}
			var app string
			if err := db.QueryRow(`SELECT current_setting('application_name')`).Scan(&app); err != nil || app != "pgfront-test" {
				t.Fatalf("application_name = %q (%v), want the client's parameter relayed", app, err)
			}
			if got := e.front.Passwords(); !slices.Equal(got, []string{tok}) {
				t.Fatalf("front received %d passwords, want exactly the token", len(got))
			}
			logins := e.front.Logins()
			want := pgfront.Login{User: tc.role, Database: "postgres", TLS: true, ServerName: "localhost", OK: true}
			if len(logins) != 1 || logins[0] != want {
				t.Fatalf("logins = %+v, want [%+v]", logins, want)
			}
		})
	}
}

func TestLoginRefused(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	userOID, appOID := newOID(t), newOID(t)
	userRole, appRole := unique(t, "dave")+"@contoso.com", unique(t, "app")
	e.principal(userRole, userOID, pgfront.TypeUser, false)
	e.principal(appRole, appOID, pgfront.TypeService, false)
	user := userClaims(userOID, userRole, now)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forged := jwt.NewWithClaims(jwt.SigningMethodRS256, user)
	forged.Header["kid"] = kid
	forgedTok, err := forged.SignedString(forger)
	if err != nil {
		t.Fatal(err)
	}

	// A managed identity whose role was created as a user's, and an MFA-only role.
	miOID, miRole, mfaOID, mfaRole := newOID(t), unique(t, "id-web"), newOID(t), unique(t, "erin")+"@contoso.com"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pgfront.AddDirectoryEntry(ctx, e.admin, pgfront.DirectoryEntry{Name: miRole, ObjectID: miOID, Type: pgfront.TypeService, ManagedIdentity: true}); err != nil {
		t.Fatal(err)
	}
	e.principal(miRole, miOID, pgfront.TypeUser, false)
	if _, err := e.sqlText(`SELECT pgaadauth_create_principal_with_oid($1, $2, 'user', false, true)`, mfaRole, mfaOID); err != nil {
		t.Fatal(err)
	}
	// The texts are spelled out here, as docs/azure-behavior.md quotes them, so that a change
	// of the constants cannot pass unnoticed.
	const (
		expired   = "The access token has expired. Please acquire a new token and retry."
		badFormat = "The access token has invalid format. Please ensure the token is passed exactly as returned by the authentication endpoint and retry."
		generic   = "An error occurred while validating the access token. Please acquire a new token and retry"
		badAud    = `The access token does not have a valid audience claim. Please acquire a new token for the resource "https://ossrdbms-aad.database.windows.net".`
	)

	for _, tc := range []struct {
		name, user, password string
		code, msg, reason    string
	}{
		{"expired", userRole, e.token(set(user, "exp", now.Add(-time.Minute).Unix())), pgfront.CodeInvalidAuthorization, expired, ""},
		{"wrong audience", userRole, e.token(set(user, "aud", "https://management.azure.com/")), pgfront.CodeInvalidAuthorization, badAud, ""},
		{"wrong issuer", userRole, e.token(set(user, "iss", "https://sts.windows.net/other/")), pgfront.CodeInvalidAuthorization, generic, pgfront.ReasonIssuer},
		{"wrong tenant", userRole, e.token(set(user, "tid", "11111111-0000-0000-0000-000000000000")), pgfront.CodeInvalidAuthorization, generic, pgfront.ReasonTenant},
		{"nbf in the future", userRole, e.token(set(user, "nbf", now.Add(10*time.Minute).Unix())), pgfront.CodeInvalidAuthorization, generic, pgfront.ReasonNotYetValid},
		{"bad signature", userRole, forgedTok, pgfront.CodeInvalidAuthorization, generic, pgfront.ReasonSignature},
		{"not a JWT", userRole, "correct horse battery staple", pgfront.CodeInvalidAuthorization, badFormat, ""},
		{"unknown oid", userRole, e.token(set(user, "oid", newOID(t))), pgfront.CodeInvalidPassword, `password authentication failed for user "` + userRole + `"`, ""},
		{"user names another principal's role", appRole, e.token(user), pgfront.CodeInvalidPassword, pgfront.MsgPasswordFailed(appRole), ""},
		{"user names a plain role", "postgres", e.token(user), pgfront.CodeInvalidPassword, pgfront.MsgPasswordFailed("postgres"), ""},
		{"service principal token for a user role", userRole, e.token(set(appClaims(userOID, now), "oid", userOID)), pgfront.CodeInvalidAuthorization,
			`Service principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role "` + userRole + `"`, ""},
		{"managed identity token for a user role", miRole, e.token(appClaims(miOID, now)), pgfront.CodeInvalidAuthorization,
			`Microsoft Entra user token for role "` + miRole + `" is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token.`, ""},
		{"user token for a service role", appRole, e.token(userClaims(appOID, "x@contoso.com", now)), pgfront.CodeInvalidAuthorization, generic, pgfront.ReasonUserToken},
		{"no MFA for an MFA role", mfaRole, e.token(set(userClaims(mfaOID, mfaRole, now), "amr", []string{"pwd"})), pgfront.CodeInvalidAuthorization, generic, pgfront.ReasonMFA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.front.Reset()
			_, err := e.connect(e.dsn(tc.user, tc.password, ""))
			if err == nil {
				t.Fatal("login succeeded")
			}
			pqErr := asPQ(t, err)
			if string(pqErr.Code) != tc.code || pqErr.Message != tc.msg || pqErr.Severity != "FATAL" {
				t.Fatalf("got %s %s %q, want FATAL %s %q", pqErr.Severity, pqErr.Code, pqErr.Message, tc.code, tc.msg)
			}
			if strings.Contains(err.Error(), tc.password) {
				t.Fatal("the error contains the password")
			}
			if tc.reason != "" && strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("the client saw the emulator's reason %q: %v", tc.reason, err)
			}
			if got := e.front.Passwords(); !slices.Equal(got, []string{tc.password}) {
				t.Fatalf("front recorded %d passwords, want the one sent", len(got))
			}
			logins := e.front.Logins()
			if len(logins) != 1 || logins[0].OK || logins[0].Code != tc.code || logins[0].Message != tc.msg || logins[0].Reason != tc.reason {
				t.Fatalf("logins = %+v, want reason %q", logins, tc.reason)
			}
		})
	}
	// The MFA role takes a token with MFA.
	if _, err := e.connect(e.dsn(mfaRole, e.token(userClaims(mfaOID, mfaRole, now)), "")); err != nil {
		t.Fatalf("MFA token for the MFA role: %v", err)
	}
}

// TestWrongAudienceNamesTheCloudsResource: Azure names the server's own resource in
// its wrong-audience message, so a server in Azure China names China's.
func TestWrongAudienceNamesTheCloudsResource(t *testing.T) {
	const china = "https://ossrdbms-aad.database.chinacloudapi.cn"
	e := newEnv(t, func(c *pgfront.Config, _ *testca.CA) { c.Audiences = []string{china} })
	oid, role := newOID(t), unique(t, "cn")
	e.principal(role, oid, pgfront.TypeService, false)
	_, err := e.connect(e.dsn(role, e.token(appClaims(oid, time.Now())), "")) // public-cloud aud
	want := `The access token does not have a valid audience claim. Please acquire a new token for the resource "` + china + `".`
	if pqErr := asPQ(t, err); pqErr.Message != want || pqErr.Code != pgfront.CodeInvalidAuthorization {
		t.Fatalf("got %s %q, want %q", pqErr.Code, pqErr.Message, want)
	}
	if _, err := e.connect(e.dsn(role, e.token(set(appClaims(oid, time.Now()), "aud", china)), "")); err != nil {
		t.Fatalf("China token on the China server: %v", err)
	}
}

func TestFrontClockSkew(t *testing.T) {
	skew := 2 * time.Hour
	e := newEnv(t, func(c *pgfront.Config, _ *testca.CA) { c.Now = func() time.Time { return time.Now().Add(skew) } })
	oid, role := newOID(t), unique(t, "skew")
	e.principal(role, oid, pgfront.TypeService, false)
	_, err := e.connect(e.dsn(role, e.token(appClaims(oid, time.Now().Add(-23*time.Hour))), ""))
	if pqErr := asPQ(t, err); pqErr.Message != pgfront.MsgTokenExpired {
		t.Fatalf("got %q, want %q", pqErr.Message, pgfront.MsgTokenExpired)
	}
	if _, err := e.connect(e.dsn(role, e.token(appClaims(oid, time.Now())), "")); err != nil {
		t.Fatalf("a token with 24h left failed under a 2h skew: %v", err)
	}
}

func TestBackendErrorRelayed(t *testing.T) {
	e := newEnv(t, nil)
	oid, role := newOID(t), unique(t, "nodb")
	e.principal(role, oid, pgfront.TypeService, false)
	dsn := strings.Replace(e.dsn(role, e.token(appClaims(oid, time.Now())), ""), "dbname=postgres", "dbname=no_such_db", 1)
	_, err := e.connect(dsn)
	if pqErr := asPQ(t, err); pqErr.Code != "3D000" {
		t.Fatalf("got %s %q, want 3D000 (invalid_catalog_name) from the backend", pqErr.Code, pqErr.Message)
	}
}

func TestCleartextRefusedBeforePassword(t *testing.T) {
	e := newEnv(t, nil)
	dsn := strings.Replace(e.dsn("someone", "secret-token", ""), "sslmode=verify-full", "sslmode=disable", 1)
	_, err := e.connect(dsn)
	pqErr := asPQ(t, err)
	if pqErr.Code != pgfront.CodeInvalidAuthorization || !strings.HasPrefix(pqErr.Message, "no pg_hba.conf entry for host") ||
		!strings.HasSuffix(pqErr.Message, "no encryption") {
		t.Fatalf("got %s %q", pqErr.Code, pqErr.Message)
	}
	if got := e.front.Passwords(); len(got) != 0 {
		t.Fatalf("the front received %d passwords over cleartext, want none", len(got))
	}
}

func TestTLSNotOffered(t *testing.T) {
	e := newEnv(t, func(c *pgfront.Config, _ *testca.CA) { c.TLS, c.RequireTLS = nil, false })
	_, err := e.connect(e.dsn("someone", "secret-token", ""))
	if err == nil || !strings.Contains(err.Error(), "SSL is not enabled on the server") {
		t.Fatalf("err = %v, want pq's SSL-not-enabled error", err)
	}
	if got := e.front.Passwords(); len(got) != 0 {
		t.Fatalf("the front received %d passwords, want none", len(got))
	}
}

func TestVerifyFullRejectsWrongHost(t *testing.T) {
	e := newEnv(t, func(c *pgfront.Config, ca *testca.CA) {
		other, err := ca.ServerTLS("db.other.example")
		if err != nil {
			t.Fatal(err)
		}
		c.TLS = other
	})
	oid, role := newOID(t), unique(t, "mitm")
	e.principal(role, oid, pgfront.TypeService, false)
	_, err := e.connect(e.dsn(role, e.token(appClaims(oid, time.Now())), ""))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate verification error", err)
	}
	if got := e.front.Passwords(); len(got) != 0 {
		t.Fatalf("the front received %d passwords from a client that should not trust it", len(got))
	}
	if got := e.front.Logins(); len(got) != 0 {
		t.Fatalf("logins = %+v, want none", got)
	}
}

func TestCancelForwarded(t *testing.T) {
	e := newEnv(t, nil)
	oid, role := newOID(t), unique(t, "sleeper")
	e.principal(role, oid, pgfront.TypeService, false)
	db, err := e.connect(e.dsn(role, e.token(appClaims(oid, time.Now())), ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = db.ExecContext(ctx, `SELECT pg_sleep(10)`)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("pg_sleep(10) was not cancelled")
	}
	if elapsed > 6*time.Second { // room for a busy machine
		t.Fatalf("cancelled query took %v, want well under the 10 s sleep", elapsed)
	}
	if pqErr := asPQ(t, err); pqErr.Code != "57014" {
		t.Fatalf("got %s %q, want 57014 query_canceled from the backend", pqErr.Code, pqErr.Message)
	}
	if got := e.front.Cancels(); got != 1 {
		t.Fatalf("front forwarded %d cancel requests, want 1", got)
	}
	if got := currentUser(t, db); got != role {
		t.Fatalf("after cancel current_user = %q, want %q", got, role)
	}
}

func TestCloseEndsSessionsAndGoroutines(t *testing.T) {
	e := newEnv(t, nil)
	oid, role := newOID(t), unique(t, "closer")
	e.principal(role, oid, pgfront.TypeService, false)
	db, err := e.connect(e.dsn(role, e.token(appClaims(oid, time.Now())), ""))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !frontGoroutines() {
		t.Fatal("no front goroutines while a session is open: the check below would prove nothing")
	}
	done := make(chan error, 1)
	go func() { done <- e.front.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5 s with a session open")
	}
	// Close waits for its goroutines, but one that has just signalled its
	// WaitGroup may still be on its way out: allow it a moment to exit.
	if !noFrontGoroutinesWithin(time.Second) {
		buf := make([]byte, 1<<20)
		t.Fatalf("front goroutines left after Close:\n%s", buf[:runtime.Stack(buf, true)])
	}
	var one int
	if err := conn.QueryRowContext(context.Background(), `SELECT 1`).Scan(&one); err == nil {
		t.Fatal("the session survived Close")
	}
	if err := e.front.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.connect(e.dsn(role, "x", "")); err == nil {
		t.Fatal("connect after Close succeeded")
	}
}

// noFrontGoroutinesWithin reports whether the front's goroutines are all
// gone within d.
func noFrontGoroutinesWithin(d time.Duration) bool {
	for deadline := time.Now().Add(d); frontGoroutines(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// frontGoroutines reports whether any goroutine runs the front's code.
func frontGoroutines() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "pgfront.(*Front)")
}
