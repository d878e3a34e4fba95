package entra

import (
	"encoding/json"
	"time"
)

// FakeAZ is an `az` executable that answers
// `az account get-access-token -o json --resource R [--tenant T]` with a
// token the tenant minted for one principal, the way azidentity's
// AzureCLICredential runs it (`/bin/sh -c "az account …"` from /bin, so az
// is found through PATH). Tokens are minted ahead into files; each run is
// appended to a log for [FakeAZ.Runs].
type FakeAZ struct {
	f *cliFake
}

// InstallFakeAZ writes the az script and token files into dir (use
// t.TempDir(); prepend dir to PATH with t.Setenv) for principal p, usually
// a User.
func InstallFakeAZ(dir string, t *Tenant, p Principal) (*FakeAZ, error) {
	f, err := installCLIFake(dir, t, p, azDialect{})
	if err != nil {
		return nil, err
	}
	return &FakeAZ{f: f}, nil
}

// Path returns the path of the az executable.
func (a *FakeAZ) Path() string { return a.f.path() }

// Refresh mints new tokens (current tenant clock and lifetime) for every
// resource; later runs print them.
func (a *FakeAZ) Refresh() error { return a.f.refresh() }

// SetDelay makes every later run take at least d (az usually takes hundreds
// of milliseconds).
func (a *FakeAZ) SetDelay(d time.Duration) error { return a.f.setDelay(d) }

// SetError makes later runs fail with exit status 1 and msg on stderr
// (e.g. "ERROR: Please run 'az login' to setup account."); "" restores success.
func (a *FakeAZ) SetError(msg string) error { return a.f.setError(msg) }

// Runs returns how many times az has been run.
func (a *FakeAZ) Runs() int { return len(a.f.args()) }

// Args returns the arguments of every run so far, one string per run.
func (a *FakeAZ) Args() []string { return a.f.args() }

// azDialect is how az takes arguments and prints tokens and errors.
type azDialect struct{}

func (azDialect) name() string { return "az" }

func (azDialect) render(t *Tenant, tok string, exp time.Time) ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"accessToken":  tok,
		"expiresOn":    exp.Local().Format("2006-01-02 15:04:05.000000"),
		"expires_on":   exp.Unix(),
		"subscription": t.SubscriptionID(),
		"tenant":       t.ID(),
		"tokenType":    "Bearer",
	}, "", "  ")
}

func (azDialect) prelude() string {
	return "die() { printf 'ERROR: %s\\n' \"$1\" >&2; exit 1; }\n"
}

func (azDialect) failure(_ *Tenant, msg string) (string, error) {
	return "printf '%s\\n' " + shQuote(msg) + " >&2\nexit 1\n", nil
}

func (azDialect) args() string {
	return `if [ "$1 $2" != "account get-access-token" ]; then
  echo "ERROR: 'az $*' is not supported by the fake az" >&2; exit 2
fi
target=""; tenant=""
while [ $# -gt 0 ]; do
  case "$1" in
    --resource) target="$2"; shift ;;
    --tenant) tenant="$2"; shift ;;
  esac
  shift
done
`
}

// patterns accepts the resource with and without a trailing slash.
func (azDialect) patterns(resource string) []string { return []string{resource, resource + "/"} }
