// Pgx shows pgentra's token cache without database/sql: a pgxpool whose
// BeforeConnect hook sets each new connection's password from one shared
// token.Cache, so N pool connections cost one token request.
//
//	cd examples && go run ./pgx      # offline emulator, or PGHOST=... for Azure
//
// Copy newPool when your code uses pgx/pgxpool directly. TLS is pgx's own:
// sslmode=verify-full and, for a private CA, sslrootcert in the DSN (Azure's
// certificates chain to roots in the system store, so Azure DSNs need only
// sslmode=verify-full). Close the pool before the cache: the pool may open
// connections until it is closed.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgentra/pgentra/examples/internal/exenv"
	"github.com/pgentra/pgentra/token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pgx:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context) error {
	target, err := exenv.FromEnvironment(ctx, os.Stderr, "app-pgx")
	if err != nil {
		return err
	}
	defer target.Close()
	dsn := target.DSN
	if !target.Emulated() && os.Getenv("PGSSLMODE") == "" {
		dsn = "sslmode=verify-full" // pgx's default, prefer, would not check the certificate
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return err
	}
	return run(ctx, os.Stdout, dsn, cred, 5)
}

// newPool returns a pool of up to maxConns connections that log in with
// tokens from cache.
func newPool(ctx context.Context, dsn string, maxConns int32, cache *token.Cache) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn) // "" reads the PG* variables
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		tok, err := cache.Token(ctx) // cached: no I/O for most connections
		if err != nil {
			return err
		}
		cc.Password = tok.Token
		return nil
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// run opens n pool connections at once and reports how many tokens they cost.
func run(ctx context.Context, out io.Writer, dsn string, cred azcore.TokenCredential, n int) error {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return err
	}
	var fetches atomic.Int32
	cache := token.NewCache(cred, token.ScopeForHost(cfg.ConnConfig.Host),
		token.WithEventHandler(func(e token.Event) {
			if e.Kind == token.FetchEnd {
				fetches.Add(1)
			}
		}))
	defer cache.Close()

	pool, err := newPool(ctx, dsn, int32(n), cache)
	if err != nil {
		return err
	}
	defer pool.Close()

	// Hold n connections at the same time, so the pool must open n.
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	pids := map[uint32]bool{}
	var user string
	for _, c := range conns {
		if err := c.QueryRow(ctx, "select current_user").Scan(&user); err != nil {
			return err
		}
		pids[c.Conn().PgConn().PID()] = true
	}
	fmt.Fprintf(out, "%d pool connections as %s, %d token fetch(es)\n", len(pids), user, fetches.Load())
	return nil
}
