package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgentra/pgentra/internal/emulator/entra"
)

// The az and azd in DIR/bin are two-line scripts that run this program as
// `emulator __emulator-cli URL SECRETFILE az|azd ARGS...`: it hands ARGS to
// the running emulator over loopback HTTP, which answers them with
// entra.RunAZ / entra.RunAZD — a token minted at that moment, valid for
// its full lifetime whenever it is asked for — and prints the answer.
// `emulator token NAME` takes the same way, with the URL from
// DIR/bin/.cli-endpoint.

// cliSubcommand is the hidden first argument of the client mode.
const cliSubcommand = "__emulator-cli"

// cliSecretFile holds the secret the scripts' requests carry (0600), so
// that other local users cannot get the admin's tokens.
const cliSecretFile = ".cli-secret"

// cliEndpointFile holds the server's URL, for `emulator token`.
const cliEndpointFile = ".cli-endpoint"

// cliHeader carries the secret.
const cliHeader = "X-Pgentra-Emulator-Secret"

// cliRequest and cliResponse are the client mode's exchange.
type cliRequest struct {
	CLI  string   `json:"cli"`
	Args []string `json:"args"`
}

type cliResponse struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Code   int    `json:"code"`
}

// cliServer answers the scripts for the signed-in admin.
type cliServer struct {
	tenant *entra.Tenant
	admin  entra.Principal
	secret string
	ln     net.Listener
	srv    *http.Server
	done   chan struct{}
}

func startCLIServer(t *entra.Tenant, admin entra.Principal) (*cliServer, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("az/azd secret: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("az/azd endpoint: %w", err)
	}
	s := &cliServer{tenant: t, admin: admin, secret: hex.EncodeToString(b[:]), ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *cliServer) url() string { return "http://" + s.ln.Addr().String() }

// Close stops the server and waits for its goroutine.
func (s *cliServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

func (s *cliServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || subtle.ConstantTimeCompare([]byte(r.Header.Get(cliHeader)), []byte(s.secret)) != 1 {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	var req cliRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var out, errOut bytes.Buffer
	var code int
	switch req.CLI {
	case "az":
		code = entra.RunAZ(s.tenant, s.admin, req.Args, &out, &errOut)
	case "azd":
		code = entra.RunAZD(s.tenant, s.admin, req.Args, &out, &errOut)
	case "token":
		code = s.token(req.Args, &out, &errOut)
	default:
		http.Error(w, "unknown CLI", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(cliResponse{Stdout: out.String(), Stderr: errOut.String(), Code: code})
}

// cliScript is DIR/bin/az or DIR/bin/azd.
func cliScript(exe, url, secretFile, name string, admin entra.Principal) string {
	return fmt.Sprintf("#!/bin/sh\n# %s of the pgentra emulator, signed in as %s: each run gets a fresh token from the running emulator.\nexec %s %s %s %s %s \"$@\"\n",
		name, admin.UPN, shQuote(exe), cliSubcommand, shQuote(url), shQuote(secretFile), name)
}

// token answers `emulator token NAME`: a database access token for the
// identity NAME, minted at the call and shaped as its own credential gets
// it (IMDS, App Service, az, the authority).
func (s *cliServer) token(args []string, stdout, stderr io.Writer) int {
	var names []string
	for _, p := range s.tenant.Principals() {
		if p.Kind != entra.Group {
			names = append(names, p.Name)
		}
	}
	if len(args) != 1 {
		fmt.Fprintf(stderr, "ERROR: want one identity name; the emulator's: %s\n", strings.Join(names, ", "))
		return 2
	}
	p, ok := s.tenant.ByName(args[0])
	if !ok || p.Kind == entra.Group {
		fmt.Fprintf(stderr, "ERROR: no identity named %q in the emulator's tenant; its identities: %s\n", args[0], strings.Join(names, ", "))
		return 1
	}
	tok, _, err := s.tenant.Mint(p, entra.DatabaseAudience, 0)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: minting a token for %q: %v\n", p.Name, err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// cliClient is the client mode: args are URL SECRETFILE CLI ARGS...; it
// prints the emulator's answer and returns the CLI's exit status.
func cliClient(args []string, stdout, stderr io.Writer) int {
	if len(args) < 3 {
		fmt.Fprintf(stderr, "ERROR: %s is the emulator's az/azd client mode: URL SECRETFILE az|azd ARGS...\n", cliSubcommand)
		return 2
	}
	return cliCall(args[0], args[1], args[2], args[3:], "this "+args[2], stdout, stderr)
}

// tokenCommand is `emulator token [-dir DIR] NAME`: it prints a database
// access token for the identity NAME from the emulator whose files are in
// DIR (default $PGENTRA_EMULATOR_DIR, which env.sh sets).
func tokenCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("emulator token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", os.Getenv(dirVar), "the running emulator's -dir (default $"+dirVar+", which its env.sh sets)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: emulator token [-dir DIR] NAME\nprints a database access token for the identity NAME (see DIR/identities.json)\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "emulator token: want one identity name after the flags, e.g. emulator token id-orders (the names are in DIR/identities.json)")
		return 2
	}
	if *dir == "" {
		fmt.Fprintf(stderr, "emulator token: no -dir and %s is not set: source the emulator's env.sh, or give -dir DIR\n", dirVar)
		return 2
	}
	bin := filepath.Join(*dir, binDir)
	b, err := os.ReadFile(filepath.Join(bin, cliEndpointFile))
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: no pgentra emulator runs with -dir %s (%v); start one: cd examples && go run ./emulator\n", *dir, err)
		return 1
	}
	endpoint := strings.TrimSpace(string(b))
	if u, err := url.Parse(endpoint); err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
		fmt.Fprintf(stderr, "ERROR: %s: want the emulator's loopback URL (http://127.0.0.1:PORT), not %q\n", filepath.Join(bin, cliEndpointFile), endpoint)
		return 1
	}
	return cliCall(endpoint, filepath.Join(bin, cliSecretFile), "token", fs.Args(), *dir, stdout, stderr)
}

// cliCall sends one command line to the emulator's server and prints its
// answer; what names the caller in errors ("this az", the dir).
func cliCall(endpoint, secretFile, cli string, args []string, what string, stdout, stderr io.Writer) int {
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: the pgentra emulator that wrote %s is gone (%v); start it again: cd examples && go run ./emulator\n", what, err)
		return 1
	}
	body, err := json.Marshal(cliRequest{CLI: cli, Args: args})
	if err != nil {
		fmt.Fprintln(stderr, "ERROR:", err)
		return 1
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "ERROR:", err)
		return 1
	}
	req.Header.Set(cliHeader, strings.TrimSpace(string(secret)))
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: the pgentra emulator that wrote %s is not running (%v); start it again: cd examples && go run ./emulator\n", what, err)
		return 1
	}
	defer resp.Body.Close()
	var res cliResponse
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "ERROR: the pgentra emulator refused this %s run: %s\n", cli, resp.Status)
		return 1
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		fmt.Fprintf(stderr, "ERROR: reading the emulator's answer: %v\n", err)
		return 1
	}
	_, err1 := io.WriteString(stdout, res.Stdout)
	_, err2 := io.WriteString(stderr, res.Stderr)
	if err := errors.Join(err1, err2); err != nil && res.Code == 0 {
		return 1
	}
	return res.Code
}
