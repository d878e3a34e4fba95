package entra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// runLive runs RunAZ or RunAZD and returns its exit status and output.
func runLive(run func(*Tenant, Principal, []string, *bytes.Buffer, *bytes.Buffer) int, tn *Tenant, p Principal, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(tn, p, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func az(tn *Tenant, p Principal, args []string, out, errOut *bytes.Buffer) int {
	return RunAZ(tn, p, args, out, errOut)
}

func azd(tn *Tenant, p Principal, args []string, out, errOut *bytes.Buffer) int {
	return RunAZD(tn, p, args, out, errOut)
}

// TestRunAZTokenForms runs the command lines people type for a database
// token and checks each prints a token the tenant signed, for the database
// audience, minted at the call.
func TestRunAZTokenForms(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("admin@contoso.example"))(t)
	for _, args := range []string{
		"account get-access-token --resource-type oss-rdbms --query accessToken -o tsv",
		"account get-access-token --resource https://ossrdbms-aad.database.windows.net --query accessToken --output tsv",
		"account get-access-token --resource=https://ossrdbms-aad.database.windows.net/ --query \"accessToken\" -o tsv",
		"account get-access-token --scope https://ossrdbms-aad.database.windows.net/.default --query accessToken -o tsv",
		"account get-access-token --resource-type oss-rdbms --tenant " + tn.ID() + " --query accessToken -o tsv",
	} {
		before := tn.Minted(u, DatabaseAudience)
		code, out, errOut := runLive(az, tn, u, strings.Fields(args)...)
		if code != 0 {
			t.Fatalf("az %s: exit %d, stderr %q", args, code, errOut)
		}
		tok := strings.TrimSuffix(out, "\n")
		if strings.ContainsAny(tok, "\n\t {") {
			t.Fatalf("az %s: tsv output is not one token: %q", args, out)
		}
		c := parse(t, tn, tok)
		if c["aud"] != DatabaseAudience || c["upn"] != u.UPN {
			t.Errorf("az %s: aud %v upn %v", args, c["aud"], c["upn"])
		}
		if got := tn.Minted(u, DatabaseAudience); got != before+1 {
			t.Errorf("az %s: minted %d tokens, want 1 per call", args, got-before)
		}
	}
}

// TestRunAZJSON checks -o json (the default) prints az's object, and that
// --tenant drops the subscription as az does.
func TestRunAZJSON(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("admin@contoso.example"))(t)
	for _, tc := range []struct {
		args    []string
		wantSub bool
	}{
		{[]string{"account", "get-access-token", "--resource-type", "oss-rdbms", "-o", "json"}, true},
		{[]string{"account", "get-access-token", "-o", "json", "--resource", DatabaseAudience, "--tenant", tn.ID()}, false},
	} {
		code, out, errOut := runLive(az, tn, u, tc.args...)
		if code != 0 {
			t.Fatalf("%q: exit %d, %s", tc.args, code, errOut)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%q: output is not JSON: %v", tc.args, err)
		}
		tok, _ := m["accessToken"].(string)
		c := parse(t, tn, tok)
		exp, _ := c.GetExpirationTime()
		if m["expires_on"] != float64(exp.Unix()) || m["tenant"] != tn.ID() || m["tokenType"] != "Bearer" {
			t.Errorf("%q: expires_on %v (token exp %v), tenant %v, tokenType %v", tc.args, m["expires_on"], exp.Unix(), m["tenant"], m["tokenType"])
		}
		if want := exp.Local().Format("2006-01-02 15:04:05.000000"); m["expiresOn"] != want {
			t.Errorf("%q: expiresOn %v, want %v", tc.args, m["expiresOn"], want)
		}
		if _, has := m["subscription"]; has != tc.wantSub {
			t.Errorf("%q: subscription present = %v, want %v", tc.args, has, tc.wantSub)
		}
	}
}

// TestRunAZMintsAtCall proves a token is minted per call with the tenant's
// clock at that moment, not ahead of time.
func TestRunAZMintsAtCall(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("admin@contoso.example"))(t)
	args := []string{"account", "get-access-token", "--resource-type", "oss-rdbms", "--query", "expires_on", "-o", "tsv"}
	_, first, _ := runLive(az, tn, u, args...)
	tn.SetSkew(3 * time.Hour)
	_, later, _ := runLive(az, tn, u, args...)
	var a, b int64
	if _, err := fmtSscan(first, &a); err != nil {
		t.Fatalf("expires_on %q: %v", first, err)
	}
	if _, err := fmtSscan(later, &b); err != nil {
		t.Fatalf("expires_on %q: %v", later, err)
	}
	if d := time.Duration(b-a) * time.Second; d < 3*time.Hour-time.Minute || d > 3*time.Hour+time.Minute {
		t.Errorf("a call 3 h later (tenant clock) expires %s after the first, want ~3h", d)
	}
}

// TestRunAZOtherCommands checks account show / ad signed-in-user show with
// a dotted --query, as the set-up docs use them.
func TestRunAZOtherCommands(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("admin@contoso.example"))(t)
	for _, tc := range []struct{ args, want string }{
		{"account show --query user.name -o tsv", u.UPN + "\n"},
		{"account show --query tenantId -o tsv", tn.ID() + "\n"},
		{"account show --query isDefault -o tsv", "True\n"},
		{"ad signed-in-user show --query id -o tsv", u.ObjectID + "\n"},
		{"ad signed-in-user show --query id", "\"" + u.ObjectID + "\"\n"},
		{"account get-access-token --resource-type oss-rdbms --query nosuchfield -o tsv", ""},
	} {
		code, out, errOut := runLive(az, tn, u, strings.Fields(tc.args)...)
		if code != 0 || out != tc.want {
			t.Errorf("az %s: exit %d, stdout %q, stderr %q; want 0, %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestRunAZErrors checks az's refusals: exit status and a message naming
// what was wrong, never a token.
func TestRunAZErrors(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("admin@contoso.example"))(t)
	for _, tc := range []struct {
		args string
		code int
		want string
	}{
		{"account get-access-token --resource-type nosuch", 2, "invalid choice: 'nosuch'"},
		{"account get-access-token --resource " + DatabaseAudience + " --scope " + DatabaseScope, 1, "resource and scopes can't be provided at the same time."},
		{"account get-access-token --tenant 00000000-0000-0000-0000-000000000000", 1, "AADSTS90002"},
		{"account get-access-token --tenant " + tn.ID() + " --subscription " + tn.SubscriptionID(), 1, "only one of subscription and tenant"},
		{"account get-access-token --resource https://nosuch.example", 1, "AADSTS500011: The resource principal named https://nosuch.example was not found"},
		{"account get-access-token --scope " + DatabaseScope + " " + ManagementScope, 1, "AADSTS28000"},
		{"account get-access-token --resource", 2, "argument --resource: expected one argument"},
		{"account get-access-token --bogus", 2, "unrecognized arguments: --bogus"},
		{"account show --resource-type oss-rdbms", 2, "unrecognized arguments: --resource-type"},
		{"account get-access-token -o yaml", 2, "invalid choice: \"yaml\""},
		{"account get-access-token --query [0].x", 1, "--query with a field name"},
		{"group list", 2, "'az group list' is not supported"},
	} {
		code, out, errOut := runLive(az, tn, u, strings.Fields(tc.args)...)
		if code != tc.code || !strings.HasPrefix(errOut, "ERROR: ") || !strings.Contains(errOut, tc.want) {
			t.Errorf("az %s: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
		if strings.Contains(out+errOut, "eyJ") {
			t.Errorf("az %s: printed a token on failure", tc.args)
		}
	}
}

// TestRunAZD checks the live azd: azidentity's command line, the default
// (ARM) scope and its errors in azd's JSON console format.
func TestRunAZD(t *testing.T) {
	tn := newTenant(t)
	u := must(tn.AddUser("admin@contoso.example"))(t)
	for _, tc := range []struct {
		args, aud string
	}{
		{"auth token -o json --no-prompt --scope " + DatabaseScope + " --tenant-id " + tn.ID(), DatabaseAudience},
		{"auth token --output json", ManagementAudience},
	} {
		code, out, errOut := runLive(azd, tn, u, strings.Fields(tc.args)...)
		if code != 0 {
			t.Fatalf("azd %s: exit %d, %s", tc.args, code, errOut)
		}
		var res struct{ Token, ExpiresOn string }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("azd %s: %v in %q", tc.args, err, out)
		}
		c := parse(t, tn, res.Token)
		exp, _ := c.GetExpirationTime()
		if c["aud"] != tc.aud || res.ExpiresOn != exp.UTC().Format(time.RFC3339) {
			t.Errorf("azd %s: aud %v (want %v), expiresOn %q (token exp %v)", tc.args, c["aud"], tc.aud, res.ExpiresOn, exp)
		}
	}
	for _, tc := range []struct {
		args string
		code int
		want string
	}{
		{"auth token --scope " + DatabaseScope + " --scope " + ManagementScope, 1, `"message":"\nERROR: fetching token: AADSTS28000`},
		{"auth token --tenant-id 00000000-0000-0000-0000-000000000000", 1, "AADSTS90002"},
		{"auth token -o table", 1, "unsupported output format: table"},
		{"auth token --bogus", 1, "unknown flag: --bogus"},
		{"up", 2, "'azd up' is not supported"},
	} {
		code, out, errOut := runLive(azd, tn, u, strings.Fields(tc.args)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("azd %s: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

func fmtSscan(s string, v *int64) (int, error) { return fmt.Sscan(strings.TrimSpace(s), v) }
