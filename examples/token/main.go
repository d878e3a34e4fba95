// Token prints an Entra access token for Azure Database for PostgreSQL, for
// tools that take a password — psql, pg_dump, pgAdmin, a migration tool:
//
//	export PGPASSWORD=$(go run ./token -host myserver.postgres.database.azure.com)
//	psql "host=myserver.postgres.database.azure.com user=me@contoso.com dbname=postgres sslmode=verify-full"
//
// It uses the same credentials as pgentra's azure_credential key
// (-credential default | managed_identity | workload_identity |
// client_secret | client_certificate | environment | azure_cli |
// azure_developer_cli, with -client-id and -tenant-id; secrets only from the
// environment) and takes the scope from -scope, or from -host (default
// $PGHOST) with token.ScopeForHost, so sovereign clouds work. It prints
// ONLY the token on stdout; who it is for, when it expires and the role name
// it suggests go to stderr. Tokens live up to 24 h and open every server the
// identity can reach: don't log them, and prefer pgentra itself in Go code.
//
// It is also the quickest check of a credential: if this prints a token,
// pgentra with the same azure_credential gets one too.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, os.Stderr, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "token:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("credential", "default", "default, managed_identity, workload_identity, client_secret, client_certificate, environment, azure_cli or azure_developer_cli")
	clientID := fs.String("client-id", "", "user-assigned managed identity or app client ID (default $AZURE_CLIENT_ID where azidentity reads it)")
	tenantID := fs.String("tenant-id", "", "tenant ID (default $AZURE_TENANT_ID)")
	scope := fs.String("scope", "", "token scope (default: from -host)")
	host := fs.String("host", os.Getenv("PGHOST"), "server host name, to pick the scope and cloud")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// The same DSN keys pgentra reads, so the token comes from exactly the
	// credential and scope a pgentra pool with this DSN would use.
	dsn := []string{"azure_credential=" + quote(*kind)}
	for key, v := range map[string]string{"host": *host, "azure_client_id": *clientID, "azure_tenant_id": *tenantID, "azure_scope": *scope} {
		if v != "" {
			dsn = append(dsn, key+"="+quote(v))
		}
	}
	c, err := driver.NewConnector(strings.Join(dsn, " "))
	if err != nil {
		var ce *driver.ConfigError
		if errors.As(err, &ce) && ce.Key == "azure_credential" {
			return fmt.Errorf("unknown -credential %q: %w", *kind, err)
		}
		return err
	}
	defer c.Close()
	cache := c.TokenCache()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tok, err := cache.Token(ctx)
	if err != nil {
		return fmt.Errorf("%s credential, scope %s: %w", *kind, cache.Scope(), err)
	}
	fmt.Fprintln(stdout, tok.Token)

	// Diagnostics, never the token.
	fmt.Fprintf(stderr, "token: scope %s, expires %s (in %s)\n", cache.Scope(), tok.ExpiresOn.Local().Format(time.RFC3339), time.Until(tok.ExpiresOn).Round(time.Second))
	if c, err := token.ParseClaims(tok.Token); err == nil {
		fmt.Fprintf(stderr, "token: for %s\n", c)
		if name := c.PrincipalName(); name != "" {
			fmt.Fprintf(stderr, "token: role name is probably %q (user=%s)\n", name, name)
		} else {
			fmt.Fprintln(stderr, "token: the token names no role: use the name given to pgaadauth_create_principal")
		}
	}
	return nil
}

// quote quotes a value for a key=value connection string.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
