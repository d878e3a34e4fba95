package reliability_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pgentra "github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// leakScan collects everything a failure path hands back to a program:
// errors (Error, %v, %+v, %#v), returned values (%v, %+v, %#v) and the
// debug log, and checks none contains a secret.
type leakScan struct {
	mu      sync.Mutex
	outputs []string
	logs    bytes.Buffer
	logger  *slog.Logger
}

func newLeakScan() *leakScan {
	s := &leakScan{}
	h := slog.NewTextHandler(&syncWriter{mu: &s.mu, w: &s.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})
	s.logger = slog.New(h)
	return s
}

type syncWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (s *leakScan) record(vs ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vs {
		if v == nil {
			continue
		}
		s.outputs = append(s.outputs, fmt.Sprintf("%v", v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v))
		if err, ok := v.(error); ok {
			s.outputs = append(s.outputs, err.Error())
			for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
				s.outputs = append(s.outputs, u.Error(), fmt.Sprintf("%+v", u))
			}
		}
	}
}

// secretParts are the strings that must not appear: each secret whole, and
// for a JWT also its payload and signature segments (a message that cut the
// token in pieces leaks it too).
func secretParts(secrets []string) []string {
	var parts []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		parts = append(parts, s)
		if segs := strings.Split(s, "."); len(segs) == 3 {
			for _, seg := range segs[1:] {
				if len(seg) >= 16 {
					parts = append(parts, seg)
				}
			}
		}
	}
	return parts
}

func (s *leakScan) check(t *testing.T, secrets []string) {
	t.Helper()
	s.mu.Lock()
	all := append(append([]string(nil), s.outputs...), s.logs.String())
	s.mu.Unlock()
	if !strings.Contains(all[len(all)-1], "level=DEBUG") {
		t.Errorf("debug logging produced nothing; the scan proves little")
	}
	for _, secret := range secretParts(secrets) {
		for _, out := range all {
			if i := strings.Index(out, secret); i >= 0 {
				lo, hi := max(0, i-120), min(len(out), i+20)
				t.Errorf("a secret (%d bytes, starting %.6q) appears in output: …%s…", len(secret), secret, out[lo:hi])
				break
			}
		}
	}
	t.Logf("scanned %d outputs and %d bytes of debug log for %d secrets", len(all)-1, len(all[len(all)-1]), len(secrets))
}

// TestNoSecretLeaks drives the failure paths through the emulator with
// recognisable secrets — real tokens, an opaque marker token, a client secret
// (right and wrong, authority up and down) and a certificate password — and
// checks errors, the debug log and the printed form of every returned error
// and connector.
func TestNoSecretLeaks(t *testing.T) {
	const (
		wrongSecret  = "WRONG-CLIENT-SECRET-MARKER-7f3a"
		certPassword = "CERT-PASSWORD-MARKER-19bd"
		opaqueToken  = "OPAQUE-TOKEN-MARKER-a41c"
	)
	env := startEnv(t, 30*time.Second)
	scan := newLeakScan()
	log := pgentra.WithLogger(scan.logger)
	ctx := context.Background()
	var secrets []string
	var creds []*countingCred
	connect := func(c *pgentra.Connector, ctx context.Context) {
		conn, err := c.Connect(ctx)
		scan.record(err, c)
		if conn != nil {
			_ = conn.Close()
		}
	}

	// 1. A managed identity without a role: fresh token refused (28P01).
	ghost, _ := env.Tenant.AddUserAssignedIdentity(fmt.Sprintf("id-ghost-%d", roleSeq.Add(1)))
	cg := miCred(t, env, ghost)
	creds = append(creds, cg)
	c1, err := pgentra.NewConnector(env.DSN(ghost.Name), pgentra.WithCredential(cg), log)
	if err != nil {
		t.Fatal(err)
	}
	connect(c1, ctx)
	// 2. The same, no user: the name is derived (management-scope fallback), then refused.
	c2, _ := pgentra.NewConnector(env.DSN(""), pgentra.WithCredential(cg), log)
	connect(c2, ctx)

	// 3. A working identity; then its cached token refused (server clock jump)
	//    and retried; then refused twice (role dropped from the registry's view).
	p := newIdentity(t, env, "id-leak")
	cp := miCred(t, env, p)
	creds = append(creds, cp)
	c3, _ := pgentra.NewConnector(env.DSN(p.Name), pgentra.WithCredential(cp), log)
	connect(c3, ctx)
	env.Tenant.SetSkew(time.Minute)
	connect(c3, ctx)
	env.Tenant.SetSkew(0)
	c3b, _ := pgentra.NewConnector(env.DSN(ghost.Name), pgentra.WithCredential(cp), log)
	connect(c3b, ctx)
	connect(c3b, ctx)

	// 4. An opaque token, with and without a user; deadline during the connect.
	op := staticCred(opaqueToken)
	secrets = append(secrets, opaqueToken)
	c4, _ := pgentra.NewConnector(env.DSN(p.Name), pgentra.WithCredential(op), log)
	connect(c4, ctx)
	c4b, _ := pgentra.NewConnector(env.DSN(""), pgentra.WithCredential(op), log)
	connect(c4b, ctx)
	tctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	connect(c4, tctx)
	cancel()

	// 5. Client secret against the authority: wrong secret, right secret with and
	//    without a role, authority down.
	sp, err := env.Tenant.AddServicePrincipal(fmt.Sprintf("sp-leak-%d", roleSeq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, wrongSecret, sp.ClientSecret)
	spDSN := env.DSN(sp.Name, "azure_credential=client_secret", "azure_client_id="+sp.AppID, "azure_tenant_id="+env.Tenant.ID())
	copts := pgentra.WithClientOptions(env.ClientOptions())
	t.Setenv("AZURE_CLIENT_SECRET", wrongSecret)
	c5, err := pgentra.NewConnector(spDSN, copts, log)
	scan.record(err)
	if err == nil {
		connect(c5, ctx)
	}
	t.Setenv("AZURE_CLIENT_SECRET", sp.ClientSecret)
	c5b, err := pgentra.NewConnector(spDSN, copts, log)
	scan.record(err)
	if err == nil {
		connect(c5b, ctx) // no role yet: 28P01
		if _, err := env.CreatePrincipal(ctx, sp, false); err != nil {
			t.Fatal(err)
		}
		env.Tenant.SetSkew(time.Minute) // cached token refused, retried with a new one
		connect(c5b, ctx)
		env.Tenant.SetSkew(0)
	}
	env.Authority.SetDefault(entra.Fault{Drop: true})
	c5c, err := pgentra.NewConnector(spDSN, copts, log)
	scan.record(err)
	if err == nil {
		connect(c5c, ctx)
	}
	env.Authority.SetDefault(entra.Fault{Status: 500})
	c5d, _ := pgentra.NewConnector(spDSN, copts, log)
	connect(c5d, ctx)
	env.Authority.SetDefault(entra.Fault{})

	// 6. Certificate password with a bad certificate file.
	bad := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, certPassword)
	t.Setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", certPassword)
	_, err = pgentra.NewConnector(env.DSN(sp.Name, "azure_credential=client_certificate", "azure_client_id="+sp.AppID,
		"azure_tenant_id="+env.Tenant.ID(), "azure_client_certificate_path="+bad), copts, log)
	if err == nil {
		t.Error("a bad certificate file was accepted")
	}
	scan.record(err)
	_, err = pgentra.NewConnector(env.DSN(sp.Name, "azure_credential=client_certificate", "azure_client_id="+sp.AppID,
		"azure_tenant_id="+env.Tenant.ID(), "azure_client_certificate_path="+filepath.Join(t.TempDir(), "missing.pfx")), copts, log)
	scan.record(err)

	for _, c := range creds {
		secrets = append(secrets, c.issued()...)
	}
	if len(secrets) < 8 {
		t.Fatalf("only %d secrets collected: the paths did not run", len(secrets))
	}
	scan.check(t, secrets)
}

// TestNoTokenInPrintedSQLValues: what an application holds — the sql.DB, a
// sql.Conn, the Connector, and the raw driver.Conn under the sql.Conn —
// printed with %v, %+v and %#v never shows the token.
func TestNoTokenInPrintedSQLValues(t *testing.T) {
	env := startEnv(t, 30*time.Second)
	p := newIdentity(t, env, "id-print")
	cred := miCred(t, env, p)
	c, err := pgentra.NewConnector(env.DSN(p.Name), pgentra.WithCredential(cred))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	scan := newLeakScan()
	scan.logger.Debug("placeholder so the scan has a debug line")
	// What an application holds: the sql.DB, a sql.Conn, the Connector.
	db := sql.OpenDB(c)
	defer db.Close()
	sc, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	scan.record(db, sc, c)
	// The raw driver.Conn is pq's own (pq.SetNotificationHandler
	// and friends type-assert it). pq keeps its config in it; pgentra blanks
	// the password there once the login is done, so printing the raw conn
	// (reachable through sql.Conn.Raw) shows no token either.
	scan.record(conn)
	if err := sc.Raw(func(dc any) error { scan.record(dc); return nil }); err != nil {
		t.Fatal(err)
	}
	scan.check(t, cred.issued())
}
