package driver

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// stallingServer accepts TCP connections and never answers: the shape of a
// black-holed TLS handshake or a hung server.
func stallingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().(*net.TCPAddr).AddrPort().String()
}

func TestConnectBoundedByContext(t *testing.T) {
	addr := stallingServer(t)
	host, port, _ := net.SplitHostPort(addr)
	for _, mode := range []string{"disable", "require", "verify-full"} {
		t.Run(mode, func(t *testing.T) {
			cred := &fakeCredential{claims: userClaims()}
			c, err := NewConnector("host="+host+" port="+port+" user=u dbname=d sslmode="+mode, WithCredential(cred))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			conn, err := c.Connect(ctx)
			elapsed := time.Since(start)
			if err == nil {
				conn.Close()
				t.Fatal("Connect succeeded against a server that never answers")
			}
			if elapsed > time.Second {
				t.Errorf("Connect took %v with a 300ms context", elapsed)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
			}
			var le *LoginError
			if errors.As(err, &le) {
				t.Errorf("a timeout is reported as a login failure: %v", err)
			}
		})
	}
}

func TestSQLOpenUsesConnector(t *testing.T) {
	// sql.Open calls OpenConnector at once: a bad DSN fails here, before any
	// connection, which proves the DSN is parsed once per sql.DB.
	if _, err := sql.Open(DriverName, "host=h azure_bogus=1"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("sql.Open with a bad DSN: %v", err)
	}
	db, err := sql.Open(DriverName, "host=srv.postgres.database.azure.com user=u azure_credential=azure_cli")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, ok := db.Driver().(*Driver); !ok {
		t.Errorf("db.Driver() = %T", db.Driver())
	}
}
