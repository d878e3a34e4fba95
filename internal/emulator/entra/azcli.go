package entra

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// azResources are the resources the fake az has tokens for: the database
// audiences of every cloud (DESIGN.md §6) and ARM.
var azResources = []string{
	DatabaseAudience,
	"https://ossrdbms-aad.database.chinacloudapi.cn",
	"https://ossrdbms-aad.database.usgovcloudapi.net",
	"https://token.postgres.cosmos.azure.com",
	"https://management.azure.com",
}

// FakeAZ is an `az` executable that answers
// `az account get-access-token -o json --resource R [--tenant T]` with a
// token the tenant minted for one principal, the way azidentity's
// AzureCLICredential runs it (`/bin/sh -c "az account …"` from /bin, so az
// is found through PATH). Tokens are minted ahead into files; each run is
// appended to a log for [FakeAZ.Runs].
type FakeAZ struct {
	dir    string
	tenant *Tenant
	p      Principal

	mu    sync.Mutex
	delay time.Duration
	fail  string
}

// InstallFakeAZ writes the az script and token files into dir (use
// t.TempDir(); prepend dir to PATH with t.Setenv) for principal p, usually
// a User.
func InstallFakeAZ(dir string, t *Tenant, p Principal) (*FakeAZ, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("entra: fake az dir: %w", err)
	}
	if _, ok := t.ByObjectID(p.ObjectID); !ok || p.ObjectID == "" {
		return nil, fmt.Errorf("entra: principal %q is not in tenant %s", p.Name, t.ID())
	}
	f := &FakeAZ{dir: abs, tenant: t, p: p}
	if err := f.Refresh(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the path of the az executable.
func (f *FakeAZ) Path() string { return filepath.Join(f.dir, "az") }

// Refresh mints new tokens (current tenant clock and lifetime) for every
// resource; later runs print them.
func (f *FakeAZ) Refresh() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, res := range azResources {
		tok, exp, err := f.tenant.Mint(f.p, res, 0)
		if err != nil {
			return err
		}
		out, err := json.MarshalIndent(map[string]any{
			"accessToken":  tok,
			"expiresOn":    exp.Local().Format("2006-01-02 15:04:05.000000"),
			"expires_on":   exp.Unix(),
			"subscription": f.tenant.SubscriptionID(),
			"tenant":       f.tenant.ID(),
			"tokenType":    "Bearer",
		}, "", "  ")
		if err != nil {
			return fmt.Errorf("entra: encoding az output: %w", err)
		}
		if err := writeFileAtomic(f.tokenFile(i), append(out, '\n'), 0o600); err != nil {
			return err
		}
	}
	return f.writeScriptLocked()
}

// SetDelay makes every later run take at least d (az usually takes hundreds
// of milliseconds).
func (f *FakeAZ) SetDelay(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
	return f.writeScriptLocked()
}

// SetError makes later runs fail with exit status 1 and msg on stderr
// (e.g. "ERROR: Please run 'az login' to setup account."); "" restores success.
func (f *FakeAZ) SetError(msg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = msg
	return f.writeScriptLocked()
}

// Runs returns how many times az has been run.
func (f *FakeAZ) Runs() int { return len(f.Args()) }

// Args returns the arguments of every run so far, one string per run.
func (f *FakeAZ) Args() []string {
	b, err := os.ReadFile(filepath.Join(f.dir, "az.runs"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func (f *FakeAZ) tokenFile(i int) string {
	return filepath.Join(f.dir, fmt.Sprintf("az.token.%d.json", i))
}

func (f *FakeAZ) writeScriptLocked() error {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# fake az written by pgentra's entra emulator\n")
	fmt.Fprintf(&b, "printf '%%s\\n' \"$*\" >> %s\n", shQuote(filepath.Join(f.dir, "az.runs")))
	if f.delay > 0 {
		fmt.Fprintf(&b, "sleep %.3f\n", f.delay.Seconds())
	}
	if f.fail != "" {
		fmt.Fprintf(&b, "printf '%%s\\n' %s >&2\nexit 1\n", shQuote(f.fail))
	}
	b.WriteString(`if [ "$1 $2" != "account get-access-token" ]; then
  echo "ERROR: 'az $*' is not supported by the fake az" >&2; exit 2
fi
resource=""; tenant=""
while [ $# -gt 0 ]; do
  case "$1" in
    --resource) resource="$2"; shift ;;
    --tenant) tenant="$2"; shift ;;
  esac
  shift
done
`)
	fmt.Fprintf(&b, "if [ -n \"$tenant\" ] && [ \"$tenant\" != %s ]; then\n", shQuote(f.tenant.ID()))
	b.WriteString("  echo \"ERROR: AADSTS90002: Tenant '$tenant' not found.\" >&2; exit 1\nfi\n")
	b.WriteString("case \"$resource\" in\n")
	for i, res := range azResources {
		fmt.Fprintf(&b, "  %s|%s) exec cat %s ;;\n", shQuote(res), shQuote(res+"/"), shQuote(f.tokenFile(i)))
	}
	fmt.Fprintf(&b, "  *) echo \"ERROR: AADSTS500011: The resource principal named $resource was not found in the tenant named %s.\" >&2; exit 1 ;;\nesac\n", f.tenant.ID())
	return writeFileAtomic(f.Path(), []byte(b.String()), 0o700)
}

// shQuote quotes s for /bin/sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeFileAtomic replaces path, so a concurrently running script never
// reads half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("entra: writing %s: %w", filepath.Base(path), err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), perm)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("entra: writing %s: %w", filepath.Base(path), werr)
	}
	return nil
}
