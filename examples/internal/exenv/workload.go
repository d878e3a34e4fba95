package exenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator"
)

// WorkloadPod plays an AKS pod with Microsoft Entra Workload ID on env: an
// application named name with a federated credential for the Kubernetes
// service account "default/<name>", its role made by the Entra
// administrator with docs/admin.sql, the service-account token Kubernetes
// projects into the pod written to a file in dir, and the four variables
// the workload-identity webhook injects set with setenv (restored by Close
// when unsetenv is non-nil): AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST.
//
// Target.Options carries the one thing no pod needs: a transport that
// trusts the emulated authority's test certificate.
func WorkloadPod(ctx context.Context, env *emulator.Env, name, dir string, setenv func(k, v string) error, unsetenv func(string) error) (*Target, error) {
	p, ok := env.Tenant.ByName(name)
	if !ok {
		var err error
		if p, err = env.Tenant.AddServicePrincipal(name); err != nil {
			return nil, err
		}
		if err := env.Register(ctx, p); err != nil {
			return nil, fmt.Errorf("registering %q in the tenant's directory: %w", name, err)
		}
		if err := RunAdminSQL(ctx, env, name, Database); err != nil {
			return nil, fmt.Errorf("the administrator's docs/admin.sql for %q: %w", name, err)
		}
	}
	tokenFile, err := env.Tenant.WriteFederatedTokenFile(dir, p)
	if err != nil {
		return nil, err
	}
	co := env.ClientOptions()
	co.Cloud = cloud.Configuration{} // the authority comes from AZURE_AUTHORITY_HOST, as in a pod
	t := &Target{DSN: env.DSN(p.Name), Role: p.Name, Host: emulator.Host, Env: env, Principal: p,
		Options: []driver.Option{driver.WithClientOptions(co)}}
	err = t.setenv(map[string]string{
		"AZURE_CLIENT_ID":            p.AppID,
		"AZURE_TENANT_ID":            env.Tenant.ID(),
		"AZURE_FEDERATED_TOKEN_FILE": tokenFile,
		"AZURE_AUTHORITY_HOST":       env.Authority.URL(),
	}, setenv, unsetenv)
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// EmulateWorkload starts the emulator and sets up a WorkloadPod on it, its
// token file in a temporary directory; Close stops the emulator and
// removes the directory.
func EmulateWorkload(ctx context.Context, opts emulator.Options, name string) (*Target, error) {
	env, err := emulator.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgentra-pod-")
	if err != nil {
		env.Close()
		return nil, err
	}
	t, err := WorkloadPod(ctx, env, name, dir, os.Setenv, os.Unsetenv)
	if err != nil {
		env.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	t.ownsEnv = true
	t.restore = append([]func(){func() { os.RemoveAll(filepath.Clean(dir)) }}, t.restore...)
	return t, nil
}
