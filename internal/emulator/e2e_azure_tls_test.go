package emulator_test

// Microsoft's quickstarts write sslmode=require, which checks no
// certificate. For a host in Azure's database domains pgentra verifies
// require as verify-full (Azure's certificates chain to public roots and
// name the server). Here a front presents a certificate for an Azure-domain
// name from the emulator's test CA, which is not among this process's
// system roots: a server nobody can verify. require must not hand it a
// token, and must say why; azure_allow_insecure_tls=true keeps require as
// written; the test CA given as sslrootcert verifies it.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

func TestE2EAzureDomainRequireIsVerified(t *testing.T) {
	e67CleanEnv(t)
	t.Setenv("HOME", t.TempDir()) // no ~/.postgresql/root.crt for pq to pick up
	env := startEnv(t)
	p := e67Principal(t, env, "id-azdomain", true)
	const name = "x.postgres.database.azure.com"
	f := e67OtherFront(t, env, env.CA, name)
	// hostaddr dials the front; the name is what the certificate is checked
	// against (as through a private endpoint or an SSH tunnel).
	base := fmt.Sprintf("host=%s hostaddr=127.0.0.1 port=%d dbname=postgres user=%s sslmode=require", name, f.Port(), p.Name)
	cred := e67Minting(env.Tenant, p, entra.DatabaseAudience)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	db := e67Open(t, base, driver.WithCredential(cred))
	err := db.PingContext(ctx)
	var le *driver.LoginError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("sslmode=require to %s with an unverifiable certificate: err = %v; want a LoginError for an unknown authority", name, err)
	}
	for _, w := range []string{"verified this server as sslmode=verify-full", "sslmode=require", "Azure's database domains", "sslrootcert=", "azure_allow_insecure_tls=true"} {
		if !strings.Contains(le.Hint, w) {
			t.Errorf("hint %q does not mention %q", le.Hint, w)
		}
	}
	if n := len(f.Passwords()); n != 0 {
		t.Fatalf("the front received %d passwords over a connection nobody verified", n)
	}

	// The opt-out: require as written, the token goes unverified.
	db = e67Open(t, base+" azure_allow_insecure_tls=true", driver.WithCredential(cred))
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("require with azure_allow_insecure_tls=true: %v", err)
	}
	if n := len(f.Passwords()); n != 1 {
		t.Fatalf("require with azure_allow_insecure_tls=true: the front got %d passwords, want 1", n)
	}

	// Adding the root, as the hint says: verified, and logged in.
	f.Reset()
	db = e67Open(t, base+" sslrootcert="+env.CAFile, driver.WithCredential(cred))
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("require with sslrootcert: %v", err)
	}
	if l := f.Logins(); len(l) != 1 || !l[0].OK || !l[0].TLS || l[0].ServerName != name {
		t.Errorf("logins %+v; want one over TLS with SNI %q", l, name)
	}
}
