package pgfront

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// Login is the outcome of one login attempt, as recorded by a Front.
type Login struct {
	User       string // startup user
	Database   string // startup database ("" when the client sent none)
	TLS        bool   // the login ran over TLS
	ServerName string // SNI the client sent ("" without TLS or SNI)
	OK         bool   // the client got AuthenticationOk
	Code       string // SQLSTATE of the refusal ("" when OK)
	Message    string // message of the refusal ("" when OK); never contains a token
	// Reason is the emulator's own diagnosis (a Reason* constant) when Message is
	// Azure's generic MsgValidationFailed, which does not say which check failed;
	// "" otherwise. Emulator wording: it is recorded, never sent to the client.
	Reason string
}

// Front is a running Entra-checking PostgreSQL front. Create it with Listen and
// always Close it. Its methods are safe for concurrent use.
type Front struct {
	cfg    Config
	ln     net.Listener
	ctx    context.Context // ended by Close: aborts registry lookups and backend dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	conns     map[net.Conn]struct{} // raw client and backend conns, closed by Close
	passwords []string
	logins    []Login
	cancels   int
}

// Listen starts a front on addr (use "127.0.0.1:0" for a free port) and serves logins
// in the background until Close. It fails when cfg is incomplete or addr cannot be
// bound.
func Listen(addr string, cfg Config) (*Front, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("pgfront: invalid config: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pgfront: listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Front{cfg: cfg, ln: ln, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.acceptLoop()
	return f, nil
}

// Addr returns the listening address, "127.0.0.1:PORT".
func (f *Front) Addr() string { return f.ln.Addr().String() }

// Port returns the listening TCP port, for DSNs with host=localhost port=PORT.
func (f *Front) Port() int {
	if a, ok := f.ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Close stops accepting, closes every client and backend connection (sessions in
// progress end abruptly, like a server crash) and waits until all of the front's
// goroutines have returned. Calling it again is a no-op returning nil.
func (f *Front) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	conns := make([]net.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()

	f.cancel()
	err := f.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	f.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("pgfront: close listener: %w", err)
	}
	return nil
}

// Passwords returns every password the front received, in order, including those of
// failed logins. Tests use it to prove which token was (or was not) sent.
func (f *Front) Passwords() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.passwords)
}

// Logins returns the outcome of every login attempt that got as far as a startup
// message, in order of completion.
func (f *Front) Logins() []Login {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.logins)
}

// Cancels returns how many CancelRequests the front forwarded to the backend.
func (f *Front) Cancels() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancels
}

// Drain returns the passwords and logins recorded so far and forgets them, in one
// step: a login recorded while a test reads (Passwords, Logins, then Reset) would be
// lost between the read and the reset.
func (f *Front) Drain() (passwords []string, logins []Login) {
	f.mu.Lock()
	defer f.mu.Unlock()
	passwords, logins = f.passwords, f.logins
	f.passwords, f.logins = nil, nil
	return passwords, logins
}

// Reset forgets recorded passwords, logins and cancels, so a test can look at only
// what happened after a given point. Open sessions are not affected.
func (f *Front) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords, f.logins, f.cancels = nil, nil, 0
}

func (f *Front) acceptLoop() {
	defer f.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || f.ctx.Err() != nil {
				return
			}
			f.cfg.Logf("pgfront: accept: %v", err)
			select {
			case <-time.After(backoff):
			case <-f.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !f.track(c) {
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			f.serve(c)
		}()
	}
}

// track registers c so Close can close it. When the front is already closed it
// closes c and returns false.
func (f *Front) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		_ = c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (f *Front) untrack(c net.Conn) {
	_ = c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

func (f *Front) recordPassword(p string) {
	f.mu.Lock()
	f.passwords = append(f.passwords, p)
	f.mu.Unlock()
}

func (f *Front) recordLogin(l Login) {
	f.mu.Lock()
	f.logins = append(f.logins, l)
	f.mu.Unlock()
	if l.OK {
		f.cfg.Logf("pgfront: login ok: user=%q database=%q tls=%v", l.User, l.Database, l.TLS)
	} else {
		f.cfg.Logf("pgfront: login refused: user=%q database=%q tls=%v code=%s: %s (%s)", l.User, l.Database, l.TLS, l.Code, l.Message, l.Reason)
	}
}

func (f *Front) countCancel() {
	f.mu.Lock()
	f.cancels++
	f.mu.Unlock()
}
