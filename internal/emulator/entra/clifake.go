package entra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// cliResources are the resources the fake CLIs have tokens for: the
// database audiences of every cloud and ARM.
var cliResources = []string{
	DatabaseAudience,
	"https://ossrdbms-aad.database.chinacloudapi.cn",
	"https://ossrdbms-aad.database.usgovcloudapi.net",
	"https://token.postgres.cosmos.azure.com",
	"https://management.azure.com",
}

// cliFake is the machinery the fake az and azd share: a /bin/sh script
// named after the CLI in dir, token outputs minted ahead into one file per
// resource (so a run does no crypto and needs no Go), a run log, a delay and
// an injected failure. A cliDialect supplies what differs between the CLIs.
// Files are prefixed with the CLI's name, so both fakes can share a dir.
type cliFake struct {
	dir    string
	tenant *Tenant
	p      Principal
	d      cliDialect

	mu    sync.Mutex
	delay time.Duration
	fail  string
}

// cliDialect is one CLI's side of a cliFake.
type cliDialect interface {
	// name is the executable's name, e.g. "az".
	name() string
	// render returns the CLI's stdout for a token minted for a resource.
	render(t *Tenant, tok string, exp time.Time) ([]byte, error)
	// prelude returns shell code that defines die: `die MSG` reports a
	// token-service error MSG on stderr as the CLI does and exits 1.
	prelude() string
	// failure returns shell code that reports the injected failure msg on
	// stderr as the CLI does and exits 1.
	failure(t *Tenant, msg string) (string, error)
	// args returns shell code that checks the command line and sets
	// $target (what the case patterns match) and $tenant.
	args() string
	// patterns returns the values of $target that select resource's token.
	patterns(resource string) []string
}

// installCLIFake checks its arguments, mints the tokens and writes the
// script.
func installCLIFake(dir string, t *Tenant, p Principal, d cliDialect) (*cliFake, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("entra: fake %s dir: %w", d.name(), err)
	}
	if _, ok := t.ByObjectID(p.ObjectID); !ok || p.ObjectID == "" {
		return nil, fmt.Errorf("entra: principal %q is not in tenant %s", p.Name, t.ID())
	}
	f := &cliFake{dir: abs, tenant: t, p: p, d: d}
	if err := f.refresh(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *cliFake) path() string { return filepath.Join(f.dir, f.d.name()) }

func (f *cliFake) runLog() string { return filepath.Join(f.dir, f.d.name()+".runs") }

func (f *cliFake) tokenFile(i int) string {
	return filepath.Join(f.dir, fmt.Sprintf("%s.token.%d.json", f.d.name(), i))
}

// refresh mints new tokens (current tenant clock and lifetime) for every
// resource and rewrites the script.
func (f *cliFake) refresh() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, res := range cliResources {
		tok, exp, err := f.tenant.Mint(f.p, res, 0)
		if err != nil {
			return err
		}
		out, err := f.d.render(f.tenant, tok, exp)
		if err != nil {
			return fmt.Errorf("entra: encoding %s output: %w", f.d.name(), err)
		}
		if err := writeFileAtomic(f.tokenFile(i), append(out, '\n'), 0o600); err != nil {
			return err
		}
	}
	return f.writeScriptLocked()
}

func (f *cliFake) setDelay(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
	return f.writeScriptLocked()
}

func (f *cliFake) setError(msg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = msg
	return f.writeScriptLocked()
}

// args returns the arguments of every run so far, one string per run.
func (f *cliFake) args() []string {
	b, err := os.ReadFile(f.runLog())
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func (f *cliFake) writeScriptLocked() error {
	name := f.d.name()
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# fake %s written by pgentra's entra emulator\n", name)
	fmt.Fprintf(&b, "printf '%%s\\n' \"$*\" >> %s\n", shQuote(f.runLog()))
	if f.delay > 0 {
		fmt.Fprintf(&b, "sleep %.3f\n", f.delay.Seconds())
	}
	b.WriteString(f.d.prelude())
	if f.fail != "" {
		code, err := f.d.failure(f.tenant, f.fail)
		if err != nil {
			return fmt.Errorf("entra: fake %s error: %w", name, err)
		}
		b.WriteString(code)
	}
	b.WriteString(f.d.args())
	fmt.Fprintf(&b, "if [ -n \"$tenant\" ] && [ \"$tenant\" != %s ]; then\n", shQuote(f.tenant.ID()))
	b.WriteString("  die \"AADSTS90002: Tenant '$tenant' not found.\"\nfi\n")
	b.WriteString("case \"$target\" in\n")
	for i, res := range cliResources {
		pats := f.d.patterns(res)
		for j := range pats {
			pats[j] = shQuote(pats[j])
		}
		fmt.Fprintf(&b, "  %s) exec cat %s ;;\n", strings.Join(pats, "|"), shQuote(f.tokenFile(i)))
	}
	fmt.Fprintf(&b, "  *) die \"AADSTS500011: The resource principal named ${target%%/.default} was not found in the tenant named %s.\" ;;\nesac\n", f.tenant.ID())
	return writeFileAtomic(f.path(), []byte(b.String()), 0o700)
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

// The live CLIs: [RunAZ] and [RunAZD] answer one command line in Go, minting
// a token at the moment of the call, for a long-running emulator whose az and
// azd scripts hand their arguments to the emulator's process (see
// examples/emulator). The script-based [FakeAZ] and [FakeAZD] stay the tests'
// CLIs: they need no running process.

// cliField is one member of a cliObject.
type cliField struct {
	key string
	val any
}

// cliObject is a JSON object that keeps its members' order, as the CLIs
// print them.
type cliObject []cliField

// MarshalJSON encodes the object with its members in order.
func (o cliObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshalNoEscape(f.key)
		if err != nil {
			return nil, err
		}
		v, err := marshalNoEscape(f.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// get returns the member key (JMESPath field names are case-sensitive).
func (o cliObject) get(key string) (any, bool) {
	for _, f := range o {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

// marshalNoEscape is json.Marshal without HTML escaping (az prints
// "&" as "&", not "\u0026").
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// cliUsageError is a command line the live CLI refuses; code is the exit
// status (az: 2 for argument errors, 1 for the rest).
type cliUsageError struct {
	code int
	msg  string
}

func (e *cliUsageError) Error() string { return e.msg }

// splitFlag splits "--name=value" into its parts; ok is false for args
// without '='.
func splitFlag(arg string) (name, value string, ok bool) {
	if !strings.HasPrefix(arg, "-") {
		return arg, "", false
	}
	return strings.Cut(arg, "=")
}

// cliQuery evaluates the small part of JMESPath people put after --query:
// a field name or a dotted path of field names (each optionally quoted, as
// in "accessToken" or user.name). A missing field is null, as in JMESPath.
func cliQuery(v any, query string) (any, error) {
	query = strings.TrimSpace(query)
	if query == "" || query == "@" {
		return v, nil
	}
	for _, part := range strings.Split(query, ".") {
		name := part
		if len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"' {
			name = name[1 : len(name)-1]
		} else if !jmesIdentRE.MatchString(name) {
			return nil, &cliUsageError{code: 1, msg: fmt.Sprintf("the emulator's CLI supports --query with a field name or a dotted path of field names (e.g. accessToken, user.name), not %q", query)}
		}
		obj, ok := v.(cliObject)
		if !ok {
			return nil, nil
		}
		v, _ = obj.get(name)
	}
	return v, nil
}

var jmesIdentRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// cliOutput prints v in one of az's output formats: json and jsonc (indented
// JSON), tsv (a scalar as is; an object's scalar values, sorted by key and
// tab-separated, as knack prints a plain dict) or none. A null result
// prints nothing, as az does.
func cliOutput(w io.Writer, v any, format string) error {
	if v == nil || format == "none" {
		return nil
	}
	switch format {
	case "json", "jsonc":
		b, err := marshalNoEscape(v)
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
		_, err = w.Write(out.Bytes())
		return err
	case "tsv":
		var line string
		if obj, ok := v.(cliObject); ok {
			sorted := append(cliObject(nil), obj...)
			sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].key < sorted[j].key })
			cells := make([]string, len(sorted))
			for i, f := range sorted {
				cells[i] = tsvCell(f.val)
			}
			line = strings.Join(cells, "\t")
		} else {
			line = tsvCell(v)
		}
		_, err := fmt.Fprintln(w, line)
		return err
	}
	return &cliUsageError{code: 2, msg: fmt.Sprintf("argument --output/-o: invalid choice: %q (the emulator's CLI prints json, jsonc, tsv or none)", format)}
}

// tsvCell renders one value as az's tsv does (Python's str(); objects empty).
func tsvCell(v any) string {
	switch x := v.(type) {
	case nil, cliObject:
		return ""
	case bool:
		if x {
			return "True"
		}
		return "False"
	default:
		return fmt.Sprint(x)
	}
}
