package entra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// AZDNotLoggedIn is the error azd reports when no account is logged in
// (azd's auth.ErrNoCurrentUser). Pass it to [FakeAZD.SetError] to reproduce
// a developer machine where `azd auth login` was never run.
const AZDNotLoggedIn = "not logged in, run `azd auth login` to login"

// FakeAZD is an Azure Developer CLI (`azd`) executable that answers
// `azd auth token -o json --no-prompt --scope S [--tenant-id T]` with a
// token the tenant minted for one principal, the way azidentity's
// AzureDeveloperCLICredential runs it (`/bin/sh -c "azd auth token …"` from
// /bin, so azd is found through PATH). It prints azd's JSON,
// {"token": …, "expiresOn": "2006-01-02T15:04:05Z"}, and reports errors on
// stderr as azd's JSON console messages, exit status 1. Without --scope it
// answers for ARM, as azd does. Tokens are minted ahead into files; each
// run is appended to a log for [FakeAZD.Runs]. It can share a dir with a
// [FakeAZ].
type FakeAZD struct {
	f *cliFake
}

// InstallFakeAZD writes the azd script and token files into dir (use
// t.TempDir(); prepend dir to PATH with t.Setenv) for principal p, usually
// a User.
func InstallFakeAZD(dir string, t *Tenant, p Principal) (*FakeAZD, error) {
	f, err := installCLIFake(dir, t, p, azdDialect{})
	if err != nil {
		return nil, err
	}
	return &FakeAZD{f: f}, nil
}

// Path returns the path of the azd executable.
func (a *FakeAZD) Path() string { return a.f.path() }

// Refresh mints new tokens (current tenant clock and lifetime) for every
// resource; later runs print them.
func (a *FakeAZD) Refresh() error { return a.f.refresh() }

// SetDelay makes every later run take at least d.
func (a *FakeAZD) SetDelay(d time.Duration) error { return a.f.setDelay(d) }

// SetError makes later runs fail with exit status 1 and msg on stderr the
// way azd reports an error under -o json: one console message line,
// {"type":"consoleMessage",…,"data":{"message":"\nERROR: msg\n"}}, from
// which azidentity extracts "ERROR: msg". (That is azd's format before
// 1.23.7; later versions add a {"error": msg, …} line, which azidentity
// reads too.) Use [AZDNotLoggedIn] for a logged-out azd; "" restores
// success.
func (a *FakeAZD) SetError(msg string) error { return a.f.setError(msg) }

// Runs returns how many times azd has been run.
func (a *FakeAZD) Runs() int { return len(a.f.args()) }

// Args returns the arguments of every run so far, one string per run.
func (a *FakeAZD) Args() []string { return a.f.args() }

// azdDialect is how azd takes arguments and prints tokens and errors.
type azdDialect struct{}

func (azdDialect) name() string { return "azd" }

// render prints azd's contracts.AuthTokenResult: expiresOn is RFC 3339 in
// UTC, which is the only form azidentity parses.
func (azdDialect) render(_ *Tenant, tok string, exp time.Time) ([]byte, error) {
	return json.MarshalIndent(struct {
		Token     string `json:"token"`
		ExpiresOn string `json:"expiresOn"`
	}{tok, exp.UTC().Format(time.RFC3339)}, "", "  ")
}

// prelude's die reports a token-service error as azd does when the token
// request fails (`fetching token: …`), JSON-escaping the message.
func (azdDialect) prelude() string {
	return `die() {
  m=$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
  printf '{"type":"consoleMessage","timestamp":"%s","data":{"message":"\\nERROR: fetching token: %s\\n"}}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$m" >&2
  exit 1
}
`
}

func (azdDialect) failure(t *Tenant, msg string) (string, error) {
	line, err := azdConsoleLine(t.Now(), "\nERROR: "+msg+"\n")
	if err != nil {
		return "", err
	}
	return "printf '%s\\n' " + shQuote(line) + " >&2\nexit 1\n", nil
}

func (azdDialect) args() string {
	return `if [ "$1 $2" != "auth token" ]; then
  echo "ERROR: 'azd $*' is not supported by the fake azd" >&2; exit 2
fi
shift 2
target=""; tenant=""; extra=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scope)
      if [ -z "$target" ]; then target="$2"; elif [ "$2" != "$target" ]; then extra="$extra $2"; fi
      shift ;;
    --tenant-id) tenant="$2"; shift ;;
    -o|--output)
      if [ "$2" != json ]; then echo "ERROR: unsupported output format: $2" >&2; exit 1; fi
      shift ;;
    --no-prompt) ;;
    --claims) shift ;;
    *) echo "Error: unknown flag: $1" >&2; exit 1 ;;
  esac
  shift
done
if [ -n "$extra" ]; then
  die "AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than one resource. Scope $target$extra is not valid."
fi
if [ -z "$target" ]; then target='https://management.azure.com//.default'; fi
`
}

// patterns accepts the resource's .default scope, also in the double-slash
// form azd uses for ARM (https://management.azure.com//.default).
func (azdDialect) patterns(resource string) []string {
	return []string{resource + "/.default", resource + "//.default"}
}

// azdConsoleMessage is one line of azd's stderr under -o json.
type azdConsoleMessage struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		Message string `json:"message"`
	} `json:"data"`
}

// azdConsoleLine renders msg as a line of azd's stderr under -o json.
func azdConsoleLine(at time.Time, msg string) (string, error) {
	m := azdConsoleMessage{Type: "consoleMessage", Timestamp: at.UTC().Format(time.RFC3339Nano)}
	m.Data.Message = msg
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// RunAZD runs one `azd` command line (args without "azd") for the user p
// signed in to azd and returns azd's exit status. It answers
// `azd auth token [--scope S]... [--tenant-id T] [-o json] [--no-prompt]`
// with azd's JSON ({"token","expiresOn"}), minting the token at the call;
// without --scope it answers for ARM, as azd does. Token-service errors go
// to stderr as azd's JSON console message ("ERROR: fetching token: …"),
// exit status 1, as [FakeAZD] prints them.
func RunAZD(t *Tenant, p Principal, args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "auth" || args[1] != "token" {
		fmt.Fprintf(stderr, "ERROR: 'azd %s' is not supported by the emulator's azd (it answers: azd auth token [--scope S] [--tenant-id T] -o json)\n", strings.Join(args, " "))
		return 2
	}
	var scopes []string
	var tenant string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		name, val, hasVal := splitFlag(rest[i])
		value := func() (string, bool) {
			if hasVal {
				return val, true
			}
			if i+1 < len(rest) {
				i++
				return rest[i], true
			}
			return "", false
		}
		switch name {
		case "--scope", "--tenant-id", "-o", "--output", "--claims", "--cwd", "-C", "-e", "--environment":
			v, ok := value()
			if !ok {
				fmt.Fprintf(stderr, "Error: flag needs an argument: %s\n", name)
				return 1
			}
			switch name {
			case "--scope":
				scopes = append(scopes, v)
			case "--tenant-id":
				tenant = v
			case "-o", "--output":
				if v != "json" {
					fmt.Fprintf(stderr, "ERROR: unsupported output format: %s\n", v)
					return 1
				}
			}
		case "--no-prompt", "--debug":
		default:
			fmt.Fprintf(stderr, "Error: unknown flag: %s\n", rest[i])
			return 1
		}
	}
	die := func(msg string) int {
		line, err := azdConsoleLine(t.Now(), "\nERROR: fetching token: "+msg+"\n")
		if err != nil {
			line = "ERROR: fetching token: " + msg
		}
		fmt.Fprintln(stderr, line)
		return 1
	}
	if _, ok := t.ByObjectID(p.ObjectID); !ok || p.Kind != User {
		return die(fmt.Sprintf("the emulator's azd is signed in as %q, which is not a user of tenant %s", p.Name, t.ID()))
	}
	if tenant != "" && !strings.EqualFold(tenant, t.ID()) {
		return die(fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", tenant))
	}
	if len(scopes) == 0 {
		scopes = []string{"https://management.azure.com//.default"}
	}
	var resource string
	for _, s := range scopes {
		r := strings.TrimRight(strings.TrimSuffix(s, "/.default"), "/")
		if resource == "" {
			resource = r
		} else if !strings.EqualFold(resource, r) {
			return die("AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than one resource. Scope " + strings.Join(scopes, " ") + " is not valid.")
		}
	}
	res, ok := liveResource(resource)
	if !ok {
		return die(unknownResource(t, resource).Error())
	}
	tok, exp, err := t.Mint(p, res, 0)
	if err != nil {
		return die(err.Error())
	}
	out, err := azdDialect{}.render(t, tok, exp)
	if err != nil {
		return die(err.Error())
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}
