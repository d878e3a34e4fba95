package emulator_test

// The production default: a DSN with no sslmode and no sslrootcert. pgentra
// turns it into verify-full against the system roots (pq would use require,
// which checks nothing). The only way to put the emulator's test CA among
// the system roots is SSL_CERT_FILE, which crypto/x509 reads once per
// process — so the login runs in a child process of this test binary.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
)

// defaultTLSChildEnv names the DSN a child process logs in with; TestMain
// runs defaultTLSChild instead of the tests when it is set.
const defaultTLSChildEnv = "PGENTRA_TEST_DEFAULT_TLS_DSN"

// defaultTLSChild opens the DSN from the environment with plain sql.Open,
// prints current_user and returns the exit code.
func defaultTLSChild(dsn string) int {
	db, err := sql.Open(driver.DriverName, dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var who string
	if err := db.QueryRowContext(ctx, "select current_user").Scan(&who); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Println("current_user:", who)
	return 0
}

// TestE2EDefaultTLSUsesSystemRoots: with the front's CA among the system
// roots, a DSN without sslmode logs in over verified TLS; without it, the
// same DSN is refused for an unknown authority and no token reaches the
// front. Neither child has a ~/.postgresql/root.crt (pq would use it).
func TestE2EDefaultTLSUsesSystemRoots(t *testing.T) {
	e67CleanEnv(t)
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := env.Tenant.AddSystemAssignedWebApp(e67Name("app-roots"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("host=%s port=%d dbname=postgres azure_credential=managed_identity", emulator.Host, env.Front.Port())
	if strings.Contains(dsn, "sslmode") || strings.Contains(dsn, "sslrootcert") {
		t.Fatalf("the DSN must leave TLS to the defaults: %s", dsn)
	}
	child := func(certFile string) (string, error) {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), defaultTLSChildEnv+"="+dsn, "HOME="+t.TempDir(), "SSL_CERT_DIR="+t.TempDir())
		if certFile != "" {
			cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+certFile)
		} else {
			cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+os.DevNull)
		}
		for k, v := range env.Identity.AppServiceEnv() {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := child("")
	if err == nil || !strings.Contains(out, "certificate signed by unknown authority") {
		t.Fatalf("without the CA among the system roots: err=%v, output:\n%s\nwant a refusal for an unknown authority", err, out)
	}
	if n := len(env.Front.Passwords()); n != 0 {
		t.Fatalf("the front received %d passwords from a client that could not verify it", n)
	}

	out, err = child(env.CAFile)
	if err != nil || !strings.Contains(out, "current_user: "+p.Name) {
		t.Fatalf("with the CA among the system roots: err=%v, output:\n%s", err, out)
	}
	e67CheckFront(t, env, p, p.Name)
}
