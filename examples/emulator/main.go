// Emulator runs an offline, Entra-checking "Azure Database for PostgreSQL"
// on this machine, for any client: psql, pgbench, curl, other languages'
// Azure SDKs and drivers, and the examples in their Azure mode.
//
//	cd examples && go run ./emulator -identity id-orders
//	source /tmp/pgentra-emulator-…/env.sh      # the path it prints
//	PGUSER=$PGENTRA_EMULATOR_ADMIN PGPASSWORD=$(az account get-access-token --resource-type oss-rdbms --query accessToken -o tsv) \
//	  psql -c "select * from pgaadauth_create_principal('id-orders', false, false)"
//	PGUSER=id-orders PGPASSWORD=$(go run ./emulator token id-orders) psql -c "select current_user"
//
// It starts a fake Entra tenant, the IMDS and App Service managed-identity
// endpoints (on loopback), a TLS Entra authority, an Entra-checking
// PostgreSQL front with a certificate from its own CA, and a throwaway
// PostgreSQL 15 with Azure's pgaadauth functions behind it. Tokens are
// checked as Azure checks them (signature, aud, iss, tid, exp, the role's
// object ID), and refused with Azure's messages.
//
// Flags:
//
//	-dir DIR            where its files go (default: a new temp dir, removed at exit);
//	                    an existing DIR must be the user's and writable by no one
//	                    else, and hold none of the names it writes
//	-port N             the front's port on 127.0.0.1 (default: a free one)
//	-identity NAME      a user-assigned managed identity with no role yet (repeatable)
//	-workload NAME      an AKS workload identity with no role yet: an app registration
//	                    federated with service account NAME, and what AKS gives its
//	                    pod: DIR/workload-NAME.token (rotated) and DIR/workload-NAME.env
//	                    (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE,
//	                    AZURE_AUTHORITY_HOST, and SSL_CERT_FILE for the authority's
//	                    certificate) (repeatable)
//	-app NAME           the App Service app whose system-assigned identity
//	                    IDENTITY_ENDPOINT serves; its role is created (default app)
//	-admin UPN          the server's Entra administrator, signed in to az and azd
//	                    (default admin@contoso.example)
//	-token-lifetime D   lifetime of every token (default: Azure's, per kind)
//	-v                  log the front's and the cluster's progress to stderr
//
// When ready it writes DIR/env.sh (PGHOST, PGPORT, PGDATABASE, PGSSLMODE,
// PGSSLROOTCERT, IDENTITY_ENDPOINT, IDENTITY_HEADER, PGENTRA_EMULATOR_ADMIN,
// PGENTRA_EMULATOR_IMDS, PGENTRA_EMULATOR_DIR, and PATH with DIR/bin first,
// where az and azd are signed in as the admin), prints the same lines on
// stdout followed by a line "ready", and writes DIR/identities.json. It runs
// until SIGINT, SIGTERM or SIGHUP — under go run on Linux also until go
// run's own process ends (go run forwards no signal) — then stops
// everything it started, removes the files it created, and exits 0.
//
// `emulator token [-dir DIR] NAME` prints a database access token for any
// identity of a running emulator (DIR defaults to $PGENTRA_EMULATOR_DIR).
//
// Everything listens on loopback only. The emulator's IMDS is NOT at
// 169.254.169.254: use $PGENTRA_EMULATOR_IMDS as the base URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/pgtest"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case cliSubcommand:
			os.Exit(cliClient(os.Args[2:], os.Stdout, os.Stderr))
		case "token":
			os.Exit(tokenCommand(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	if err := stopWithGoRun(); err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		stop()
		os.Exit(1)
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, emulator.Start)
	stop()
	os.Exit(code)
}

// config is the command line.
type config struct {
	dir        string
	port       int
	identities []string
	workloads  []string
	app        string
	admin      string
	lifetime   time.Duration
	verbose    bool
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// parseFlags reads the command line; errors name the flag and what it accepts.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{}
	var ids, workloads listFlag
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.dir, "dir", "", "directory for env.sh, identities.json, the CA and bin/ (default: a new temp dir, removed at exit)")
	fs.IntVar(&cfg.port, "port", 0, "port of the Entra-checking PostgreSQL front on 127.0.0.1 (default: a free port)")
	fs.Var(&ids, "identity", "a user-assigned managed identity with no role yet (repeatable)")
	fs.Var(&workloads, "workload", "an AKS workload identity with no role yet: an app registration and the files AKS gives its pod, DIR/workload-NAME.env and .token (repeatable)")
	fs.StringVar(&cfg.app, "app", "app", "App Service app whose system-assigned identity IDENTITY_ENDPOINT serves; its role is created")
	fs.StringVar(&cfg.admin, "admin", "admin@contoso.example", "UPN of the server's Entra administrator, signed in to az and azd")
	fs.DurationVar(&cfg.lifetime, "token-lifetime", 0, "lifetime of every token, e.g. 5m (default: Azure's lifetimes)")
	fs.BoolVar(&cfg.verbose, "v", false, "log the front's and the cluster's progress to stderr")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.identities, cfg.workloads = ids, workloads
	for _, w := range workloads {
		if len(w) > 253 || !serviceAccountRE.MatchString(w) {
			return cfg, fmt.Errorf("-workload %q: want a Kubernetes service-account name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", w)
		}
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments %q (every setting is a flag; see -h)", fs.Args())
	case cfg.port < 0 || cfg.port > 65535:
		return cfg, fmt.Errorf("-port %d: want a TCP port, 1-65535 (or 0 for a free one)", cfg.port)
	case cfg.lifetime < 0:
		return cfg, fmt.Errorf("-token-lifetime %s: want a positive duration such as 5m or 1h", cfg.lifetime)
	case cfg.lifetime > 0 && cfg.lifetime < 10*time.Second:
		return cfg, fmt.Errorf("-token-lifetime %s: want at least 10s (tokens shorter than that expire between fetch and login)", cfg.lifetime)
	case cfg.app == "":
		return cfg, errors.New("-app: want the App Service app's name, e.g. -app web-orders")
	}
	return cfg, nil
}

// serviceAccountRE is a Kubernetes service-account name (a DNS subdomain).
var serviceAccountRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// startFunc starts the emulator (emulator.Start; tests substitute it).
type startFunc func(context.Context, emulator.Options) (*emulator.Env, error)

// noPostgresHelp is what to do when the PostgreSQL server binaries are missing.
const noPostgresHelp = `The emulator runs a real, throwaway PostgreSQL and needs its server programs (initdb, pg_ctl):
  Debian/Ubuntu:  sudo apt-get install postgresql        (they land in /usr/lib/postgresql/*/bin; no need to add it to PATH)
  Fedora/RHEL:    sudo dnf install postgresql-server
  macOS:          brew install postgresql@15
or put a directory holding initdb and pg_ctl first on PATH. psql and pgbench come with the client package.`

// run is the command: parse, start, print, wait for ctx (the signal), stop.
// It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, start startFunc) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "emulator:", err)
		return 2
	}
	began := time.Now()
	inst, err := setUp(ctx, cfg, start, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "emulator:", err)
		if errors.Is(err, pgtest.ErrNoPostgres) {
			fmt.Fprintln(stderr, noPostgresHelp)
		}
		return 1
	}
	fmt.Fprintf(stderr, "emulator: up in %s; files in %s; stop with Ctrl-C (SIGINT) or SIGTERM\n", time.Since(began).Round(time.Millisecond), inst.dir)
	for _, p := range inst.principals {
		fmt.Fprintf(stderr, "emulator:   %-28s %-22s role=%-5v client_id=%s\n", p.Name, p.Kind, p.HasRole, p.ClientID)
	}
	fmt.Fprintf(stderr, "emulator: in another shell: source %s\n", shQuote(filepath.Join(inst.dir, envFile)))
	for _, p := range inst.workloads {
		fmt.Fprintf(stderr, "emulator: workload %s: source %s too\n", p.Name, shQuote(filepath.Join(inst.dir, workloadEnvFile(p.Name))))
	}
	if _, err := io.WriteString(stdout, inst.envLines+"ready\n"); err != nil {
		fmt.Fprintln(stderr, "emulator: writing to stdout:", err)
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "emulator: stopping")
	if err := inst.Close(); err != nil {
		fmt.Fprintln(stderr, "emulator: stopping:", err)
		return 1
	}
	fmt.Fprintln(stderr, "emulator: stopped")
	return 0
}
