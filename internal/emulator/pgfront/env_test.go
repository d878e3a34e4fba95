package pgfront_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lib/pq"

	"github.com/pgentra/pgentra/internal/emulator/pgfront"
	"github.com/pgentra/pgentra/internal/emulator/testca"
	"github.com/pgentra/pgentra/internal/pgtest"
)

var pg pgtest.Lazy

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

const (
	tenant   = "72f988bf-0000-0000-0000-2d7cd011db47"
	issuer   = "https://sts.windows.net/" + tenant + "/"
	audience = "https://ossrdbms-aad.database.windows.net"
	kid      = "kid-1"
)

var signingKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// env is one front over the shared cluster, with its own CA.
type env struct {
	t      *testing.T
	c      *pgtest.Cluster
	admin  *sql.DB
	front  *pgfront.Front
	caFile string
	key    *rsa.PrivateKey
}

// newEnv starts a front trusted for "localhost" (unless mod changes it) over the
// shared cluster, with pgaadauth installed.
func newEnv(t *testing.T, mod func(*pgfront.Config, *testca.CA)) *env {
	t.Helper()
	c := pg.Get(t)
	key, err := signingKey()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("postgres", c.AdminDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pgfront.InstallAADAuth(ctx, admin, tenant, nil); err != nil {
		t.Fatal(err)
	}
	ca, err := testca.New()
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteCertFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := ca.ServerTLS("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := pgfront.Config{
		BackendNetwork: "unix",
		BackendAddr:    filepath.Join(c.SocketDir, fmt.Sprintf(".s.PGSQL.%d", c.Port)),
		AdminDB:        admin,
		TLS:            serverTLS,
		RequireTLS:     true,
		TenantID:       tenant,
		Issuer:         issuer,
		Audiences:      []string{audience},
		Keys: func(k string) (*rsa.PublicKey, error) {
			if k != kid {
				return nil, fmt.Errorf("unknown kid %q", k)
			}
			return &key.PublicKey, nil
		},
		Logf: t.Logf,
	}
	if mod != nil {
		mod(&cfg, ca)
	}
	f, err := pgfront.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return &env{t: t, c: c, admin: admin, front: f, caFile: caFile, key: key}
}

// unique returns a name no other test uses, for roles on the shared cluster.
func unique(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"), time.Now().UnixNano()%1e9)
}

// sqlText runs one admin query and returns its single text result.
func (e *env) sqlText(query string, args ...any) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s string
	err := e.admin.QueryRowContext(ctx, query, args...).Scan(&s)
	return s, err
}

// principal registers role for oid with pgaadauth_create_principal_with_oid.
func (e *env) principal(role, oid, typ string, isAdmin bool) {
	e.t.Helper()
	got, err := e.sqlText(`SELECT pgaadauth_create_principal_with_oid($1, $2, $3, $4, false)`, role, oid, typ, isAdmin)
	if err != nil {
		e.t.Fatal(err)
	}
	if want := fmt.Sprintf("Created role for %q", role); got != want {
		e.t.Fatalf("create_principal_with_oid = %q, want %q", got, want)
	}
}

func (e *env) token(claims jwt.MapClaims) string {
	e.t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// dsn is a pq DSN through the front, verify-full against the env's CA.
func (e *env) dsn(user, password, extra string) string {
	return fmt.Sprintf("host=localhost port=%d dbname=postgres user='%s' password='%s' sslmode=verify-full sslrootcert='%s' connect_timeout=10 %s",
		e.front.Port(), user, password, e.caFile, extra)
}

// connect opens a one-connection pool and pings it.
func (e *env) connect(dsn string) (*sql.DB, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	e.t.Cleanup(func() { _ = db.Close() })
	return db, nil
}

func currentUser(t *testing.T, db *sql.DB) string {
	t.Helper()
	var u string
	if err := db.QueryRow(`SELECT current_user`).Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

// asPQ returns err's *pq.Error or fails.
func asPQ(t *testing.T, err error) *pq.Error {
	t.Helper()
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) {
		t.Fatalf("error %v (%T) is not a *pq.Error", err, err)
	}
	return pqErr
}

func userClaims(oid, upn string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"aud": audience, "iss": issuer,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(75 * time.Minute).Unix(),
		"acr": "1", "amr": []string{"pwd", "mfa"}, "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "appidacr": "0",
		"family_name": "Smith", "given_name": "Carol", "idtyp": "user", "ipaddr": "203.0.113.7", "name": "Carol Smith",
		"oid": oid, "puid": "10032000ABCDEF12", "scp": "user_impersonation", "sub": "kP3x" + oid,
		"tid": tenant, "unique_name": upn, "upn": upn, "ver": "1.0",
	}
}

func appClaims(oid string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"aud": audience, "iss": issuer,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(24 * time.Hour).Unix(),
		"aio": "E2Zg", "appid": "5a9b7c1d-0000-0000-0000-6e2f8a3b4c5d", "appidacr": "2",
		"idp": issuer, "idtyp": "app", "oid": oid, "sub": oid, "tid": tenant, "ver": "1.0",
	}
}

func set(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range c {
		out[kk] = vv
	}
	out[k] = v
	return out
}

// newOID returns a fresh random object ID.
func newOID(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
