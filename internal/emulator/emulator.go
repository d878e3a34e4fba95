// Package emulator starts an offline stand-in for the Azure that pgentra
// talks to: an Entra tenant with IMDS / App Service identity endpoints and an
// authority, an Entra-checking PostgreSQL front with a TLS certificate from a
// test CA, and a real throwaway PostgreSQL behind it with Azure's pgaadauth
// functions installed.
//
// Real azidentity credentials and real pq run against it; only Azure itself
// is faked. Tests, benchmarks and the examples start one Env each:
//
//	env, err := emulator.Start(ctx, emulator.Options{})
//	defer env.Close()
//	mi, _ := env.Tenant.AddUserAssignedIdentity("id-orders")
//	env.CreatePrincipal(ctx, mi, false)
//	c, _ := driver.NewConnector(env.DSN("id-orders"), driver.WithClientOptions(env.ClientOptions()), ...)
package emulator

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	_ "github.com/lib/pq" // the admin connection
	"github.com/pgentra/pgentra/internal/dsn"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
	"github.com/pgentra/pgentra/internal/emulator/testca"
	"github.com/pgentra/pgentra/internal/pgtest"
)

// Host is the name the front's certificate is issued for; DSNs use it so
// that sslmode=verify-full checks the certificate for real.
const Host = "localhost"

// Options configure Start.
type Options struct {
	// TokenLifetime is the lifetime of tokens the tenant issues (default:
	// Azure's, 24 h for managed identities, 1 h for users and service
	// principals). Tests set it under 5 minutes (entra.ShortTestLifetime)
	// unless they want MSAL's own caching (see package entra).
	TokenLifetime time.Duration
	// RequireTLS makes the front refuse cleartext logins, as Azure does.
	RequireTLS bool
	// PG reuses a running cluster (a test binary's pgtest.Lazy); nil starts
	// one that Close stops.
	PG *pgtest.Cluster
	// Logf receives the front's and the cluster's progress lines.
	Logf func(format string, args ...any)
	// FrontPort is the TCP port the front listens on (127.0.0.1); zero
	// picks a free one. The emulator command's -port sets it.
	FrontPort int
}

// Env is a running emulator. Its fields are ready to use; Close stops what
// Start started.
type Env struct {
	Tenant    *entra.Tenant
	Identity  *entra.IdentityServer
	Authority *entra.Authority
	CA        *testca.CA
	CAFile    string // PEM of CA, for sslrootcert
	Front     *pgfront.Front
	PG        *pgtest.Cluster
	AdminDB   *sql.DB // superuser, "postgres" database, over the Unix socket

	ownsPG bool
	dir    string
}

// Start brings the emulator up. It needs the PostgreSQL binaries
// (errors.Is(err, pgtest.ErrNoPostgres) when they are missing).
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	e := &Env{}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()
	if e.PG = opts.PG; e.PG == nil {
		if e.PG, err = pgtest.Start(ctx, pgtest.Options{Logf: opts.Logf}); err != nil {
			return nil, err
		}
		e.ownsPG = true
	}
	if e.Tenant, err = entra.NewTenant(entra.TenantOptions{TokenLifetime: opts.TokenLifetime}); err != nil {
		return nil, fmt.Errorf("emulator: tenant: %w", err)
	}
	e.Identity = entra.NewIdentityServer(e.Tenant, entra.IdentityServerOptions{})
	e.Authority = entra.NewAuthority(e.Tenant)
	if e.CA, err = testca.New(); err != nil {
		return nil, fmt.Errorf("emulator: CA: %w", err)
	}
	if e.dir, err = os.MkdirTemp("", "pgentra-emu-"); err != nil {
		return nil, err
	}
	if e.CAFile, err = e.CA.WriteCertFile(e.dir); err != nil {
		return nil, fmt.Errorf("emulator: CA file: %w", err)
	}
	if e.AdminDB, err = sql.Open("postgres", e.PG.AdminDSN("postgres")); err != nil {
		return nil, err
	}
	if err = pgfront.InstallAADAuth(ctx, e.AdminDB, e.Tenant.ID(), nil); err != nil {
		return nil, fmt.Errorf("emulator: installing pgaadauth: %w", err)
	}
	tlsConf, err := e.CA.ServerTLS(Host, "127.0.0.1", "::1")
	if err != nil {
		return nil, fmt.Errorf("emulator: front certificate: %w", err)
	}
	e.Front, err = e.startFront(net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.FrontPort)), tlsConf, opts.RequireTLS, opts.Logf)
	if err != nil {
		return nil, fmt.Errorf("emulator: front: %w", err)
	}
	return e, nil
}

// StartFront starts another Entra-checking front for this tenant and
// backend, presenting tlsConf (nil: no TLS at all). Tests use it as a
// man in the middle — a certificate from another CA or for another host —
// and check through its recorder that no token reached it. The caller
// closes it.
func (e *Env) StartFront(tlsConf *tls.Config, requireTLS bool, logf func(string, ...any)) (*pgfront.Front, error) {
	return e.startFront("127.0.0.1:0", tlsConf, requireTLS, logf)
}

// startFront starts a front on addr.
func (e *Env) startFront(addr string, tlsConf *tls.Config, requireTLS bool, logf func(string, ...any)) (*pgfront.Front, error) {
	return pgfront.Listen(addr, pgfront.Config{
		BackendNetwork: "unix",
		BackendAddr:    filepath.Join(e.PG.SocketDir, ".s.PGSQL."+strconv.Itoa(e.PG.Port)),
		AdminDB:        e.AdminDB,
		TLS:            tlsConf,
		RequireTLS:     requireTLS,
		TenantID:       e.Tenant.ID(),
		Issuer:         e.Tenant.Issuer(),
		Audiences:      []string{entra.DatabaseAudience},
		Keys:           e.Tenant.PublicKey,
		Now:            e.Tenant.Now,
		Logf:           logf,
	})
}

// Close stops everything Start started; a shared cluster is left running.
func (e *Env) Close() error {
	var errs []error
	if e.Front != nil {
		errs = append(errs, e.Front.Close())
	}
	if e.Identity != nil {
		e.Identity.Close()
	}
	if e.Authority != nil {
		e.Authority.Close()
	}
	if e.AdminDB != nil {
		errs = append(errs, e.AdminDB.Close())
	}
	if e.ownsPG && e.PG != nil {
		errs = append(errs, e.PG.Close())
	}
	if e.dir != "" {
		errs = append(errs, os.RemoveAll(e.dir))
	}
	return errors.Join(errs...)
}

// DSN is a key=value connection string to the front over verify-full TLS,
// for user (none when empty: pgentra derives it), with extra appended.
func (e *Env) DSN(user string, extra ...string) string {
	s := fmt.Sprintf("host=%s port=%d dbname=postgres sslmode=verify-full sslrootcert=%s", Host, e.Front.Port(), e.CAFile)
	if user != "" {
		s += " user=" + dsn.QuoteValue(user)
	}
	for _, x := range extra {
		s += " " + x
	}
	return s
}

// Register puts p in the server's view of the tenant directory, so that
// pgaadauth_create_principal can find it by name. For a group (entra.Group)
// it also records the group's current direct members (Tenant.GroupMembers),
// whose own tokens the front then accepts for the group's role. The front
// does not follow later changes to the tenant: after AddGroupMember or
// RemoveGroupMember, call Register again with the group to update the
// membership (effective from the next login; registering is idempotent).
func (e *Env) Register(ctx context.Context, p entra.Principal) error {
	entry := pgfront.DirectoryEntry{Name: p.Name, ObjectID: p.ObjectID, Type: p.Type(), ManagedIdentity: p.IsManagedIdentity()}
	if p.Kind == entra.Group {
		members, err := e.Tenant.GroupMembers(p)
		if err != nil {
			return fmt.Errorf("emulator: registering group %q: %w", p.Name, err)
		}
		for _, m := range members {
			entry.Members = append(entry.Members, m.ObjectID)
		}
	}
	return pgfront.AddDirectoryEntry(ctx, e.AdminDB, entry)
}

// CreatePrincipal registers p (for a group: with its members, see Register)
// and runs, as the server's administrator,
// select * from pgaadauth_create_principal(name, admin, false) — the Entra
// administrator's step of Azure's set-up. It returns Azure's success line.
func (e *Env) CreatePrincipal(ctx context.Context, p entra.Principal, admin bool) (string, error) {
	if err := e.Register(ctx, p); err != nil {
		return "", err
	}
	var msg string
	err := e.AdminDB.QueryRowContext(ctx, "select * from pgaadauth_create_principal($1, $2, false)", p.Name, admin).Scan(&msg)
	return msg, err
}

// ClientOptions route every credential pgentra or a test builds to the
// emulator: http:// requests (IMDS) to the identity server, https:// ones to
// the authority, whose certificate they trust. Retries are fast: a real
// IMDS retry schedule would take ~97 s.
func (e *Env) ClientOptions() azcore.ClientOptions {
	o := entra.CombinedClientOptions(e.Identity, e.Authority)
	o.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond}
	return o
}
