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
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

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
	if *scope == "" {
		*scope = token.ScopeForHost(*host)
	}
	cred, err := newCredential(*kind, *clientID, *tenantID, *scope)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	cache := token.NewCache(cred, *scope)
	defer cache.Close()
	tok, err := cache.Token(ctx)
	if err != nil {
		return fmt.Errorf("%s credential, scope %s: %w", *kind, *scope, err)
	}
	fmt.Fprintln(stdout, tok.Token)

	// Diagnostics, never the token.
	fmt.Fprintf(stderr, "token: scope %s, expires %s (in %s)\n", *scope, tok.ExpiresOn.Local().Format(time.RFC3339), time.Until(tok.ExpiresOn).Round(time.Second))
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

// newCredential builds the azidentity credential that pgentra's
// azure_credential=kind builds.
func newCredential(kind, clientID, tenantID, scope string) (azcore.TokenCredential, error) {
	var co azcore.ClientOptions
	switch scope {
	case token.ScopeChina:
		co.Cloud = cloud.AzureChina
	case token.ScopeUSGov:
		co.Cloud = cloud.AzureGovernment
	}
	if os.Getenv("AZURE_AUTHORITY_HOST") != "" {
		co.Cloud = cloud.Configuration{}
	}
	env := func(v, name string) string {
		if v != "" {
			return v
		}
		return os.Getenv(name)
	}
	switch kind {
	case "default":
		if clientID != "" {
			os.Setenv("AZURE_CLIENT_ID", clientID) // how DefaultAzureCredential takes it
		}
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: co, TenantID: tenantID})
	case "managed_identity":
		var id azidentity.ManagedIDKind
		if clientID != "" {
			id = azidentity.ClientID(clientID)
		}
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: co, ID: id})
	case "workload_identity":
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{ClientOptions: co, ClientID: clientID, TenantID: tenantID})
	case "client_secret":
		tenant, client, secret := env(tenantID, "AZURE_TENANT_ID"), env(clientID, "AZURE_CLIENT_ID"), os.Getenv("AZURE_CLIENT_SECRET")
		if tenant == "" || client == "" || secret == "" {
			return nil, errors.New("client_secret needs -tenant-id, -client-id (or AZURE_TENANT_ID, AZURE_CLIENT_ID) and AZURE_CLIENT_SECRET")
		}
		return azidentity.NewClientSecretCredential(tenant, client, secret, &azidentity.ClientSecretCredentialOptions{ClientOptions: co})
	case "client_certificate":
		tenant, client, path := env(tenantID, "AZURE_TENANT_ID"), env(clientID, "AZURE_CLIENT_ID"), os.Getenv("AZURE_CLIENT_CERTIFICATE_PATH")
		if tenant == "" || client == "" || path == "" {
			return nil, errors.New("client_certificate needs -tenant-id, -client-id (or AZURE_TENANT_ID, AZURE_CLIENT_ID) and AZURE_CLIENT_CERTIFICATE_PATH")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var pw []byte
		if p := os.Getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD"); p != "" {
			pw = []byte(p)
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return nil, err
		}
		return azidentity.NewClientCertificateCredential(tenant, client, certs, key, &azidentity.ClientCertificateCredentialOptions{ClientOptions: co})
	case "environment":
		return azidentity.NewEnvironmentCredential(&azidentity.EnvironmentCredentialOptions{ClientOptions: co})
	case "azure_cli":
		return azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: tenantID})
	case "azure_developer_cli":
		return azidentity.NewAzureDeveloperCLICredential(&azidentity.AzureDeveloperCLICredentialOptions{TenantID: tenantID})
	}
	return nil, fmt.Errorf("unknown -credential %q (want default, managed_identity, workload_identity, client_secret, client_certificate, environment, azure_cli or azure_developer_cli)", kind)
}
