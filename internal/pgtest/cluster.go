package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options tune Start. The zero value is ready to use.
type Options struct {
	// MaxConnections defaults to 400 (benchmarks open 256 connections at once).
	MaxConnections int
	// Logf, when set, receives progress lines (e.g. t.Logf). Optional. It is
	// called only from Start, Stop, Restart and Close, never from a goroutine.
	Logf func(format string, args ...any)
}

// Cluster is one running (or stopped) throwaway PostgreSQL server. Create it
// with Start and always Close it; Close removes every file it created. Its
// methods are safe for concurrent use.
type Cluster struct {
	Dir       string // data+socket parent dir (temp), removed by Close
	SocketDir string // unix socket directory (absolute path; < 100 bytes with the socket file)
	Host      string // "127.0.0.1"
	Port      int    // free TCP port chosen at Start
	SuperUser string // "postgres"

	run      runner
	dataDir  string
	logFile  string
	origConf []byte // initdb's postgresql.conf, before our settings
	maxConns int

	mu      sync.Mutex
	logf    func(format string, args ...any)
	running bool
	closed  bool
}

// defaultMaxConnections covers the benchmarks' 256 simultaneous connections.
const defaultMaxConnections = 400

// portAttempts bounds how often Start picks a new port when another process
// grabbed the free one between probing and the server binding it.
const portAttempts = 3

// logTailLines is how much of the server log an error quotes.
const logTailLines = 25

// Start runs initdb in a new temp dir, configures the server (TCP on
// 127.0.0.1 with password auth, a unix socket with trust, fsync off,
// MaxConnections, scram-sha-256 password storage, log file in Dir) and starts
// it with pg_ctl start -w on a free port.
//
// Binaries come from PATH, else `pg_config --bindir`, else the newest
// /usr/lib/postgresql/*/bin; when none is found the error wraps ErrNoPostgres.
// As root, the dir is chowned to the postgres user and the programs run
// through `runuser -u postgres --`. Start errors quote the tail of the server
// log. ctx bounds the whole start; on any error everything Start created is
// stopped and removed.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	began := time.Now()
	bins, err := osFinder().find()
	if err != nil {
		return nil, err
	}
	run, err := newRunner(bins)
	if err != nil {
		return nil, err
	}
	maxConns := opts.MaxConnections
	if maxConns <= 0 {
		maxConns = defaultMaxConnections
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	base, note := chooseBase(run.runuser != "")
	if note != "" {
		logf("pgtest: %s", note)
	}
	dir, err := os.MkdirTemp(base, tempDirPattern)
	if err != nil {
		return nil, fmt.Errorf("pgentra: pgtest: create cluster dir: %w", err)
	}
	c := &Cluster{
		Dir:       dir,
		SocketDir: dir,
		Host:      "127.0.0.1",
		SuperUser: "postgres",
		run:       run,
		dataDir:   filepath.Join(dir, "data"),
		logFile:   filepath.Join(dir, "server.log"),
		maxConns:  maxConns,
		logf:      logf,
	}
	if err := c.create(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	initdbDone := time.Now()
	if err := c.startFreePort(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	logf("pgtest: PostgreSQL started in %s (initdb %s, start %s) on %s, socket %s, bin %s",
		time.Since(began).Round(time.Millisecond), initdbDone.Sub(began).Round(time.Millisecond),
		time.Since(initdbDone).Round(time.Millisecond), c.Addr(), c.SocketDir, filepath.Dir(bins.pgCtl))
	return c, nil
}

// create runs initdb and writes pg_hba.conf.
func (c *Cluster) create(ctx context.Context) error {
	if err := c.run.chown(c.Dir); err != nil {
		return err
	}
	if _, err := c.run.run(ctx, c.Dir, c.run.bins.initdb,
		"-D", c.dataDir, "-U", c.SuperUser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return err
	}
	conf, err := os.ReadFile(filepath.Join(c.dataDir, "postgresql.conf"))
	if err != nil {
		return fmt.Errorf("pgentra: pgtest: read postgresql.conf: %w", err)
	}
	c.origConf = conf
	// Overwriting keeps the file's owner (postgres) when we are root.
	if err := os.WriteFile(filepath.Join(c.dataDir, "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return fmt.Errorf("pgentra: pgtest: write pg_hba.conf: %w", err)
	}
	return nil
}

// startFreePort picks a free port, writes the configuration and starts the
// server, retrying with another port when the chosen one was taken meanwhile.
func (c *Cluster) startFreePort(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			return err
		}
		c.Port = port
		conf := append(append([]byte{}, c.origConf...), serverConf(port, c.SocketDir, c.maxConns)...)
		if err = os.WriteFile(filepath.Join(c.dataDir, "postgresql.conf"), conf, 0o600); err != nil {
			return fmt.Errorf("pgentra: pgtest: write postgresql.conf: %w", err)
		}
		if err = c.start(ctx); err == nil || !portTaken(c.logFile) || ctx.Err() != nil {
			return err
		}
		c.logf("pgtest: port %d was taken, retrying (attempt %d of %d)", port, attempt, portAttempts)
	}
	return err
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgentra: pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portTaken reports whether the server log says the port was in use.
func portTaken(logFile string) bool {
	t := tail(logFile, logTailLines)
	return strings.Contains(t, "could not bind") || strings.Contains(t, "already in use")
}

// start runs pg_ctl start -w and marks the cluster running.
func (c *Cluster) start(ctx context.Context) error {
	_, err := c.run.run(ctx, c.Dir, c.run.bins.pgCtl,
		"start", "-w", "-t", "60", "-D", c.dataDir, "-l", c.logFile)
	if err != nil {
		// pg_ctl may have left a postmaster behind (e.g. ctx ended mid-wait).
		c.running = c.pidAlive()
		return fmt.Errorf("%w\nserver log %s:\n%s", err, c.logFile, tail(c.logFile, logTailLines))
	}
	c.running = true
	return nil
}

// Addr returns "127.0.0.1:PORT", the server's TCP address.
func (c *Cluster) Addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// Stop shuts the server down (fast mode: sessions are terminated, data is
// kept) so a test can prove how clients behave while the server is gone.
// Restart starts it again. Stop on a stopped cluster is a no-op.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("pgentra: pgtest: Stop on a closed cluster")
	}
	if !c.running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.run.run(ctx, c.Dir, c.run.bins.pgCtl, "stop", "-w", "-m", "fast", "-D", c.dataDir); err != nil {
		return fmt.Errorf("%w\nserver log:\n%s", err, tail(c.logFile, logTailLines))
	}
	c.running = false
	c.logf("pgtest: PostgreSQL on %s stopped", c.Addr())
	return nil
}

// Restart starts a stopped cluster again on the same port, socket and data,
// for tests of reconnecting after a server restart. It is a no-op when the
// server is running. It fails (quoting the server log) if the port has been
// taken meanwhile.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("pgentra: pgtest: Restart on a closed cluster")
	}
	if c.running {
		return nil
	}
	began := time.Now()
	if err := c.start(ctx); err != nil {
		return err
	}
	c.logf("pgtest: PostgreSQL on %s restarted in %s", c.Addr(), time.Since(began).Round(time.Millisecond))
	return nil
}

// Close stops the server immediately (no checkpoint: the data is thrown
// away) and removes Dir. It always tries to remove Dir, even when stopping
// fails. Calling it again is a no-op returning nil.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if c.running || c.pidAlive() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := c.run.run(ctx, c.Dir, c.run.bins.pgCtl, "stop", "-w", "-m", "immediate", "-D", c.dataDir)
		cancel()
		if err != nil {
			// Last resort: SIGQUIT is the postmaster's immediate shutdown.
			if pid := c.postmasterPID(); pid > 0 && syscall.Kill(pid, syscall.SIGQUIT) == nil {
				c.waitGone(pid, 10*time.Second)
			} else {
				errs = append(errs, err)
			}
		}
		c.running = false
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("pgentra: pgtest: remove %s: %w", c.Dir, err))
	}
	c.logf("pgtest: cluster %s closed", c.Dir)
	return errors.Join(errs...)
}

// postmasterPID reads the server's pid from postmaster.pid; 0 when absent.
func (c *Cluster) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// pidAlive reports whether the pid in postmaster.pid names a live process.
func (c *Cluster) pidAlive() bool {
	pid := c.postmasterPID()
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// waitGone polls until pid has exited or d has passed.
func (c *Cluster) waitGone(pid int, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
}
