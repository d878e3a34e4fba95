package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// runner runs the server programs, through `runuser -u postgres --` when the
// process is root (initdb and postgres refuse to run as root).
type runner struct {
	bins    binaries
	runuser string // path of runuser when root; "" runs programs directly
	uid     int    // owner to chown files to when root; -1 otherwise
	gid     int
}

// osUser is the account the server runs as when the process is root.
const osUser = "postgres"

// newRunner prepares a runner for the current process identity. Being root
// without a postgres account or without runuser wraps ErrNoPostgres, because
// the server cannot be run at all then.
func newRunner(bins binaries) (runner, error) {
	r := runner{bins: bins, uid: -1, gid: -1}
	if os.Geteuid() != 0 {
		return r, nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return r, fmt.Errorf("pgentra: pgtest: %w: running as root needs a %q OS user to own the cluster: %w", ErrNoPostgres, osUser, err)
	}
	r.uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return r, fmt.Errorf("pgentra: pgtest: uid of %q: %w", osUser, err)
	}
	r.gid, err = strconv.Atoi(u.Gid)
	if err != nil {
		return r, fmt.Errorf("pgentra: pgtest: gid of %q: %w", osUser, err)
	}
	r.runuser, err = exec.LookPath("runuser")
	if err != nil {
		return r, fmt.Errorf("pgentra: pgtest: %w: running as root needs runuser to start PostgreSQL as %q: %w", ErrNoPostgres, osUser, err)
	}
	return r, nil
}

// chown gives path to the postgres user when running as root; else a no-op.
func (r runner) chown(path string) error {
	if r.uid < 0 {
		return nil
	}
	if err := os.Chown(path, r.uid, r.gid); err != nil {
		return fmt.Errorf("pgentra: pgtest: chown %s to %s: %w", path, osUser, err)
	}
	return nil
}

// run executes prog (an absolute path) with args in dir and returns its
// combined output. On failure the error carries the program's output, which
// for initdb and pg_ctl never contains a secret.
func (r runner) run(ctx context.Context, dir, prog string, args ...string) (string, error) {
	name, argv := prog, args
	if r.runuser != "" {
		name = r.runuser
		argv = append([]string{"-u", osUser, "--", prog}, args...)
	}
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Dir = dir
	cmd.Env = childEnv(os.Environ())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl start leaves the postmaster running; it writes to the -l log
	// file, but never let a stray inherited pipe hang Wait.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return text, fmt.Errorf("pgentra: pgtest: %s %s: %w\n%s", shortName(prog), strings.Join(args, " "), err, text)
	}
	return text, nil
}

// childEnv drops PG* variables (PGDATA, PGPORT, PGHOST, ...) so the caller's
// environment cannot redirect initdb or pg_ctl to another cluster.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// shortName is the last path element of prog, for readable errors.
func shortName(prog string) string {
	if i := strings.LastIndexByte(prog, '/'); i >= 0 {
		return prog[i+1:]
	}
	return prog
}

// tail returns at most the last n lines of the file at path (reading no more
// than its last 8 KiB), or a note saying why it could not be read.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	defer f.Close()
	const max = 8 << 10
	fi, err := f.Stat()
	if err != nil {
		return "(server log: " + err.Error() + ")"
	}
	off := fi.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return "(server log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // first line is probably cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
