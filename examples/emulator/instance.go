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
	removeDir  bool     // dir was created by us: remove it whole
	files      []string // files written into a dir we did not create
	envLines   string
	principals []principalInfo
}

// Files the command writes into its dir.
const (
	envFile        = "env.sh"
	identitiesFile = "identities.json"
	caFile         = "ca.pem"
	binDir         = "bin"
)

// setUp starts the emulator and its principals and writes the files. On
// error everything started so far is stopped.
func setUp(ctx context.Context, cfg config, start startFunc, stderr io.Writer) (_ *instance, err error) {
	inst := &instance{}
	defer func() {
		if err != nil {
			err = errors.Join(err, inst.Close())
		}
	}()
	if err = inst.makeDir(cfg.dir); err != nil {
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

	if inst.cli, err = startCLIServer(env.Tenant, admin); err != nil {
		return nil, err
	}
	if err = inst.writeFiles(ctx); err != nil {
		return nil, err
	}
	return inst, nil
}

// makeDir creates (or adopts) the directory the files go to.
func (inst *instance) makeDir(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "pgentra-emulator-")
		if err != nil {
			return fmt.Errorf("creating a temp dir: %w", err)
		}
		inst.dir, inst.removeDir = d, true
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("-dir %q: %w", dir, err)
	}
	inst.dir = abs
	switch fi, err := os.Stat(abs); {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fmt.Errorf("-dir %q: %w", dir, err)
		}
		inst.removeDir = true
	case err != nil:
		return fmt.Errorf("-dir %q: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("-dir %q: not a directory", dir)
	}
	return nil
}

// write writes one of the command's files (relative to the dir).
func (inst *instance) write(name string, data []byte, perm os.FileMode) error {
	path := filepath.Join(inst.dir, name)
	if err := os.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// WriteFile keeps an existing file's mode.
	if err := os.Chmod(path, perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	inst.files = append(inst.files, path)
	return nil
}

// writeFiles writes the CA, bin/az, bin/azd, identities.json and env.sh
// (last: its presence means ready).
func (inst *instance) writeFiles(ctx context.Context) error {
	env := inst.env
	if err := inst.write(caFile, env.CA.CertPEM(), 0o644); err != nil {
		return err
	}
	bin := filepath.Join(inst.dir, binDir)
	switch err := os.Mkdir(bin, 0o700); {
	case err == nil:
		inst.files = append(inst.files, bin) // removed after its files
	case !errors.Is(err, os.ErrExist):
		return fmt.Errorf("creating %s: %w", bin, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program for the az and azd scripts: %w", err)
	}
	if err := inst.write(filepath.Join(binDir, cliSecretFile), []byte(inst.cli.secret), 0o600); err != nil {
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
	}
	var b strings.Builder
	for _, kv := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", kv.k, shQuote(kv.v))
	}
	fmt.Fprintf(&b, "export PATH=%s:\"$PATH\"\n", shQuote(bin))
	inst.envLines = b.String()
	return inst.write(envFile, []byte("# pgentra emulator (pid "+strconv.Itoa(os.Getpid())+"): source this file\n"+inst.envLines), 0o644)
}

// Close stops the emulator and removes what the command wrote: the whole
// dir when it created it, else its own files.
func (inst *instance) Close() error {
	var errs []error
	if inst.cli != nil {
		errs = append(errs, inst.cli.Close())
	}
	if inst.env != nil {
		errs = append(errs, inst.env.Close())
	}
	if inst.removeDir {
		errs = append(errs, os.RemoveAll(inst.dir))
	} else {
		for i := len(inst.files) - 1; i >= 0; i-- {
			if err := os.Remove(inst.files[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
