package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/pgentra/pgentra/examples/internal/exenv"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// principalInfo is one entry of identities.json.
type principalInfo struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	ClientID   string `json:"client_id,omitempty"`
	ObjectID   string `json:"object_id"`
	ResourceID string `json:"resource_id,omitempty"`
	// HasRole is whether a PostgreSQL role existed for it when the
	// emulator started.
	HasRole bool `json:"has_role"`
}

// instance is a running emulator command: the emulator, its files and the
// server behind the az and azd scripts.
type instance struct {
	env        *emulator.Env
	cli        *cliServer
	dir        string
	root       *os.Root    // dir, opened once: every file is made through it
	ownDir     os.FileInfo // dir as created, when the command created it
	mu         sync.Mutex  // guards made
	made       []madeFile  // what the command created, oldest first
	warn       io.Writer   // notes at exit, rotation failures
	envLines   string
	principals []principalInfo
	workloads  []entra.Principal
	rotateStop chan struct{} // closes to stop the projected-token rotation
	rotateDone chan struct{}
}

// Files the command writes into its dir.
const (
	envFile        = "env.sh"
	identitiesFile = "identities.json"
	caFile         = "ca.pem"
	binDir         = "bin"
	// authorityCAFile is the certificate of the Entra authority (TLS), for
	// SSL_CERT_FILE in a workload's env file.
	authorityCAFile = "authority-ca.pem"
)

// dirVar names the command's dir in env.sh, for `emulator token`.
const dirVar = "PGENTRA_EMULATOR_DIR"

// fileNames are the names the command creates under its dir (bin/ aside).
func fileNames(cfg config) []string {
	names := []string{caFile, identitiesFile, envFile,
		filepath.Join(binDir, cliSecretFile), filepath.Join(binDir, cliEndpointFile),
		filepath.Join(binDir, "az"), filepath.Join(binDir, "azd")}
	if len(cfg.workloads) > 0 {
		names = append(names, authorityCAFile)
	}
	for _, w := range cfg.workloads {
		names = append(names, workloadEnvFile(w), workloadTokenFile(w), workloadTokenTemp(w))
	}
	return names
}

// setUp starts the emulator and its principals and writes the files. On
// error everything started so far is stopped.
func setUp(ctx context.Context, cfg config, start startFunc, stderr io.Writer) (_ *instance, err error) {
	inst := &instance{warn: stderr}
	defer func() {
		if err != nil {
			err = errors.Join(err, inst.Close())
		}
	}()
	if err = inst.makeDir(cfg.dir); err != nil {
		return nil, err
	}
	if err = inst.refuseExisting(fileNames(cfg)); err != nil {
		return nil, err
	}
	opts := emulator.Options{
		// Azure refuses cleartext logins; so does the emulator.
		RequireTLS: true,
		FrontPort:  cfg.port,
		// Zero keeps the tenant's defaults, which follow Azure's lifetimes.
		TokenLifetime: cfg.lifetime,
	}
	if cfg.verbose {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, "emulator: "+format+"\n", args...) }
	}
	if inst.env, err = start(ctx, opts); err != nil {
		if cfg.port != 0 && strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("-port %d is taken: %w", cfg.port, err)
		}
		return nil, fmt.Errorf("starting the emulator: %w", err)
	}
	env := inst.env

	admin, err := env.Tenant.AddUser(cfg.admin)
	if err != nil {
		return nil, fmt.Errorf("-admin %q: %w", cfg.admin, err)
	}
	if _, err = env.CreatePrincipal(ctx, admin, true); err != nil {
		return nil, fmt.Errorf("creating the Entra administrator's role %q: %w", cfg.admin, err)
	}
	// Entra administrators (azure_pg_admin) may create objects in the
	// postgres database's public schema, as the server admin can on Azure
	// (PostgreSQL 15 lets only the database owner do that by default).
	if _, err = env.AdminDB.ExecContext(ctx, "alter database postgres owner to azure_pg_admin"); err != nil {
		return nil, fmt.Errorf("letting Entra administrators use the postgres database: %w", err)
	}
	// The App Service app: its system-assigned identity, its role and a
	// schema it owns, as the examples set it up (env vars are ours to print,
	// not to set in this process).
	noSetenv := func(string, string) error { return nil }
	if _, err = exenv.WebApp(ctx, env, cfg.app, noSetenv, nil); err != nil {
		return nil, fmt.Errorf("-app %q: %w", cfg.app, err)
	}
	for _, name := range cfg.identities {
		p, err := env.Tenant.AddUserAssignedIdentity(name)
		if err != nil {
			return nil, fmt.Errorf("-identity %q: %w", name, err)
		}
		// In the tenant's directory (pgaadauth_create_principal finds it),
		// with no role: the administrator creates it, as on Azure.
		if err := env.Register(ctx, p); err != nil {
			return nil, fmt.Errorf("-identity %q: %w", name, err)
		}
	}

	for _, name := range cfg.workloads {
		// An app registration whose federated credential trusts the
		// service account system:serviceaccount:default:<name>; no role yet.
		p, err := env.Tenant.AddServicePrincipal(name)
		if err != nil {
			return nil, fmt.Errorf("-workload %q: %w", name, err)
		}
		if err := env.Register(ctx, p); err != nil {
			return nil, fmt.Errorf("-workload %q: %w", name, err)
		}
		inst.workloads = append(inst.workloads, p)
	}

	if inst.cli, err = startCLIServer(env.Tenant, admin); err != nil {
		return nil, err
	}
	if err = inst.writeFiles(ctx); err != nil {
		return nil, err
	}
	if len(inst.workloads) > 0 {
		inst.rotateStop, inst.rotateDone = make(chan struct{}), make(chan struct{})
		go inst.rotate(workloadRotation)
	}
	return inst, nil
}

// writeFiles writes the CA, bin/az, bin/azd, identities.json and env.sh
// (last: its presence means ready).
func (inst *instance) writeFiles(ctx context.Context) error {
	env := inst.env
	if err := inst.write(caFile, env.CA.CertPEM(), 0o644); err != nil {
		return err
	}
	bin := filepath.Join(inst.dir, binDir)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program for the az and azd scripts: %w", err)
	}
	if err := inst.write(filepath.Join(binDir, cliSecretFile), []byte(inst.cli.secret), 0o600); err != nil {
		return err
	}
	if err := inst.write(filepath.Join(binDir, cliEndpointFile), []byte(inst.cli.url()+"\n"), 0o600); err != nil {
		return err
	}
	for _, name := range []string{"az", "azd"} {
		if err := inst.write(filepath.Join(binDir, name), []byte(cliScript(exe, inst.cli.url(), filepath.Join(bin, cliSecretFile), name, inst.cli.admin)), 0o755); err != nil {
			return err
		}
	}

	for _, p := range env.Tenant.Principals() {
		var has bool
		if err := env.AdminDB.QueryRowContext(ctx, "select exists (select from pg_roles where rolname = $1)", p.Name).Scan(&has); err != nil {
			return fmt.Errorf("looking up the role of %q: %w", p.Name, err)
		}
		info := principalInfo{Name: p.Name, Kind: p.Kind.String(), ObjectID: p.ObjectID, ResourceID: p.ResourceID, HasRole: has}
		if p.Kind != entra.User {
			info.ClientID = p.AppID
		}
		inst.principals = append(inst.principals, info)
	}
	js, err := json.MarshalIndent(inst.principals, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", identitiesFile, err)
	}
	if err := inst.write(identitiesFile, append(js, '\n'), 0o644); err != nil {
		return err
	}

	if err := inst.writeWorkloads(ctx); err != nil {
		return err
	}

	appEnv := env.Identity.AppServiceEnv()
	vars := []struct{ k, v string }{
		{"PGHOST", emulator.Host},
		{"PGPORT", strconv.Itoa(env.Front.Port())},
		{"PGDATABASE", "postgres"},
		{"PGSSLMODE", "verify-full"},
		{"PGSSLROOTCERT", filepath.Join(inst.dir, caFile)},
		{"IDENTITY_ENDPOINT", appEnv["IDENTITY_ENDPOINT"]},
		{"IDENTITY_HEADER", appEnv["IDENTITY_HEADER"]},
		{"PGENTRA_EMULATOR_ADMIN", inst.cli.admin.UPN},
		{"PGENTRA_EMULATOR_IMDS", env.Identity.URL()},
		{dirVar, inst.dir},
	}
	var b strings.Builder
	for _, kv := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", kv.k, shQuote(kv.v))
	}
	fmt.Fprintf(&b, "export PATH=%s:\"$PATH\"\n", shQuote(bin))
	inst.envLines = b.String()
	return inst.write(envFile, []byte("# pgentra emulator (pid "+strconv.Itoa(os.Getpid())+"): source this file\n"+inst.envLines), 0o644)
}

// Close stops the emulator and removes what the command created: its
// files, bin/ and the dir when it created them and they hold nothing else.
func (inst *instance) Close() error {
	var errs []error
	if inst.rotateStop != nil {
		close(inst.rotateStop)
		<-inst.rotateDone
		inst.rotateStop = nil
	}
	if inst.cli != nil {
		errs = append(errs, inst.cli.Close())
		inst.cli = nil
	}
	if inst.env != nil {
		errs = append(errs, inst.env.Close())
		inst.env = nil
	}
	errs = append(errs, inst.removeMade(inst.warn))
	return errors.Join(errs...)
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
