package pqinternal

import (
	"context"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lib/pq"
)

const secret = "pw-SECRET-MARKER"

// cleanPGEnv hides the PG* variables, which pq reads, from the test.
func cleanPGEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PG") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// fakeServer accepts connections on a loopback port and logs every client
// in at once (AuthenticationOk, ReadyForQuery), then reads until the client
// goes. It returns a key=value string for it, with a password.
func fakeServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
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
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				var n [4]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(n[:]))-4); err != nil {
					return
				}
				// 'R' AuthenticationOk, 'Z' ReadyForQuery (idle).
				if _, err := c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'}); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return fmt.Sprintf("host=127.0.0.1 port=%d user=u dbname=d sslmode=disable password=%s", ln.Addr().(*net.TCPAddr).Port, secret)
}

// keptPassword reads the password pq keeps in conn (a pointer to pq's
// connection type), as ForgetPassword finds it.
func keptPassword(t *testing.T, conn any) string {
	t.Helper()
	cfg := reflect.ValueOf(conn).Elem().FieldByName("cfg")
	if !cfg.IsValid() || cfg.Type() != reflect.TypeFor[pq.Config]() {
		t.Fatalf("pq's connection (%T) has no pq.Config field cfg any more: update ForgetPassword (and this test)", conn)
	}
	return cfg.FieldByName("Password").String()
}

// TestForgetPassword fails if pq's connection no longer keeps its Config in
// a field cfg (ForgetPassword would change nothing), or no longer keeps the
// password there (then ForgetPassword is not needed any more).
func TestForgetPassword(t *testing.T) {
	cleanPGEnv(t)
	cfg, err := pq.NewConfig(fakeServer(t))
	if err != nil {
		t.Fatal(err)
	}
	pqc, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pqc.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := keptPassword(t, conn); got != secret {
		t.Fatalf("pq keeps password %q in its connection, want the one it logged in with: does ForgetPassword still matter?", got)
	}
	if s := fmt.Sprintf("%+v", conn); !strings.Contains(s, secret) {
		t.Errorf("printing (%s) pq's connection no longer shows its password: does ForgetPassword still matter?", "%+v")
	}
	if !ForgetPassword(conn) {
		t.Fatal("ForgetPassword did not find the password in pq's connection")
	}
	if got := keptPassword(t, conn); got != "" {
		t.Errorf("password after ForgetPassword = %q", got)
	}
	if s := fmt.Sprintf("%+v", conn); strings.Contains(s, secret) {
		t.Errorf("printing (%s) pq's connection shows the password after ForgetPassword", "%+v")
	}
}

// TestForgetPasswordOnlyTouchesPQ: anything that is not a pq connection is
// left alone and reported, never a panic.
func TestForgetPasswordOnlyTouchesPQ(t *testing.T) {
	other := &notPQConn{}
	other.cfg.Password = "kept"
	for _, c := range []driver.Conn{nil, (*notPQConn)(nil), other} {
		if ForgetPassword(c) {
			t.Errorf("ForgetPassword(%T) = true", c)
		}
	}
	if other.cfg.Password != "kept" {
		t.Error("a conn whose cfg is not a pq.Config was changed")
	}
	if ForgetListenerPassword(nil) {
		t.Error("ForgetListenerPassword(nil) = true")
	}
}

// notPQConn is a driver.Conn with a cfg field that is not pq's.
type notPQConn struct{ cfg struct{ Password string } }

func (*notPQConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not implemented") }
func (*notPQConn) Close() error                        { return nil }
func (*notPQConn) Begin() (driver.Tx, error)           { return nil, errors.New("not implemented") }

// TestForgetListenerPassword fails if pq's ListenerConn no longer keeps its
// connection in a field cn, or that connection its password.
func TestForgetListenerPassword(t *testing.T) {
	cleanPGEnv(t)
	lc, err := pq.NewListenerConn(fakeServer(t), make(chan *pq.Notification, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	cn := reflect.ValueOf(lc).Elem().FieldByName("cn")
	if !cn.IsValid() || cn.Kind() != reflect.Pointer || cn.IsNil() {
		t.Fatal("pq's ListenerConn no longer keeps its connection in a pointer field cn: update ForgetListenerPassword")
	}
	conn := reflect.NewAt(cn.Type(), cn.Addr().UnsafePointer()).Elem().Interface()
	if got := keptPassword(t, conn); got != secret {
		t.Fatalf("pq keeps password %q in a ListenerConn's connection, want the one it logged in with", got)
	}
	if !ForgetListenerPassword(lc) {
		t.Fatal("ForgetListenerPassword did not find the password")
	}
	if got := keptPassword(t, conn); got != "" {
		t.Errorf("password after ForgetListenerPassword = %q", got)
	}
}

// TestSetKeys fails if pq.Config no longer records the keys it was given in
// a []string field set, or no longer records them by pq's key names.
func TestSetKeys(t *testing.T) {
	cleanPGEnv(t)
	cfg, err := pq.NewConfig("host=h user=u password=p")
	if err != nil {
		t.Fatal(err)
	}
	set, ok := SetKeys(cfg)
	if !ok {
		t.Fatal("pq.Config has no []string field set any more: update SetKeys and its callers in internal/dsn")
	}
	for _, k := range []string{"host", "user", "password"} {
		if !slices.Contains(set, k) {
			t.Errorf("set = %q lacks %q", set, k)
		}
	}
	if slices.Contains(set, "dbname") {
		t.Errorf("set = %q holds dbname, which was not given", set)
	}
	t.Setenv("PGDATABASE", "d")
	cfg, err = pq.NewConfig("user=u")
	if err != nil {
		t.Fatal(err)
	}
	if set, _ := SetKeys(cfg); !slices.Contains(set, "dbname") {
		t.Errorf("set = %q lacks dbname from PGDATABASE", set)
	}
}
