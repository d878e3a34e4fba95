package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// A -workload NAME plays an AKS pod with Entra workload identity: an app
// registration NAME whose federated credential trusts the service account
// system:serviceaccount:default:NAME, and the files the workload-identity
// webhook and the kubelet give such a pod: the projected service-account
// token (DIR/workload-NAME.token, rotated as the kubelet does) and the
// variables (DIR/workload-NAME.env).

// workloadRotation is how often the projected token is rewritten; it lives
// an hour (the kubelet rotates at 80 % of its life).
const workloadRotation = 20 * time.Minute

func workloadEnvFile(name string) string   { return "workload-" + name + ".env" }
func workloadTokenFile(name string) string { return "workload-" + name + ".token" }
func workloadTokenTemp(name string) string { return ".workload-" + name + ".token.new" }

// writeWorkloads writes the authority's certificate and each workload's
// token and env file.
func (inst *instance) writeWorkloads(ctx context.Context) error {
	if len(inst.workloads) == 0 {
		return nil
	}
	env := inst.env
	ca, err := authorityCertPEM(ctx, env.Authority)
	if err != nil {
		return err
	}
	if err := inst.write(authorityCAFile, ca, 0o644); err != nil {
		return err
	}
	for _, p := range inst.workloads {
		tok, err := env.Tenant.FederatedToken(p)
		if err != nil {
			return fmt.Errorf("-workload %q: %w", p.Name, err)
		}
		if err := inst.write(workloadTokenFile(p.Name), []byte(tok), 0o600); err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# pgentra emulator: what AKS's workload-identity webhook injects into a pod whose service\n"+
			"# account (%s) is federated with the app registration %q. SSL_CERT_FILE makes Go\n"+
			"# on Linux trust the emulator's Entra authority (TLS, test certificate); set\n"+
			"# DisableInstanceDiscovery in azidentity code, or MSAL asks login.microsoftonline.com\n"+
			"# about this authority (pgentra turns it off for a loopback authority). Source env.sh too.\n", p.FederatedSubject, p.Name)
		for _, kv := range []struct{ k, v string }{
			{"AZURE_CLIENT_ID", p.AppID},
			{"AZURE_TENANT_ID", env.Tenant.ID()},
			{"AZURE_FEDERATED_TOKEN_FILE", filepath.Join(inst.dir, workloadTokenFile(p.Name))},
			{"AZURE_AUTHORITY_HOST", env.Authority.URL() + "/"},
			{"SSL_CERT_FILE", filepath.Join(inst.dir, authorityCAFile)},
		} {
			fmt.Fprintf(&b, "export %s=%s\n", kv.k, shQuote(kv.v))
		}
		if err := inst.write(workloadEnvFile(p.Name), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// rotate rewrites the projected tokens every period until rotateStop.
func (inst *instance) rotate(every time.Duration) {
	defer close(inst.rotateDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-inst.rotateStop:
			return
		case <-t.C:
		}
		for _, p := range inst.workloads {
			tok, err := inst.env.Tenant.FederatedToken(p)
			if err == nil {
				err = inst.replace(workloadTokenFile(p.Name), workloadTokenTemp(p.Name), []byte(tok), 0o600)
			}
			if err != nil {
				fmt.Fprintf(inst.warn, "emulator: rotating the projected token of %q: %v\n", p.Name, err)
			}
		}
	}
}

// authorityCertPEM returns the certificate the Entra authority serves
// (self-signed, so also its root), as PEM: read from a request made with
// the client that trusts it, so it is the verified one.
func authorityCertPEM(ctx context.Context, a *entra.Authority) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+"/common/discovery/v2.0/keys", nil)
	if err != nil {
		return nil, fmt.Errorf("the authority's certificate: %w", err)
	}
	resp, err := a.Client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("the authority's certificate: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return nil, errors.New("the authority's certificate: the answer came without TLS")
	}
	var b bytes.Buffer
	for _, c := range resp.TLS.PeerCertificates {
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return nil, fmt.Errorf("the authority's certificate: %w", err)
		}
	}
	return b.Bytes(), nil
}
