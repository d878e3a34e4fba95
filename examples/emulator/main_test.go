package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgentra/pgentra/examples/internal/extest"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/pgtest"
)

// TestParseFlags checks the defaults and that bad flags are refused with
// the flag's name and what it accepts.
func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.app != "app" || cfg.admin != "admin@contoso.example" || cfg.lifetime != 0 || cfg.port != 0 || cfg.dir != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"-identity", "a", "-identity", "b", "-token-lifetime", "5m", "-port", "6543"}, io.Discard)
	if err != nil || strings.Join(cfg.identities, ",") != "a,b" || cfg.lifetime != 5*time.Minute || cfg.port != 6543 {
		t.Errorf("repeatable -identity etc.: %+v, %v", cfg, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-port", "70000"}, "-port 70000: want a TCP port"},
		{[]string{"-token-lifetime", "-1m"}, "-token-lifetime -1m0s: want a positive duration"},
		{[]string{"-token-lifetime", "2s"}, "want at least 10s"},
		{[]string{"-app", ""}, "-app: want the App Service app's name"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"-workload", "Web_API"}, `-workload "Web_API": want a Kubernetes service-account name`},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestNoPostgres: without the PostgreSQL server binaries the command fails
// at once, says what to install, and leaves no directory behind.
func TestNoPostgres(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "emu")
	start := func(context.Context, emulator.Options) (*emulator.Env, error) {
		return nil, fmt.Errorf("pgentra: pgtest: %w: initdb and pg_ctl not found", pgtest.ErrNoPostgres)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-dir", dir}, &out, &errOut, start)
	if code != 1 || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q; want 1 and nothing (no ready)", code, out.String())
	}
	for _, want := range []string{"PostgreSQL server binaries not available", "apt-get install postgresql", "initdb, pg_ctl"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-dir %s left behind (stat: %v)", dir, err)
	}
}

// TestCLIClientEmulatorGone: the az script of a stopped emulator says so.
func TestCLIClientEmulatorGone(t *testing.T) {
	var out, errOut bytes.Buffer
	code := cliClient([]string{"http://127.0.0.1:1", filepath.Join(t.TempDir(), "nosuch"), "az", "account", "show"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "emulator that wrote this az is gone") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

// TestTokenCommandErrors: `emulator token` without a dir, without a name,
// or for a dir where no emulator runs says what to do.
func TestTokenCommandErrors(t *testing.T) {
	t.Setenv(dirVar, "")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"id-orders"}, 2, "no -dir and PGENTRA_EMULATOR_DIR is not set: source the emulator's env.sh"},
		{[]string{"-dir", t.TempDir()}, 2, "want one identity name"},
		{[]string{"-dir", t.TempDir(), "id-orders"}, 1, "no pgentra emulator runs with -dir"},
	} {
		var out, errOut bytes.Buffer
		code := tokenCommand(tc.args, &out, &errOut)
		if code != tc.code || out.Len() != 0 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("token %q: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out.String(), errOut.String(), tc.code, tc.want)
		}
	}
}

// tool finds a PostgreSQL client program on PATH or in pg_config --bindir;
// "" when absent.
func tool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// unavailable skips the test, or fails it with CI=true.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: the PostgreSQL packages must be installed)", args...)
	}
	t.Skipf(format, args...)
}

// TestEmulatorCommand builds the command, starts it, sources env.sh in bash
// and drives it with real clients — psql, curl, pgbench, az as people type
// it, the quickstart and token examples in their Azure mode — then stops it
// with SIGTERM and checks nothing is left.
func TestEmulatorCommand(t *testing.T) {
	psql, pgbench := tool("psql"), tool("pgbench")
	if psql == "" || pgbench == "" {
		unavailable(t, "psql (%q) or pgbench (%q) not found", psql, pgbench)
	}
	curl, _ := exec.LookPath("curl")
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH to build the command: %v", err)
	}
	bin := t.TempDir()
	build := exec.Command(goTool, "build", "-o", bin+string(os.PathSeparator), ".", "../quickstart", "../token")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	dir := filepath.Join(t.TempDir(), "emu") // created and removed by the command
	cmd := exec.Command(filepath.Join(bin, "emulator"), "-dir", dir, "-identity", "id-orders", "-identity", "id-reports", "-workload", "api", "-token-lifetime", "7m", "-v")
	cmd.Env = cleanEnv()
	var stderr extest.SyncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var printed []string
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		got := false
		for sc.Scan() {
			if sc.Text() == "ready" {
				got = true
				break
			}
			printed = append(printed, sc.Text())
		}
		ready <- got
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			err := <-exited
			stopped = true
			if strings.Contains(stderr.String(), pgtest.ErrNoPostgres.Error()) {
				unavailable(t, "no PostgreSQL server: %s", stderr.String())
			}
			t.Fatalf("emulator exited before ready (%v):\n%s", err, stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("emulator not ready after 90 s:\n%s", stderr.String())
	}

	// The printed lines are env.sh's.
	envSh := filepath.Join(dir, "env.sh")
	content, err := os.ReadFile(envSh)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(printed, "\n")+"\n", strings.SplitN(string(content), "\n", 2)[1]; got != want {
		t.Errorf("printed:\n%s\nenv.sh:\n%s", got, want)
	}
	for _, k := range []string{"PGHOST='localhost'", "PGPORT=", "PGDATABASE='postgres'", "PGSSLMODE='verify-full'", "PGSSLROOTCERT=",
		"IDENTITY_ENDPOINT='http://127.0.0.1:", "IDENTITY_HEADER=", "PGENTRA_EMULATOR_ADMIN='admin@contoso.example'", "PGENTRA_EMULATOR_IMDS='http://127.0.0.1:",
		"PGENTRA_EMULATOR_DIR='" + dir + "'",
		"PATH='" + filepath.Join(dir, "bin") + "':\"$PATH\""} {
		if !strings.Contains(string(content), "\nexport "+k) {
			t.Errorf("env.sh lacks export %s:\n%s", k, content)
		}
	}
	clusterDir := regexp.MustCompile(`socket (\S*pgentra-pg-\d+)`).FindStringSubmatch(stderr.String())
	if clusterDir == nil {
		t.Fatalf("no cluster dir in the -v log:\n%s", stderr.String())
	}

	// identities.json: every principal, roles as started.
	var ids []principalInfo
	if b, err := os.ReadFile(filepath.Join(dir, "identities.json")); err != nil || json.Unmarshal(b, &ids) != nil {
		t.Fatalf("identities.json: %v\n%s", err, b)
	}
	byName := map[string]principalInfo{}
	for _, p := range ids {
		byName[p.Name] = p
	}
	for name, want := range map[string]struct {
		kind string
		role bool
	}{
		"admin@contoso.example": {"User", true},
		"app":                   {"SystemAssignedIdentity", true},
		"id-orders":             {"UserAssignedIdentity", false},
		"id-reports":            {"UserAssignedIdentity", false},
		"api":                   {"ServicePrincipal", false},
	} {
		p, ok := byName[name]
		if !ok || p.Kind != want.kind || p.HasRole != want.role || p.ObjectID == "" || (want.kind != "User" && p.ClientID == "") || (strings.HasSuffix(want.kind, "Identity") && p.ResourceID == "") {
			t.Errorf("identities.json %q: %+v (found %v), want kind %s role %v", name, p, ok, want.kind, want.role)
		}
	}
	if len(ids) != 5 {
		t.Errorf("identities.json lists %d principals, want 5", len(ids))
	}

	// sh runs script in bash after sourcing env.sh, with extra variables.
	sh := func(script string, extra ...string) (string, string, error) {
		t.Helper()
		c := exec.Command("bash", "-c", "set -eo pipefail; source \"$ENV_SH\"; "+script)
		c.Env = append(cleanEnv(), append([]string{"ENV_SH=" + envSh}, extra...)...)
		var o, e bytes.Buffer
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		return strings.TrimSpace(o.String()), e.String(), err
	}
	const adminToken = `PGPASSWORD=$(az account get-access-token --resource-type oss-rdbms --query accessToken -o tsv)`

	// 1. The Entra administrator creates the identity's role with psql.
	out, errOut, err := sh(`export PGUSER=$PGENTRA_EMULATOR_ADMIN ` + adminToken + `
		psql -XAtc "select * from pgaadauth_create_principal('id-orders', false, false)"`)
	if err != nil || out != `Created role for "id-orders"` {
		t.Fatalf("create principal: %v, stdout %q\n%s", err, out, errOut)
	}

	// 2. The seed's IMDS request for the identity's token.
	tok := imdsToken(t, sh, curl, byName["id-orders"].ClientID)

	// 3. psql as the identity with that token.
	out, errOut, err = sh(`PGUSER=id-orders psql -XAtc "select current_user"`, "PGPASSWORD="+tok)
	if err != nil || out != "id-orders" {
		t.Fatalf("psql as id-orders: %v, stdout %q\n%s", err, out, errOut)
	}
	// 3b. One line gives any identity's token: `emulator token NAME`, the
	// dir found through env.sh's PGENTRA_EMULATOR_DIR.
	out, errOut, err = sh(`PGUSER=id-orders PGPASSWORD=$("$BIN/emulator" token id-orders) psql -XAtc "select current_user"`, "BIN="+bin)
	if err != nil || out != "id-orders" {
		t.Errorf("psql with emulator token id-orders: %v, stdout %q\n%s", err, out, errOut)
	}
	out, errOut, err = sh(`PGUSER=$PGENTRA_EMULATOR_ADMIN PGPASSWORD=$("$BIN/emulator" token -dir "$PGENTRA_EMULATOR_DIR" "$PGENTRA_EMULATOR_ADMIN") psql -XAtc "select current_user"`, "BIN="+bin)
	if err != nil || out != "admin@contoso.example" {
		t.Errorf("psql with emulator token -dir DIR ADMIN: %v, stdout %q\n%s", err, out, errOut)
	}
	// id-orders' token is id-orders' only.
	_, errOut, err = sh(`PGUSER=app PGPASSWORD=$("$BIN/emulator" token id-orders) psql -XAtc "select 1"`, "BIN="+bin)
	if err == nil || !strings.Contains(errOut, `password authentication failed for user "app"`) {
		t.Errorf("app's role with id-orders' token: %v, stderr %q; want refused", err, errOut)
	}
	out, errOut, err = sh(`"$BIN/emulator" token nosuch`, "BIN="+bin)
	if err == nil || out != "" || !strings.Contains(errOut, `no identity named "nosuch"`) || !strings.Contains(errOut, "id-orders") {
		t.Errorf("emulator token nosuch: %v, stdout %q, stderr %q; want refused, naming the identities", err, out, errOut)
	}

	// 4. The identity's token does not open the admin's role.
	out, errOut, err = sh(`PGUSER=$PGENTRA_EMULATOR_ADMIN psql -XAtc "select current_user"`, "PGPASSWORD="+tok)
	if err == nil || !strings.Contains(errOut, `password authentication failed for user "admin@contoso.example"`) {
		t.Errorf("admin role with id-orders' token: %v, stdout %q, stderr %q; want refused", err, out, errOut)
	}
	// Another identity still has no role.
	_, errOut, err = sh(`PGUSER=id-reports psql -XAtc "select 1"`, "PGPASSWORD="+imdsToken(t, sh, curl, byName["id-reports"].ClientID))
	if err == nil || !strings.Contains(errOut, `password authentication failed for user "id-reports"`) {
		t.Errorf("id-reports without a role: %v, stderr %q; want refused", err, errOut)
	}

	// 5. pgbench: initialise, then a new (Entra-checked) login per transaction.
	out, errOut, err = sh(`export PGUSER=$PGENTRA_EMULATOR_ADMIN `+adminToken+`
		"$PGBENCH" -i -q -s 1 >/dev/null 2>&1 && "$PGBENCH" -C -c 2 -t 10 -n`, "PGBENCH="+pgbench)
	if err != nil || !strings.Contains(out, "number of failed transactions: 0 (0.000%)") || !strings.Contains(out, "number of transactions actually processed: 20/20") {
		t.Errorf("pgbench -C: %v\n%s\n%s", err, out, errOut)
	}

	// 6. The quickstart example in its Azure mode: PGHOST set, so no
	// emulator of its own; DefaultAzureCredential finds IDENTITY_ENDPOINT. No
	// PGUSER: the role ("app") is derived from the identity's token, as on
	// App Service.
	out, errOut, err = sh(`unset PGUSER; "$BIN/quickstart"`, "BIN="+bin)
	if err != nil || strings.Contains(out, "No PGHOST set") || !strings.Contains(out, "Connected!") || !strings.Contains(out, "Postgres version: PostgreSQL 15") {
		t.Errorf("quickstart: %v\n%s\n%s", err, out, errOut)
	}
	// 7. The token example, for psql, as the App Service app.
	out, errOut, err = sh(`T=$("$BIN/token"); PGUSER=app PGPASSWORD=$T psql -XAtc "select current_user"`, "BIN="+bin)
	if err != nil || out != "app" {
		t.Errorf("token + psql: %v, stdout %q\n%s", err, out, errOut)
	}
	// azd, as azidentity runs it, and az's other spellings log in too.
	out, errOut, err = sh(`export PGUSER=$PGENTRA_EMULATOR_ADMIN
		PGPASSWORD=$(az account get-access-token --scope https://ossrdbms-aad.database.windows.net/.default --query accessToken -o tsv) psql -XAtc "select 1"
		PGPASSWORD=$(azd auth token --output json --scope https://ossrdbms-aad.database.windows.net/.default | sed -n 's/.*"token": "\(.*\)".*/\1/p') psql -XAtc "select 2"`)
	if err != nil || out != "1\n2" {
		t.Errorf("az --scope / azd: %v, stdout %q\n%s", err, out, errOut)
	}

	// The workload identity, as on AKS: the administrator creates the
	// app's role; then, with only the webhook's variables (and env.sh's PG*),
	// a real WorkloadIdentityCredential gets a token from the emulator's
	// authority and pgentra logs in with azure_credential=workload_identity.
	out, errOut, err = sh(`export PGUSER=$PGENTRA_EMULATOR_ADMIN ` + adminToken + `
		psql -XAtc "select * from pgaadauth_create_principal('api', false, false)"`)
	if err != nil || out != `Created role for "api"` {
		t.Fatalf("create principal api: %v, stdout %q\n%s", err, out, errOut)
	}
	wlEnv, err := os.ReadFile(filepath.Join(dir, "workload-api.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AZURE_CLIENT_ID='" + byName["api"].ClientID + "'", "AZURE_TENANT_ID=", "AZURE_FEDERATED_TOKEN_FILE='" + filepath.Join(dir, "workload-api.token") + "'",
		"AZURE_AUTHORITY_HOST='https://127.0.0.1:", "SSL_CERT_FILE='" + filepath.Join(dir, "authority-ca.pem") + "'"} {
		if !strings.Contains(string(wlEnv), "\nexport "+k) {
			t.Errorf("workload-api.env lacks export %s:\n%s", k, wlEnv)
		}
	}
	out, errOut, err = sh(`source "$DIR/workload-api.env"; PGUSER=api "$TESTBIN" -test.run=NONE`, "DIR="+dir, "TESTBIN="+os.Args[0], childVar+"=workload")
	if err != nil || !strings.Contains(out, "credential: token for appid "+byName["api"].ClientID) || !strings.Contains(out, "pgentra: current_user api") {
		t.Errorf("workload identity: %v, stdout %q\n%s", err, out, errOut)
	}
	// SSL_CERT_FILE is what makes the authority trusted.
	out, errOut, err = sh(`source "$DIR/workload-api.env"; unset SSL_CERT_FILE; PGUSER=api "$TESTBIN" -test.run=NONE`, "DIR="+dir, "TESTBIN="+os.Args[0], childVar+"=workload")
	if err == nil || !strings.Contains(errOut, "certificate signed by unknown authority") {
		t.Errorf("workload identity without SSL_CERT_FILE: %v, stdout %q, stderr %q; want a certificate error", err, out, errOut)
	}

	// -token-lifetime reaches az (minted at the call) and IMDS.
	out, errOut, err = sh(`az account get-access-token --resource-type oss-rdbms --query expires_on -o tsv`)
	var exp int64
	if _, serr := fmt.Sscan(out, &exp); err != nil || serr != nil {
		t.Errorf("az expires_on: %v %v, stdout %q\n%s", err, serr, out, errOut)
	} else if d := time.Until(time.Unix(exp, 0)); d < 6*time.Minute || d > 7*time.Minute+time.Second {
		t.Errorf("az token expires in %s, want ~7m (-token-lifetime 7m)", d)
	}

	// Stop: SIGTERM, exit 0, nothing left.
	stopped = true
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("still running 60 s after SIGTERM:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "emulator: stopped") {
		t.Errorf("no 'stopped' line:\n%s", stderr.String())
	}
	for _, d := range []string{dir, clusterDir[1]} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", d, err)
		}
	}
	if pids := processesUsing(clusterDir[1]); len(pids) > 0 {
		t.Errorf("processes of the run's PostgreSQL still alive: %v", pids)
	}
}

// imdsToken makes the seed's IMDS request for the identity clientID — with
// curl when present, else Go's HTTP client — and returns the access token.
func imdsToken(t *testing.T, sh func(string, ...string) (string, string, error), curl, clientID string) string {
	t.Helper()
	q := url.Values{"api-version": {"2018-02-01"}, "resource": {"https://ossrdbms-aad.database.windows.net"}, "client_id": {clientID}}
	var body []byte
	if curl != "" {
		out, errOut, err := sh(`curl -sS -f -H Metadata:true "$PGENTRA_EMULATOR_IMDS/metadata/identity/oauth2/token?$QUERY"`, "QUERY="+q.Encode())
		if err != nil {
			t.Fatalf("curl IMDS: %v\n%s", err, errOut)
		}
		body = []byte(out)
	} else {
		base, _, err := sh(`printf %s "$PGENTRA_EMULATOR_IMDS"`)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/metadata/identity/oauth2/token?"+q.Encode(), nil)
		req.Header.Set("Metadata", "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("IMDS: %v", err)
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
	}
	var res struct {
		AccessToken string `json:"access_token"`
		ClientID    string `json:"client_id"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.AccessToken == "" || res.ClientID != clientID {
		t.Fatalf("IMDS answer (%v): client_id %q, token present %v", err, res.ClientID, res.AccessToken != "")
	}
	return res.AccessToken
}

// cleanEnv is this process's environment without the variables env.sh
// sets or the Azure credentials read, so only env.sh speaks.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "IDENTITY_") || strings.HasPrefix(k, "MSI_") || k == "IMDS_ENDPOINT" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// processesUsing returns the pids whose command line mentions dir (the
// postmaster runs with -D dir/data).
func processesUsing(dir string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
