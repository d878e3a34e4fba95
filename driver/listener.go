package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/dsn"
	"github.com/pgentra/pgentra/internal/pqinternal"
)

// ListenerConnectTimeout bounds each connection attempt (dial, TLS and
// login) of a Listener whose DSN sets no connect_timeout. pq's ListenerConn
// takes no context, so this is what stops a server that accepts and then
// stalls from hanging a reconnect — and Close, which waits for an attempt
// in flight — for good.
const ListenerConnectTimeout = 15 * time.Second

// ErrListenerConfig is matched (errors.Is, together with ErrInvalidConfig)
// by NewListener's errors about a DSN that pq's ListenerConn would read
// differently from the Connector, or reconnect intervals that make no sense.
var ErrListenerConfig = errors.New("pgentra: listener configuration")

// Listener is pq.Listener with a new Entra token on every (re)connect: a
// connection dedicated to LISTEN/NOTIFY that re-establishes itself when it
// is lost. pq.NewListener logs in again with the password in its DSN — with
// Entra an access token that has expired by the time a fail-over, an idle
// timeout or a server restart drops the connection — so it can never
// reconnect. Listener logs in like Connector.Connect instead: a token from
// the cache (shared with pools through WithTokenCache), the same TLS policy,
// user derivation, retry-once and hints.
//
// It has pq.Listener's methods with pq's semantics, and pq's ListenerConn
// does the protocol work; pgentra owns only the reconnect loop. After every
// reconnect it LISTENs again on all channels and sends one nil notification
// on Notify: notifications sent while it was disconnected are lost, so
// re-read whatever state they announce. eventCallback gets pq's
// ListenerEventConnected, ListenerEventDisconnected,
// ListenerEventReconnected and ListenerEventConnectionAttemptFailed (whose
// error is a *LoginError with a hint when the server refused the login).
//
// A Listener is safe for concurrent use. Close it when done: that stops its
// goroutine and its token cache (not one passed with WithTokenCache).
type Listener struct {
	// Notify receives the notifications, and a nil after each reconnect. It
	// is the same channel for the Listener's life and is closed by Close.
	// Read it promptly: while it is full the Listener stops reading from
	// the server, as pq's does.
	Notify chan *pq.Notification

	connector            *Connector
	minReconnectInterval time.Duration
	maxReconnectInterval time.Duration
	eventCallback        pq.EventCallbackType

	// As in pq: lock guards the fields below it.
	lock                 sync.Mutex
	isClosed             bool
	reconnectCond        *sync.Cond
	cn                   *pq.ListenerConn
	connNotificationChan <-chan *pq.Notification
	channels             map[string]struct{}
	// refusedErr: before the first connection, the last attempt's failure
	// when a new token cannot fix it (refusedForGood); Listen and Ping
	// return it instead of waiting. connectedOnce: a connection was made.
	refusedErr    error
	connectedOnce bool

	// Shutdown. closeMu guards closing and live, and is never held across
	// I/O, so Close can reach a connection that the loop is resyncing with
	// lock held.
	closeMu  sync.Mutex
	closing  bool
	live     *pq.ListenerConn
	done     chan struct{} // closed by Close: ends waits and sends
	ctx      context.Context
	cancel   context.CancelFunc // ends a token fetch in flight
	loopDone chan struct{}
	inCB     atomic.Int32 // event callbacks running
}

// NewListener is pq.NewListener for pgentra: dsn is a pgentra DSN (see
// NewConnector; the options are NewConnector's), minReconnectInterval,
// maxReconnectInterval and eventCallback mean what they mean for
// pq.NewListener. Moving from pq is one line:
//
//	l := pq.NewListener(dsn, 10*time.Second, time.Minute, cb)
//	l, err := driver.NewListener(dsn, 10*time.Second, time.Minute, cb)
//
// The DSN is parsed once, by NewConnector; each (re)connect writes the parsed
// config, with the current token and role, as a connection string for pq's
// ListenerConn, quoting every value. NewListener checks
// that pq reads that string back as the same config in this process's
// environment. Each attempt is bounded by the DSN's connect_timeout, else by
// ListenerConnectTimeout (the string sets it); the token fetch is bounded
// by the token cache and ends at Close.
//
// It returns at once; the first connection is made in the background
// (ListenerEventConnected, or ListenerEventConnectionAttemptFailed and a
// retry after minReconnectInterval, doubling up to maxReconnectInterval).
// Listen waits for it.
func NewListener(dsnString string, minReconnectInterval, maxReconnectInterval time.Duration, eventCallback pq.EventCallbackType, opts ...Option) (*Listener, error) {
	if minReconnectInterval <= 0 || maxReconnectInterval < minReconnectInterval {
		return nil, listenerConfigErr(nil, "minReconnectInterval must be positive and at most maxReconnectInterval (got %v and %v)", minReconnectInterval, maxReconnectInterval)
	}
	c, err := NewConnector(dsnString, opts...)
	if err != nil {
		return nil, err
	}
	if err := checkListenerString(c.base); err != nil {
		_ = c.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		Notify:               make(chan *pq.Notification, 32),
		connector:            c,
		minReconnectInterval: minReconnectInterval,
		maxReconnectInterval: maxReconnectInterval,
		eventCallback:        eventCallback,
		channels:             make(map[string]struct{}),
		done:                 make(chan struct{}),
		ctx:                  ctx,
		cancel:               cancel,
		loopDone:             make(chan struct{}),
	}
	l.reconnectCond = sync.NewCond(&l.lock)
	go l.listenerMain()
	return l, nil
}

// checkListenerString proves that the string each attempt builds from base
// means base to pq in this environment: pq.NewConfig reads PG* variables,
// and prepends comma lists in PGHOST, PGHOSTADDR and PGPORT to the string's.
func checkListenerString(base pq.Config) error {
	probe := listenerConfig(base)
	probe.Password = "placeholder"
	_, err := listenerString(probe)
	return err
}

// listenerString writes cfg for pq.NewListenerConn, which parses it again
// with pq.NewConfig in the environment of that moment, and proves first
// that this parse gives cfg back: what pq dials is what the Connector
// checked (TLS policy included), even if PG* variables changed since
// NewListener. pq's own panics on such a parse (PGHOST and PGPORT lists
// prepended to the string's) become an error.
func listenerString(cfg pq.Config) (string, error) {
	s, err := dsn.Build(cfg)
	if err != nil {
		// dsn's error says "pgentra:" itself; only its details are repeated.
		return "", listenerConfigErr(err, "the parsed DSN can't be written as a connection string for pq's ListenerConn: %s",
			strings.TrimPrefix(err.Error(), dsn.ErrNotExpressible.Error()+": "))
	}
	back, err := dsn.NewConfig(s)
	if err != nil {
		return "", listenerConfigErr(err, "pq refuses the connection string written from the parsed DSN (%v); pq adds lists in PGHOST, PGHOSTADDR and PGPORT to the DSN's each time it parses: unset those variables", err)
	}
	if d := dsn.ConfigDiff(cfg, back); d != "" {
		return "", listenerConfigErr(nil, "pq reads %s differently when it parses the DSN again for the listener's connection, because of the environment (PGHOST, PGHOSTADDR and PGPORT lists are added to the DSN's); unset those variables or use one host", d)
	}
	return s, nil
}

// listenerConfigError is a Listener configuration error: errors.Is matches
// ErrListenerConfig and ErrInvalidConfig (and the cause, if any), and the
// message says "pgentra:" once.
type listenerConfigError struct {
	msg  string
	errs []error
}

func (e *listenerConfigError) Error() string   { return e.msg }
func (e *listenerConfigError) Unwrap() []error { return e.errs }

// listenerConfigErr words a Listener configuration error: "pgentra:
// listener configuration: " and the reason; cause (may be nil) stays
// reachable but is not quoted unless the reason does.
func listenerConfigErr(cause error, format string, args ...any) error {
	e := &listenerConfigError{msg: "pgentra: listener configuration: " + fmt.Sprintf(format, args...), errs: []error{ErrListenerConfig, ErrInvalidConfig}}
	if cause != nil {
		e.errs = append(e.errs, cause)
	}
	return e
}

// listenerConfig is cfg with the attempt's time bound.
func listenerConfig(cfg pq.Config) pq.Config {
	cfg = cfg.Clone()
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = ListenerConnectTimeout
	}
	return cfg
}

// NotificationChannel returns Notify.
func (l *Listener) NotificationChannel() <-chan *pq.Notification { return l.Notify }

// Listen starts listening on channel (case-sensitive), as pq's Listen: it
// waits for the server's acknowledgement, or, while there is no connection,
// for the next one. It fails with pq.ErrChannelAlreadyOpen, with the
// server's *pq.Error, or with net.ErrClosed once Close was called. Before
// the first connection, when the last attempt was refused for a reason a
// new token cannot fix (no role for the identity, a wrong user or database,
// a configuration error), it returns that error, a *LoginError with its
// hint, instead of waiting; the Listener keeps trying in the background.
func (l *Listener) Listen(channel string) error {
	l.lock.Lock()
	defer l.lock.Unlock()
	if l.isClosed {
		return net.ErrClosed
	}
	if _, exists := l.channels[channel]; exists {
		return pq.ErrChannelAlreadyOpen
	}
	if l.cn != nil {
		// As in pq: an error the server sent goes to the caller; a lost
		// connection is left to the reconnect, whose resync LISTENs.
		if sent, err := l.cn.Listen(channel); sent && err != nil {
			return err
		}
	}
	l.channels[channel] = struct{}{}
	for l.cn == nil {
		if l.refusedErr != nil {
			delete(l.channels, channel)
			return l.refusedErr
		}
		l.reconnectCond.Wait()
		if l.isClosed {
			return net.ErrClosed
		}
	}
	return nil
}

// Unlisten stops listening on channel, as pq's Unlisten: it returns
// pq.ErrChannelNotOpen for a channel not listened on, and returns at once
// when there is no connection (the next one won't LISTEN on it). A
// notification for channel may still arrive after it returned.
func (l *Listener) Unlisten(channel string) error {
	l.lock.Lock()
	defer l.lock.Unlock()
	if l.isClosed {
		return net.ErrClosed
	}
	if _, exists := l.channels[channel]; !exists {
		return pq.ErrChannelNotOpen
	}
	if l.cn != nil {
		if sent, err := l.cn.Unlisten(channel); sent && err != nil {
			return err
		}
	}
	delete(l.channels, channel)
	return nil
}

// UnlistenAll stops listening on every channel, as pq's UnlistenAll.
func (l *Listener) UnlistenAll() error {
	l.lock.Lock()
	defer l.lock.Unlock()
	if l.isClosed {
		return net.ErrClosed
	}
	if l.cn != nil {
		if sent, err := l.cn.UnlistenAll(); sent && err != nil {
			return err
		}
	}
	l.channels = make(map[string]struct{})
	return nil
}

// errNoConnection is pq's Ping error while disconnected.
var errNoConnection = errors.New("no connection")

// Ping checks the connection with an empty query, as pq's Ping; an error
// means there is no working connection at the moment: before the first
// connection, the refusal Listen would return (see Listen).
func (l *Listener) Ping() error {
	l.lock.Lock()
	defer l.lock.Unlock()
	if l.isClosed {
		return net.ErrClosed
	}
	if l.cn == nil {
		if l.refusedErr != nil {
			return l.refusedErr
		}
		return errNoConnection
	}
	return l.cn.Ping()
}

// Close disconnects and stops the Listener: it ends a reconnect wait or a
// token fetch at once, waits for a connection attempt in flight (bounded by
// connect_timeout), closes Notify, stops the Listener's goroutine before it
// returns, and closes the token cache the Listener built. Called from the
// event callback (or while one runs), it doesn't wait for the goroutine,
// which then ends as soon as the callback returns. A second Close returns
// net.ErrClosed.
func (l *Listener) Close() error {
	l.closeMu.Lock()
	if l.closing {
		l.closeMu.Unlock()
		return net.ErrClosed
	}
	l.closing = true
	close(l.done)
	l.cancel()
	if l.live != nil {
		_ = l.live.Close() // wakes a resync that holds lock
	}
	l.closeMu.Unlock()

	l.lock.Lock()
	l.isClosed = true
	if l.cn != nil {
		_ = l.cn.Close()
	}
	l.reconnectCond.Broadcast() // unblock Listen
	l.lock.Unlock()

	if l.inCB.Load() == 0 {
		<-l.loopDone
	}
	return l.connector.Close()
}

// String describes the Listener without secrets: the redacted DSN, scope and
// credential kind. It never shows a token.
func (l *Listener) String() string {
	return "pgentra.Listener{" + l.connector.String() + "}"
}

// GoString is String, so that %#v neither shows the Listener's fields nor
// reads them while the Listener's goroutine changes them.
func (l *Listener) GoString() string { return l.String() }

// closed reports whether Close has been called. It reads closing, which
// Close sets before it closes the connection, so that the loop, seeing the
// connection end, knows it was Close and reports no Disconnected event.
func (l *Listener) closed() bool {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	return l.closing
}

func (l *Listener) emitEvent(event pq.ListenerEventType, err error) {
	if l.eventCallback != nil {
		l.inCB.Add(1)
		defer l.inCB.Add(-1)
		l.eventCallback(event, err)
	}
}

// send delivers n on Notify unless Close was called meanwhile.
func (l *Listener) send(n *pq.Notification) {
	select {
	case l.Notify <- n:
	case <-l.done:
	}
}

// sleep waits d, or less if Close is called; it reports whether to go on.
func (l *Listener) sleep(d time.Duration) bool {
	if d <= 0 {
		return !l.closed()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// connect logs in (outside lock: a token fetch may take a while, and Close,
// Unlisten and friends must not wait for it), then installs the connection
// and resyncs the channels with lock held, as pq does.
func (l *Listener) connect() error {
	if l.closed() {
		return net.ErrClosed
	}
	notificationChan := make(chan *pq.Notification, 32)
	var cn *pq.ListenerConn
	err := l.connector.withLogin(l.ctx, func(_ context.Context, e *pqEntry) error {
		s, err := listenerString(listenerConfig(e.cfg))
		if err != nil {
			return withoutToken(err, e.token)
		}
		c, err := pq.NewListenerConn(s, notificationChan)
		if err != nil {
			return withoutToken(err, e.token)
		}
		pqinternal.ForgetListenerPassword(c)
		cn = c
		return nil
	})
	if err != nil {
		return err
	}

	l.closeMu.Lock()
	if l.closing {
		l.closeMu.Unlock()
		_ = cn.Close()
		drain(notificationChan)
		return net.ErrClosed
	}
	l.live = cn
	l.closeMu.Unlock()

	l.lock.Lock()
	defer l.lock.Unlock()
	if !l.isClosed {
		l.cn = cn
		err = l.resync(cn, notificationChan)
	} else {
		err = net.ErrClosed
	}
	if err != nil {
		l.cn = nil // unlike pq, which leaves the dead conn there and lets Listen return early
		_ = cn.Close()
		drain(notificationChan)
		return err
	}
	l.connNotificationChan = notificationChan
	l.refusedErr, l.connectedOnce = nil, true
	l.reconnectCond.Broadcast()
	return nil
}

// noteFirstFailure records, before the first connection, an attempt's
// failure that a new token cannot fix, and wakes Listen to return it.
func (l *Listener) noteFirstFailure(err error) {
	l.lock.Lock()
	defer l.lock.Unlock()
	if l.connectedOnce || !refusedForGood(err) {
		return
	}
	l.refusedErr = err
	l.reconnectCond.Broadcast()
}

// refusedForGood reports a failed attempt that another attempt with a new
// token would not fix: the server refused the login or the database (not a
// token that expired in flight), or the configuration is wrong. A transport
// failure or a token that could not be had may pass.
func refusedForGood(err error) bool {
	var le *LoginError
	var pe *pq.Error
	if errors.As(err, &le) && errors.As(err, &pe) {
		return !expiredWhileInFlight(err)
	}
	return errors.Is(err, ErrInvalidConfig)
}

// drain reads ch until pq's ListenerConn closes it, so that its goroutine,
// which may be blocked delivering a notification, ends.
func drain(ch <-chan *pq.Notification) {
	for range ch {
	}
}

// resync LISTENs on every channel on a new connection; pq's, unchanged:
// notifications are dropped meanwhile, the nil on Notify says so.
func (l *Listener) resync(cn *pq.ListenerConn, notificationChan <-chan *pq.Notification) error {
	doneChan := make(chan error)
	go func(notificationChan <-chan *pq.Notification) {
		for channel := range l.channels {
			// If we got a response, return that error to our caller as it's
			// going to be more descriptive than cn.Err().
			gotResponse, err := cn.Listen(channel)
			if gotResponse && err != nil {
				doneChan <- err
				return
			}
			// If we couldn't reach the server, wait for notificationChan to
			// close and then return the error message from the connection.
			if err != nil {
				for range notificationChan {
				}
				doneChan <- cn.Err()
				return
			}
		}
		doneChan <- nil
	}(notificationChan)

	for {
		select {
		case _, ok := <-notificationChan:
			if !ok {
				notificationChan = nil
			}
		case err := <-doneChan:
			return err
		}
	}
}

// disconnectCleanup is pq's: called once connNotificationChan is closed,
// it returns why the connection was lost.
func (l *Listener) disconnectCleanup() error {
	l.lock.Lock()
	defer l.lock.Unlock()
	err := l.cn.Err()
	_ = l.cn.Close()
	l.cn = nil
	l.closeMu.Lock()
	l.live = nil
	l.closeMu.Unlock()
	return err
}

func (l *Listener) listenerMain() {
	defer close(l.loopDone)
	l.listenerConnLoop()
	close(l.Notify)
}

// withoutToken returns err unless its text contains the token (pq's errors
// never do; this is a guard, not a filter).
func withoutToken(err error, tok string) error {
	if tok != "" && strings.Contains(err.Error(), tok) {
		return errors.New("pgentra: listener: connection failed (pq's error withheld: it contained the access token)")
	}
	return err
}
