//lint:file-ignore ST1005 these errors reproduce the Azure CLI's and Entra's own texts verbatim (capitals and full stops included): clients and tests match them

package entra

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
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

// ARMResource is the resource `az account get-access-token` asks for when
// given none: the public cloud's active_directory_resource_id.
const ARMResource = "https://management.core.windows.net/"

// azResourceTypes are az's --resource-type choices and the public cloud's
// endpoints they stand for (`az cloud show`).
var azResourceTypes = map[string]string{
	"aad-graph": "https://graph.windows.net/",
	"arm":       ARMResource,
	"batch":     "https://batch.core.windows.net/",
	"data-lake": "https://datalake.azure.net/",
	"media":     "https://rest.media.azure.net",
	"ms-graph":  "https://graph.microsoft.com/",
	"oss-rdbms": DatabaseAudience,
}

// liveResource resolves a resource (or a scope's resource) the live CLIs
// have tokens for to its canonical spelling: cliResources, az's resource
// types and ARM's other name. ok is false for any other resource.
func liveResource(resource string) (string, bool) {
	want := strings.TrimRight(strings.TrimSpace(resource), "/")
	if want == "" {
		return "", false
	}
	known := append([]string(nil), cliResources...)
	for _, r := range azResourceTypes {
		known = append(known, r)
	}
	for _, r := range known {
		if strings.EqualFold(strings.TrimRight(r, "/"), want) {
			return r, true
		}
	}
	return "", false
}

// unknownResource is Entra's answer for a resource it has no service
// principal for.
func unknownResource(t *Tenant, resource string) error {
	return fmt.Errorf("AADSTS500011: The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", resource, t.ID())
}

// azHelp is what the live az prints for -h.
const azHelp = `az of the pgentra emulator (offline; signed in as %s, tenant %s).
Supported:
  az account get-access-token [--resource R | --resource-type T | --scope S...] [--tenant T | --subscription S]
  az account show | az account list | az login | az ad signed-in-user show
Global: --query FIELD[.FIELD...], -o json|jsonc|tsv|none, --only-show-errors, --verbose, --debug
`

// RunAZ runs one `az` command line (args without "az") for the user p
// signed in to the CLI, printing what az prints, and returns az's exit
// status (0; 1 for errors; 2 for bad arguments, errors on stderr as
// "ERROR: …"). Tokens are minted at the call with the tenant's current clock
// and lifetime. It takes what people type:
//
//	az account get-access-token --resource-type oss-rdbms --query accessToken -o tsv
//	az account get-access-token --resource https://ossrdbms-aad.database.windows.net
//	az account get-access-token --scope https://ossrdbms-aad.database.windows.net/.default -o json
//	az account get-access-token -o json --resource R --tenant T   (azidentity's AzureCLICredential)
//
// and `account show`, `account list`, `login` (already signed in) and
// `ad signed-in-user show`, with --query (a field or dotted path) and
// -o json|jsonc|tsv|none.
func RunAZ(t *Tenant, p Principal, args []string, stdout, stderr io.Writer) int {
	err := runAZ(t, p, args, stdout, stderr)
	if err == nil {
		return 0
	}
	code := 1
	var ue *cliUsageError
	if errors.As(err, &ue) {
		code = ue.code
	}
	fmt.Fprintf(stderr, "ERROR: %s\n", err)
	return code
}

func runAZ(t *Tenant, p Principal, args []string, stdout, stderr io.Writer) error {
	if _, ok := t.ByObjectID(p.ObjectID); !ok || p.Kind != User {
		return fmt.Errorf("the emulator's az is signed in as %q, which is not a user of tenant %s", p.Name, t.ID())
	}
	var words []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		words, args = append(words, args[0]), args[1:]
	}
	cmd := strings.Join(words, " ")
	var (
		resource, resourceType, tenant, subscription, query string
		scopes                                              []string
		output                                              = "json"
		tokenFlags                                          []string
	)
	for i := 0; i < len(args); i++ {
		name, val, hasVal := splitFlag(args[i])
		value := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 < len(args) {
				i++
				return args[i], nil
			}
			return "", &cliUsageError{code: 2, msg: fmt.Sprintf("argument %s: expected one argument", name)}
		}
		var err error
		switch name {
		case "--resource":
			resource, err = value()
			tokenFlags = append(tokenFlags, name)
		case "--resource-type":
			resourceType, err = value()
			tokenFlags = append(tokenFlags, name)
		case "--scope", "--scopes":
			if hasVal {
				scopes = append(scopes, val)
			}
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				scopes = append(scopes, args[i])
			}
			if len(scopes) == 0 {
				err = &cliUsageError{code: 2, msg: "argument --scope: expected at least one argument"}
			}
			tokenFlags = append(tokenFlags, name)
		case "--tenant", "-t":
			tenant, err = value()
			tokenFlags = append(tokenFlags, name)
		case "--subscription", "-s":
			subscription, err = value()
		case "--query":
			query, err = value()
		case "--output", "-o":
			output, err = value()
		case "--only-show-errors", "--verbose", "--debug":
		case "-h", "--help":
			fmt.Fprintf(stdout, azHelp, p.UPN, t.ID())
			return nil
		default:
			err = &cliUsageError{code: 2, msg: "unrecognized arguments: " + args[i]}
		}
		if err != nil {
			return err
		}
	}
	if cmd != "account get-access-token" && len(tokenFlags) > 0 {
		return &cliUsageError{code: 2, msg: "unrecognized arguments: " + tokenFlags[0]}
	}
	if subscription != "" && !strings.EqualFold(subscription, t.SubscriptionID()) && subscription != azSubscriptionName {
		return fmt.Errorf("Subscription '%s' not found. Check the spelling and casing and try again.", subscription)
	}
	account := cliObject{
		{"environmentName", "AzureCloud"},
		{"homeTenantId", t.ID()},
		{"id", t.SubscriptionID()},
		{"isDefault", true},
		{"managedByTenants", []any{}},
		{"name", azSubscriptionName},
		{"state", "Enabled"},
		{"tenantId", t.ID()},
		{"user", cliObject{{"name", p.UPN}, {"type", "user"}}},
	}
	var result any
	switch cmd {
	case "account get-access-token":
		tok, err := azToken(t, p, resource, resourceType, scopes, tenant, subscription)
		if err != nil {
			return err
		}
		result = tok
	case "account show":
		result = account
	case "account list":
		result = []any{account}
	case "login":
		fmt.Fprintf(stderr, "The emulator's az is already signed in as %s (tenant %s).\n", p.UPN, t.ID())
		result = []any{account}
	case "ad signed-in-user show":
		result = cliObject{
			{"businessPhones", []any{}},
			{"displayName", p.Name},
			{"id", p.ObjectID},
			{"mail", nil},
			{"userPrincipalName", p.UPN},
		}
	case "":
		fmt.Fprintf(stdout, azHelp, p.UPN, t.ID())
		return nil
	default:
		return &cliUsageError{code: 2, msg: fmt.Sprintf("'az %s' is not supported by the emulator's az (see az -h)", cmd)}
	}
	v, err := cliQuery(result, query)
	if err != nil {
		return err
	}
	return cliOutput(stdout, v, output)
}

// azSubscriptionName is the display name of the emulator's one subscription.
const azSubscriptionName = "pgentra emulator"

// azToken is `az account get-access-token`: its checks in az's order and
// its output object.
func azToken(t *Tenant, p Principal, resource, resourceType string, scopes []string, tenant, subscription string) (cliObject, error) {
	if resource == "" && resourceType != "" {
		r, ok := azResourceTypes[resourceType]
		if !ok {
			choices := make([]string, 0, len(azResourceTypes))
			for k := range azResourceTypes {
				choices = append(choices, "'"+k+"'")
			}
			sort.Strings(choices)
			return nil, &cliUsageError{code: 2, msg: fmt.Sprintf("argument --resource-type: invalid choice: '%s' (choose from %s)", resourceType, strings.Join(choices, ", "))}
		}
		resource = r
	}
	if resource != "" && len(scopes) > 0 {
		return nil, errors.New("resource and scopes can't be provided at the same time.")
	}
	if tenant != "" && subscription != "" {
		return nil, errors.New("Please specify only one of subscription and tenant, not both")
	}
	if tenant != "" && !strings.EqualFold(tenant, t.ID()) {
		return nil, fmt.Errorf("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)
	}
	want := resource
	if len(scopes) > 0 {
		want = ""
		for _, s := range scopes {
			r := strings.TrimSuffix(strings.TrimSuffix(s, "/.default"), "/")
			if want == "" {
				want = r
			} else if !strings.EqualFold(strings.TrimRight(want, "/"), r) {
				return nil, fmt.Errorf("AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", strings.Join(scopes, " "))
			}
		}
	}
	if want == "" {
		want = ARMResource
	}
	res, ok := liveResource(want)
	if !ok {
		return nil, unknownResource(t, want)
	}
	tok, exp, err := t.Mint(p, res, 0)
	if err != nil {
		return nil, err
	}
	out := cliObject{
		{"accessToken", tok},
		{"expiresOn", exp.Local().Format("2006-01-02 15:04:05.000000")},
		{"expires_on", exp.Unix()},
	}
	if tenant == "" {
		out = append(out, cliField{"subscription", t.SubscriptionID()})
	}
	return append(out, cliField{"tenant", t.ID()}, cliField{"tokenType", "Bearer"}), nil
}
