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
	base := fmt.Sprintf("host=%s port=%d dbname=postgres azure_credential=managed_identity", emulator.Host, env.Front.Port())
	child := func(dsn, certFile string) (string, error) {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		// Only certFile's CAs are system roots: SSL_CERT_DIR is empty.
		cmd.Env = append(os.Environ(), defaultTLSChildEnv+"="+dsn, "HOME="+t.TempDir(),
			"SSL_CERT_FILE="+certFile, "SSL_CERT_DIR="+t.TempDir())
		for k, v := range env.Identity.AppServiceEnv() {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// No TLS keys at all (the default), and pq's explicit way to say the same.
	for _, dsn := range []string{base, base + " sslmode=verify-full sslrootcert=system"} {
		logins, passwords := len(env.Front.Logins()), len(env.Front.Passwords())
		out, err := child(dsn, os.DevNull)
		if err == nil || !strings.Contains(out, "certificate signed by unknown authority") {
			t.Fatalf("%s, system roots without the CA: err=%v, output:\n%s\nwant a refusal for an unknown authority", dsn, err, out)
		}
		if n := len(env.Front.Passwords()); n != passwords {
			t.Fatalf("%s: the front received %d passwords from a client that could not verify it", dsn, n-passwords)
		}
		out, err = child(dsn, env.CAFile)
		if err != nil || !strings.Contains(out, "current_user: "+p.Name) {
			t.Fatalf("%s, system roots with the CA: err=%v, output:\n%s", dsn, err, out)
		}
		if n := len(env.Front.Logins()); n != logins+1 {
			t.Fatalf("%s: front logins went from %d to %d, want one more", dsn, logins, n)
		}
	}
	e67CheckFront(t, env, p, p.Name)
}
