package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

var pg Lazy

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// testCtx bounds one test's SQL.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// jwtLike returns an n-byte password shaped like a JWT (base64url and dots).
func jwtLike(n int, seed byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[(int(seed)+i*7+i/13)%len(alphabet)]
	}
	b[n/3], b[2*n/3] = '.', '.'
	return string(b)
}

// login opens one TCP connection as user with password (none when "") and
// returns current_user, proving the login really happened.
func login(ctx context.Context, c *Cluster, user, password string) (string, error) {
	cfg, err := pq.NewConfig(c.TCPDSN(user, ""))
	if err != nil {
		return "", err
	}
	cfg.Password = password
	cfg.Passfile = "/nonexistent/pgpass" // the runner's ~/.pgpass must not supply one
	conn, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return "", err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var who string
	err = db.QueryRowContext(ctx, "SELECT current_user").Scan(&who)
	return who, err
}

func TestTCPLoginNeedsTheRightPassword(t *testing.T) {
	c := pg.Get(t)
	ctx := testCtx(t)
	token := jwtLike(2000, 1)
	if len(token) != 2000 {
		t.Fatalf("password is %d chars", len(token))
	}
	if err := c.CreateRole(ctx, "tok_user", token); err != nil {
		t.Fatal(err)
	}
	odd := `it's a \ "pass" word`
	if err := c.CreateRole(ctx, "Odd User", odd); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		user     string
		password string
		wantCode pqerror.Code // "" = login succeeds
	}{
		{"2000-char token", "tok_user", token, ""},
		{"wrong token", "tok_user", jwtLike(2000, 2), "28P01"},
		{"token prefix", "tok_user", token[:1999], "28P01"},
		{"no password", "tok_user", "", "28P01"},
		{"quotes and backslash survive quoting", "Odd User", odd, ""},
		{"unknown role", "nobody", "x", "28P01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			who, err := login(ctx, c, tt.user, tt.password)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("login failed: %v", err)
				}
				if who != tt.user {
					t.Errorf("current_user = %q, want %q", who, tt.user)
				}
				return
			}
			if err == nil {
				t.Fatalf("login as %q succeeded, want SQLSTATE %s", tt.user, tt.wantCode)
			}
			var pqErr *pq.Error
			if !errors.As(err, &pqErr) || pqErr.Code != tt.wantCode {
				t.Fatalf("err = %v (%T), want *pq.Error %s", err, err, tt.wantCode)
			}
		})
	}
}

func TestCreateRoleTwiceAndSetPassword(t *testing.T) {
	c := pg.Get(t)
	ctx := testCtx(t)
	if err := c.CreateRole(ctx, "rotating", "first"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateRole(ctx, "rotating", "second"); err != nil {
		t.Fatalf("CreateRole on an existing role: %v", err)
	}
	if _, err := login(ctx, c, "rotating", "second"); err != nil {
		t.Fatalf("password from second CreateRole: %v", err)
	}
	newer := jwtLike(2100, 9)
	if err := c.SetPassword(ctx, "rotating", newer); err != nil {
		t.Fatal(err)
	}
	if _, err := login(ctx, c, "rotating", "second"); pq.As(err, "28P01") == nil {
		t.Errorf("old password after SetPassword: err = %v, want 28P01", err)
	}
	if _, err := login(ctx, c, "rotating", newer); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestSecretsStayOutOfErrorsAndLog(t *testing.T) {
	c := pg.Get(t)
	ctx := testCtx(t)
	secret := "SECRET-" + jwtLike(64, 3)
	// A failing statement that carries a password: neither the returned
	// error nor the server log may contain it.
	err := c.SetPassword(ctx, "no_such_role", secret)
	if err == nil {
		t.Fatal("SetPassword on a missing role succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the password: %v", err)
	}
	if !strings.Contains(err.Error(), "no_such_role") {
		t.Errorf("error does not name the role: %v", err)
	}
	log, rerr := os.ReadFile(c.logFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if strings.Contains(string(log), secret) {
		t.Error("server log contains the password")
	}
}

func TestExec(t *testing.T) {
	c := pg.Get(t)
	ctx := testCtx(t)
	// Clean up first: with -count > 1 the cluster outlives one run.
	if err := c.Exec(ctx, "", "DROP DATABASE IF EXISTS exec_db", "CREATE DATABASE exec_db"); err != nil {
		t.Fatal(err)
	}
	// One session: the SET must still apply to the later statements.
	err := c.Exec(ctx, "exec_db",
		"SET search_path = nowhere, public",
		"CREATE TABLE t (v int)",
		"INSERT INTO t VALUES (1), (2)")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Exec(ctx, "exec_db", "SELECT 1", "SELECT * FROM missing_table")
	if err == nil || !strings.Contains(err.Error(), "statement 2 of 2") || pq.As(err, "42P01") == nil {
		t.Errorf("err = %v, want statement 2 of 2 with 42P01", err)
	}
}

func TestStopRestartKeepsData(t *testing.T) {
	c := pg.Get(t)
	ctx := testCtx(t)
	if err := c.Exec(ctx, "", "DROP TABLE IF EXISTS kept", "CREATE TABLE kept (v text)", "INSERT INTO kept VALUES ('survives')"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "", "SELECT 1"); err == nil {
		t.Fatal("Exec succeeded while the server was stopped")
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	port := c.Port
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port != port {
		t.Errorf("port changed from %d to %d", port, c.Port)
	}
	db, err := sql.Open("postgres", c.AdminDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "survives" {
		t.Fatalf("after restart: v = %q, err = %v", v, err)
	}
}

func TestTerminate(t *testing.T) {
	c := pg.Get(t)
	ctx := testCtx(t)
	pw := jwtLike(300, 4)
	if err := c.CreateRole(ctx, "victim", pw); err != nil {
		t.Fatal(err)
	}
	cfg, err := pq.NewConfig(c.TCPDSN("victim", ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = pw
	connector, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	conns := make([]*sql.Conn, 2)
	for i := range conns {
		if conns[i], err = db.Conn(ctx); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
		if err := conns[i].PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.Terminate(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Terminate = %d, want 2", n)
	}
	for i, conn := range conns {
		var one int
		if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err == nil {
			t.Errorf("conn %d still works after Terminate", i)
		}
	}
	if n, err := c.Terminate(ctx, "victim"); err != nil || n != 0 {
		t.Errorf("second Terminate = %d, %v; want 0, nil", n, err)
	}
	// Killing its own session would fail the query that reads the pids.
	// (n may be > 0: earlier admin sessions can still be exiting.)
	if _, err := c.Terminate(ctx, c.SuperUser); err != nil {
		t.Errorf("Terminate(superuser): %v (it must spare its own session)", err)
	}
}

// TestStartAndClose uses its own cluster: it is closed by the test.
func TestStartAndClose(t *testing.T) {
	pg.Get(t) // skip/fail exactly like the other integration tests
	ctx := testCtx(t)
	began := time.Now()
	c, err := Start(ctx, Options{MaxConnections: 50, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %s", time.Since(began))
	closed := false
	defer func() {
		if !closed {
			c.Close()
		}
	}()
	if len(c.SocketDir+socketFileSuffix) >= socketPathLimit {
		t.Errorf("socket path %q too long", c.SocketDir+socketFileSuffix)
	}
	var max string
	db, err := sql.Open("postgres", c.AdminDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	err = db.QueryRowContext(ctx, "SHOW max_connections").Scan(&max)
	db.Close()
	if err != nil || max != "50" {
		t.Errorf("max_connections = %q, %v; want 50", max, err)
	}

	// A Restart that cannot bind its port fails and quotes the server log.
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	err = c.Restart(ctx)
	l.Close()
	if err == nil {
		t.Fatal("Restart succeeded although its port was taken")
	}
	t.Logf("Restart on a taken port: %v", err)
	if !strings.Contains(err.Error(), "server log") || !strings.Contains(err.Error(), "could not bind") {
		t.Errorf("Restart error does not quote the server log:\n%v", err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s still exists after Close (stat err %v)", c.Dir, err)
	}
	if err := c.Exec(ctx, "", "SELECT 1"); err == nil {
		t.Error("server still answers after Close")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Restart(ctx); err == nil {
		t.Error("Restart after Close succeeded")
	}
}

func TestStartHonorsCanceledContext(t *testing.T) {
	pg.Get(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, err := Start(ctx, Options{})
	if err == nil {
		c.Close()
		t.Fatal("Start with a canceled context succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
