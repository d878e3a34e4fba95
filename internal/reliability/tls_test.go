package reliability_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
	"github.com/pgentra/pgentra/internal/emulator/testca"
)

// mitm starts a second Entra-checking front for env's tenant and backend,
// presenting tlsConf (nil: no TLS at all). It would accept env's tokens and
// records every password it receives.
func mitm(t *testing.T, env *emulator.Env, tlsConf *tls.Config) *pgfront.Front {
	t.Helper()
	f, err := env.StartFront(tlsConf, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestTLSManInTheMiddle: with no sslmode in the DSN (pgentra's default,
// verify-full) and sslrootcert naming the real server's CA, a server with a
// certificate from another CA, one with a certificate for another host, and
// one that offers no TLS are all refused before the password is sent: their
// recorders hold no token. The control case (sslmode=require, no root) shows
// the same impostor would have received the token, so the recorder works.
func TestTLSManInTheMiddle(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 0)
	p := newIdentity(t, env, "id-tls")
	otherCA, err := testca.New()
	if err != nil {
		t.Fatal(err)
	}
	otherCATLS, err := otherCA.ServerTLS(emulator.Host, "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	otherHostTLS, err := env.CA.ServerTLS("db.other.example")
	if err != nil {
		t.Fatal(err)
	}
	dsnFor := func(f *pgfront.Front, extra string) string {
		return fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslrootcert=%s %s", emulator.Host, f.Port(), p.Name, env.CAFile, extra)
	}
	connect := func(dsn string) error {
		cred := miCred(t, env, p)
		c, err := driver.NewConnector(dsn, driver.WithCredential(cred))
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := c.Connect(ctx)
		if err == nil {
			conn.Close()
		}
		return err
	}
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{{"other_ca", otherCATLS}, {"other_host", otherHostTLS}, {"no_tls", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			f := mitm(t, env, tc.tls)
			err := connect(dsnFor(f, ""))
			t.Logf("default sslmode: %v", err)
			if err == nil {
				t.Error("connected to an impostor")
			}
			if n := len(f.Passwords()); n != 0 {
				t.Errorf("the impostor received %d tokens", n)
			}
		})
	}
	t.Run("control_require_without_root", func(t *testing.T) {
		f := mitm(t, env, otherCATLS)
		if err := connect(fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=require", emulator.Host, f.Port(), p.Name)); err != nil {
			t.Fatalf("control connect failed: %v", err)
		}
		if n := len(f.Passwords()); n != 1 {
			t.Errorf("the impostor recorded %d tokens; the negative cases prove nothing", n)
		}
	})
	t.Run("real_server", func(t *testing.T) {
		if err := connect(fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslrootcert=%s", emulator.Host, env.Front.Port(), p.Name, env.CAFile)); err != nil {
			t.Fatalf("default sslmode to the real server: %v", err)
		}
	})
}

// TestTLSCleartextToRemoteHost: sslmode disable/allow/prefer to a host that is
// not loopback fails in NewConnector (nothing dialled, no token fetched) with
// driver.ErrInvalidConfig, in both DSN forms; azure_allow_insecure_tls=true
// is the explicit opt-out.
func TestTLSCleartextToRemoteHost(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"host=db.invalid user=u sslmode=disable",
		"host=db.invalid user=u sslmode=allow",
		"host=db.invalid user=u sslmode=prefer",
		"postgres://u@db.invalid/postgres?sslmode=disable",
		"host=localhost,db.invalid user=u sslmode=disable",
		"host=db.invalid hostaddr=192.0.2.1 user=u sslmode=disable",
	} {
		cred := hangingCred()
		_, err := driver.NewConnector(dsn, driver.WithCredential(cred))
		if !errors.Is(err, driver.ErrInvalidConfig) {
			t.Errorf("NewConnector(%q) = %v; want ErrInvalidConfig", dsn, err)
		}
		if cred.calls.Load() != 0 {
			t.Errorf("%q: a token was requested", dsn)
		}
	}
	c, err := driver.NewConnector("host=db.invalid user=u sslmode=disable azure_allow_insecure_tls=true", driver.WithCredential(hangingCred()))
	if err != nil {
		t.Errorf("explicit opt-out refused: %v", err)
	} else {
		c.Close()
	}
}
