package token

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// ErrClosed is returned by [Cache.Token] and [Cache.Refresh] after
// [Cache.Close], and to callers still waiting for a fetch when Close is called (a fetch
// that finished just before Close still hands its token to its waiters).
var ErrClosed = errors.New("pgentra: token cache closed")

// source says where a token returned by [Cache.acquire] came from.
type source int

const (
	// fromCache: the token was already cached when the call came in (or a fetch
	// brought back, from the credential's own cache, a token a server had refused),
	// so a login failure with it may be cured by [Cache.Refresh] and one retry.
	fromCache source = iota
	// fetched: the token was obtained from the credential while this call waited, so
	// it is as fresh as it gets and retrying with another one is pointless.
	fetched
)

// String returns "cache" or "fetched".
func (s source) String() string {
	switch s {
	case fromCache:
		return "cache"
	case fetched:
		return "fetched"
	}
	return fmt.Sprintf("source(%d)", int(s))
}

// entry is an immutable cached token with its precomputed deadlines. Every time in it is
// a wall-clock reading (no monotonic part), so that comparisons with the clock's Now use
// the wall clock: the monotonic clock stops while a machine sleeps, and a token's expiry
// is a wall-clock instant.
type entry struct {
	tok azcore.AccessToken
	// refreshAt: from here a background refresh is due (the token is still served).
	refreshAt time.Time
	// expireAt: from here the token is treated as expired and callers must wait.
	expireAt time.Time
	// obtained: when the cache stored it.
	obtained time.Time
}

// newEntry computes the deadlines of tok obtained at now. The caller
// guarantees tok.ExpiresOn is after now; now and tok's times carry no monotonic reading.
func newEntry(tok azcore.AccessToken, now time.Time, margin time.Duration) *entry {
	life := tok.ExpiresOn.Sub(now)
	expireAt := tok.ExpiresOn.Add(-min(10*time.Second, life/4))
	var refreshAt time.Time
	if tok.RefreshOn.After(now) && tok.RefreshOn.Before(tok.ExpiresOn) {
		refreshAt = tok.RefreshOn
	} else {
		// A RefreshOn in the past (a token cached by the credential) is ignored, or
		// every call would start a refresh that returns the same token.
		refreshAt = tok.ExpiresOn.Add(-margin)
		if half := now.Add(life / 2); refreshAt.Before(half) {
			refreshAt = half // short-lived token: don't refresh on every call
		}
	}
	if refreshAt.After(expireAt) {
		refreshAt = expireAt
	}
	return &entry{tok: tok, refreshAt: refreshAt, expireAt: expireAt, obtained: now}
}

// wallClock strips the monotonic reading of tok's times: a credential that computes
// ExpiresOn as time.Now().Add(expires_in) (MSAL does) hands out a monotonic reading
// that would make a comparison after a sleep or hibernation ignore the time asleep.
func wallClock(tok azcore.AccessToken) azcore.AccessToken {
	tok.ExpiresOn = tok.ExpiresOn.Round(0)
	tok.RefreshOn = tok.RefreshOn.Round(0)
	return tok
}

// flight is one GetToken call. done is closed once the flight is finished: by the
// goroutine that called the credential when it returns, or — when the credential
// outlives the fetch timeout — by the first caller that notices (the call is then
// abandoned, and its late result used only if newer), or by Close.
type flight struct {
	done       chan struct{}
	background bool
	bypass     bool // asks the credential to skip its own cache (Refresh)
	// broughtBack: the token it got is one a server refused (the credential's own
	// cache handed it back), so its waiters get it as fromCache, not fetched.
	broughtBack bool

	// Under Cache.mu.
	launched bool               // run was started (or, after Close, never will be)
	ctx      context.Context    // the call's: the cache's bounded by the fetch timeout; set at launch
	values   context.Context    // from WithFetchContext, or nil
	cancel   context.CancelFunc //
	finished bool               // tok and err are set and done is (or is about to be) closed
	hung     bool               // abandoned after the fetch timeout while GetToken still ran
	tok      azcore.AccessToken
	err      error
}

// maxCalls is how many GetToken calls may run at once: one that outlived the fetch
// timeout and one new one. Two hung calls stop fetching until one returns.
const maxCalls = 2

// closeGrace is how long Close waits for a GetToken call it has just cancelled.
var closeGrace = 500 * time.Millisecond

// Cache holds one token for one (credential, scope) pair and refreshes it, so that every
// new database connection gets a valid token without calling the credential each time.
// It exists because azidentity credentials cache unevenly (the Azure CLI credential not
// at all) and because a token fetched once at start-up kills a pool an hour later.
//
// A Cache is safe for concurrent use. Share one per credential and scope — the token
// serves every server of the tenant — and Close it when done to stop background work.
type Cache struct {
	cur   atomic.Pointer[entry] // nil: no token
	cred  azcore.TokenCredential
	scope string
	opts  options

	ctx    context.Context // the fetches' parent; cancelled by Close
	cancel context.CancelFunc

	mu          sync.Mutex
	cond        sync.Cond // on mu: Close waits on it for the goroutines below
	closed      bool
	inflight    *flight
	lastErr     error     // of the last failed fetch, until a success
	retryAt     time.Time // no fetch before this (back-off); wall clock
	nextBackoff time.Duration
	running     int // goroutines started by the cache that have not ended
	inHandler   int // of those, ones running (or about to run) an event handler
	hung        int // of those, ones in a GetToken call abandoned after the fetch timeout

	// Refusals reported by Refresh; see refusalLimitLocked.
	refusedTok   string        // the last token reported refused
	lastRefusal  time.Time     // when a refusal was last reported
	bypassAt     time.Time     // when the last refusal-driven bypass fetch started
	bypassWindow time.Duration // no other one before bypassAt + bypassWindow; 0: at once

	waiting atomic.Int64 // callers blocked on a flight; read by tests
}

// NewCache returns a cache of tokens from cred for scope (one of the Scope constants or
// [ScopeForHost]; "" means [ScopePublic]). It does no I/O: the first [Cache.Token] call
// fetches. cred must not be nil; if it is, every Token call fails with an error.
func NewCache(cred azcore.TokenCredential, scope string, opts ...Option) *Cache {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if scope == "" {
		scope = ScopePublic
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		cred:        cred,
		scope:       scope,
		opts:        o,
		ctx:         ctx,
		cancel:      cancel,
		nextBackoff: o.backoffInitial,
	}
	c.cond.L = &c.mu
	return c
}

// Scope returns the scope the cache requests tokens for.
func (c *Cache) Scope() string { return c.scope }

// Token returns a valid token, from the cache when possible. Use its Token field as the
// PostgreSQL password of a new connection.
//
// A cached token before its refresh point is returned at once, lock-free and without
// allocating. Past the refresh point it is still returned while one background refresh
// runs. Without a usable token the caller waits for the single fetch in progress, which
// runs on the cache's own context bounded by the fetch timeout: when ctx ends first,
// the caller gets an error wrapping ctx.Err() while the fetch goes on for the others.
// A fetch still running after the fetch timeout (a credential that ignores its context)
// fails its waiters with a timeout error and is abandoned: a later call starts a new
// one. After a failed fetch and without a usable token, callers get the last error at
// once until the back-off pause ends.
//
// Times are compared on the wall clock, so after a sleep or hibernation longer than the
// token's life Token fetches a new token rather than returning the expired one.
//
// When a server refuses the token, [Cache.Refresh] replaces it.
func (c *Cache) Token(ctx context.Context) (azcore.AccessToken, error) {
	tok, _, err := c.acquire(ctx)
	return tok, err
}

// acquire is [Cache.Token] that also says where the token came from. The driver uses
// the source (through internal/tokenx) to decide whether a login failure is worth one
// retry: only a token that came fromCache can be stale (revoked, or refused by a
// server whose clock differs), so only then is it worth [Cache.Refresh] and another
// login. The source is meaningful only when err is nil.
func (c *Cache) acquire(ctx context.Context) (azcore.AccessToken, source, error) {
	if e := c.cur.Load(); e != nil && c.opts.clock.Now().Before(e.refreshAt) {
		if c.opts.onEvent != nil {
			c.emit(Event{Kind: CacheHit, ExpiresOn: e.tok.ExpiresOn})
		}
		return e.tok, fromCache, nil
	}
	return c.acquireSlow(ctx)
}

// now is the clock's reading without its monotonic part (see entry).
func (c *Cache) now() time.Time { return c.opts.clock.Now().Round(0) }

// enterLocked checks what every slow path checks first; c.mu must be held.
func (c *Cache) enterLocked() error {
	if c.closed {
		return ErrClosed
	}
	if c.cred == nil {
		return fmt.Errorf("pgentra: token cache for scope %q has no credential", c.scope)
	}
	return nil
}

func (c *Cache) acquireSlow(ctx context.Context) (azcore.AccessToken, source, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return azcore.AccessToken{}, fromCache, c.ctxError(err)
	}
	c.mu.Lock()
	if err := c.enterLocked(); err != nil {
		c.mu.Unlock()
		return azcore.AccessToken{}, fromCache, err
	}
	now := c.now()
	reaped := c.reapLocked(now)
	e := c.cur.Load()
	if e != nil && now.Before(e.expireAt) {
		// Fresh (another caller refreshed meanwhile) or stale-but-valid.
		var f *flight
		if !now.Before(e.refreshAt) && c.inflight == nil && !now.Before(c.retryAt) && c.hung < maxCalls {
			f = c.startLocked(true, false)
		}
		c.mu.Unlock()
		c.emitPtr(reaped)
		if f != nil {
			c.launch(ctx, f, Event{Kind: RefreshStart, ExpiresOn: e.tok.ExpiresOn, Background: true})
		}
		c.emit(Event{Kind: CacheHit, ExpiresOn: e.tok.ExpiresOn})
		return e.tok, fromCache, nil
	}
	// No usable token: join the fetch in progress, start one, or refuse.
	f, started, err := c.flightLocked(now, false)
	c.mu.Unlock()
	c.emitPtr(reaped)
	if err != nil {
		c.emit(Event{Kind: BackoffWait, Err: err})
		return azcore.AccessToken{}, fromCache, err
	}
	c.emit(Event{Kind: CacheMiss})
	if started {
		c.launch(ctx, f, Event{Kind: FetchStart})
	}
	return c.wait(ctx, f)
}

// flightLocked returns the flight in progress, or starts one (started), or returns the
// error to give callers at once: during a back-off pause, and while maxCalls GetToken
// calls hang. c.mu must be held.
func (c *Cache) flightLocked(now time.Time, bypass bool) (f *flight, started bool, err error) {
	if c.inflight != nil {
		return c.inflight, false, nil
	}
	if c.lastErr != nil && now.Before(c.retryAt) {
		return nil, false, fmt.Errorf("%w (next attempt in %s)", c.lastErr, c.retryAt.Sub(now).Round(time.Millisecond))
	}
	if c.hung >= maxCalls {
		err := fmt.Errorf("pgentra: acquiring token for scope %q: %d calls to the credential have not returned after the fetch timeout of %s; no new call until one does",
			c.scope, c.hung, c.opts.fetchTimeout)
		if c.lastErr != nil {
			err = fmt.Errorf("%w: %w", err, c.lastErr)
		}
		return nil, false, err
	}
	return c.startLocked(false, bypass), true, nil
}

// startLocked registers a new flight; c.mu must be held and c.closed false. The caller
// must then call launch.
func (c *Cache) startLocked(background, bypass bool) *flight {
	f := &flight{done: make(chan struct{}), background: background, bypass: bypass}
	c.inflight = f
	return f
}

// launch emits f's start event and starts its goroutine. The event comes first, so that
// events are in order; a handler of it that waits for f (Token, say) starts the
// goroutine itself, in wait.
func (c *Cache) launch(ctx context.Context, f *flight, start Event) {
	defer c.ensureLaunched(f)
	start.Background, start.Refresh = f.background, f.bypass
	if fn := c.opts.fetchContext; fn != nil {
		start.Scope = c.scope
		v := fn(ctx, start)
		c.mu.Lock()
		f.values = v
		c.mu.Unlock()
		start.Context = v
	}
	c.emit(start)
}

// ensureLaunched starts f's goroutine unless it runs already or the cache was closed
// before it could start.
func (c *Cache) ensureLaunched(f *flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.launched {
		return
	}
	f.launched = true
	if f.finished { // by Close
		return
	}
	f.ctx, f.cancel = context.WithTimeout(c.ctx, c.opts.fetchTimeout)
	if f.values != nil {
		f.ctx = valuesContext{Context: f.ctx, values: f.values}
	}
	c.running++
	go c.run(f)
}

func (c *Cache) wait(ctx context.Context, f *flight) (azcore.AccessToken, source, error) {
	c.ensureLaunched(f)
	c.mu.Lock()
	fctx := f.ctx // nil when Close finished f before it started
	c.mu.Unlock()
	var timedOut <-chan struct{}
	if fctx != nil {
		timedOut = fctx.Done()
	}
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case <-f.done:
	case <-ctx.Done():
		return azcore.AccessToken{}, fromCache, c.ctxError(ctx.Err())
	case <-timedOut:
		// The fetch timed out (or Close cancelled it): if the credential has not
		// returned yet, abandon its call.
		c.mu.Lock()
		var reaped *Event
		if !f.finished {
			reaped = c.abandonLocked(f, c.now())
		}
		c.mu.Unlock()
		c.emitPtr(reaped)
		<-f.done
	}
	if f.err != nil {
		return azcore.AccessToken{}, fromCache, f.err
	}
	if f.broughtBack {
		return f.tok, fromCache, nil
	}
	return f.tok, fetched, nil
}

// reapLocked abandons the flight in progress if it is past its fetch timeout; it
// returns the event to emit once c.mu is released.
func (c *Cache) reapLocked(now time.Time) *Event {
	if f := c.inflight; f != nil && !f.finished && f.ctx != nil && f.ctx.Err() != nil {
		return c.abandonLocked(f, now)
	}
	return nil
}

// abandonLocked finishes f, whose GetToken call has not returned by its fetch timeout
// (or by Close), with a timeout error for its waiters. The call goes on; its goroutine
// uses a late token only if it is newer than the cached one.
func (c *Cache) abandonLocked(f *flight, now time.Time) *Event {
	var err error
	if c.closed || c.ctx.Err() != nil {
		err = ErrClosed
	} else {
		err = c.failLocked(fmt.Errorf("pgentra: acquiring token for scope %q: no token within the fetch timeout of %s (the call has not returned and is abandoned): %w",
			c.scope, c.opts.fetchTimeout, f.ctx.Err()), now)
		f.hung = true
		c.hung++
		c.cond.Broadcast()
	}
	c.finishLocked(f, azcore.AccessToken{}, err, true)
	if err == ErrClosed {
		return nil
	}
	return &Event{Kind: FetchFailed, Latency: c.opts.fetchTimeout, Err: err, Background: f.background, Refresh: f.bypass, Abandoned: true, Context: f.values}
}

// finishLocked sets f's result and, if wake, wakes its waiters.
func (c *Cache) finishLocked(f *flight, tok azcore.AccessToken, err error, wake bool) {
	if c.inflight == f {
		c.inflight = nil
	}
	f.tok, f.err, f.finished = tok, err, true
	if wake {
		close(f.done)
	}
}

func (c *Cache) ctxError(err error) error {
	return fmt.Errorf("pgentra: waiting for a token for scope %q: %w", c.scope, err)
}

// run makes f's GetToken call, stores the outcome and wakes f's waiters — unless f was
// abandoned meanwhile, in which case a late token replaces the cached one only if it
// expires later.
func (c *Cache) run(f *flight) {
	var (
		tok     azcore.AccessToken
		err     error
		latency time.Duration
	)
	if f.ctx.Err() != nil {
		err = ErrClosed
		if c.ctx.Err() == nil {
			err = fmt.Errorf("pgentra: acquiring token for scope %q: no token within the fetch timeout of %s: %w", c.scope, c.opts.fetchTimeout, f.ctx.Err())
		}
	} else {
		start := time.Now()
		tok, err = c.getToken(f)
		latency = time.Since(start)
	}
	now := c.now()
	if err == nil {
		tok = wallClock(tok)
		err = c.checkToken(tok, now)
	}

	var ev *Event
	wake := false // f's waiters are ours to wake
	c.mu.Lock()
	if !f.finished {
		if c.closed {
			err = ErrClosed // never store a token after Close
		}
		switch {
		case err == nil:
			c.storeLocked(tok, now)
			f.broughtBack = c.refusedTok != "" && tok.Token == c.refusedTok
			ev = &Event{Kind: FetchEnd, Latency: latency, ExpiresOn: tok.ExpiresOn, Background: f.background, Refresh: f.bypass, Context: f.values}
		case err != ErrClosed:
			err = c.failLocked(err, now)
			ev = &Event{Kind: FetchFailed, Latency: latency, Err: err, Background: f.background, Refresh: f.bypass, Context: f.values}
		}
		if err != nil {
			tok = azcore.AccessToken{}
		}
		c.finishLocked(f, tok, err, false)
		wake = true
	} else {
		// Abandoned: a late token is used only if it is newer than the cached one.
		if f.hung {
			c.hung--
		}
		if cur := c.cur.Load(); err == nil && !c.closed && (cur == nil || tok.ExpiresOn.After(cur.tok.ExpiresOn)) {
			c.storeLocked(tok, now)
			ev = &Event{Kind: FetchEnd, Latency: latency, ExpiresOn: tok.ExpiresOn, Background: true}
		}
	}
	c.inHandler++
	c.cond.Broadcast()
	c.mu.Unlock()

	c.emitPtr(ev) // before waking the waiters, so that they see it first
	if wake {
		close(f.done)
	}
	f.cancel()

	c.mu.Lock()
	c.inHandler--
	c.running--
	c.cond.Broadcast()
	c.mu.Unlock()
}

// storeLocked caches tok obtained at now and ends any back-off.
func (c *Cache) storeLocked(tok azcore.AccessToken, now time.Time) {
	c.cur.Store(newEntry(tok, now, c.opts.margin))
	c.lastErr, c.retryAt, c.nextBackoff = nil, time.Time{}, c.opts.backoffInitial
}

// failLocked records a failed fetch and schedules the next attempt after the back-off,
// or after the wait an identity endpoint asked for with Retry-After if that is longer.
// It returns the error to give callers: err, annotated when throttled.
func (c *Cache) failLocked(err error, now time.Time) error {
	pause := jitter(c.nextBackoff)
	if te, ok := throttled(err, now); ok {
		err = te
		pause = max(pause, spread(te.RetryAfter))
	}
	c.lastErr, c.retryAt = err, now.Add(pause)
	c.nextBackoff = min(2*c.nextBackoff, c.opts.backoffMax)
	return err
}

// getToken calls the credential on f's context (the cache's, bounded by the fetch
// timeout) and turns its failures, including a panic, into the cache's error.
func (c *Cache) getToken(f *flight) (tok azcore.AccessToken, err error) {
	ctx := f.ctx
	defer func() {
		if p := recover(); p != nil {
			tok, err = azcore.AccessToken{}, fmt.Errorf("pgentra: acquiring token for scope %q: credential panicked: %v", c.scope, p)
		}
	}()
	tro := c.opts.tro
	tro.Scopes = []string{c.scope} // fresh slice: a credential may keep or modify it
	if f.bypass && tro.Claims == "" && honoursClaims(c.cred) {
		tro.Claims = bypassClaims(c.now())
		tok, err = c.cred.GetToken(ctx, tro)
		if err != nil && ctx.Err() == nil && mentionsClaims(err) {
			// A chain (DefaultAzureCredential) that settled on a CLI credential refuses
			// claims outright: ask once more without them.
			tro.Claims = ""
			tro.Scopes = []string{c.scope}
			tok, err = c.cred.GetToken(ctx, tro)
		}
	} else {
		tok, err = c.cred.GetToken(ctx, tro)
	}
	switch {
	case err == nil:
		return tok, nil
	case c.ctx.Err() != nil:
		return azcore.AccessToken{}, ErrClosed
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		if !errors.Is(err, context.DeadlineExceeded) {
			// Many credentials don't wrap their context's error (azidentity's
			// AuthenticationFailedError has no Unwrap); WithFetchTimeout promises it.
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return azcore.AccessToken{}, fmt.Errorf("pgentra: acquiring token for scope %q: no token within the fetch timeout of %s: %w",
			c.scope, c.opts.fetchTimeout, err)
	default:
		return azcore.AccessToken{}, fmt.Errorf("pgentra: acquiring token for scope %q: %w", c.scope, err)
	}
}

// checkToken rejects tokens that cannot be used, so that they are never cached.
func (c *Cache) checkToken(tok azcore.AccessToken, now time.Time) error {
	switch {
	case tok.Token == "":
		return fmt.Errorf("pgentra: acquiring token for scope %q: credential returned an empty token", c.scope)
	case !tok.ExpiresOn.After(now):
		return fmt.Errorf("pgentra: acquiring token for scope %q: credential returned a token that expired at %s",
			c.scope, tok.ExpiresOn.UTC().Format(time.RFC3339))
	}
	return nil
}

// jitter spreads a back-off pause over [d/2, d], so that many processes failing
// together do not retry together.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d-d/2+1)
}

// spread spreads a wait an endpoint asked for over [d, 1.25 d]: never shorter, and
// processes throttled together do not come back together.
func spread(d time.Duration) time.Duration {
	if d < 4 {
		return d
	}
	return d + rand.N(d/4+1)
}

// Close stops the cache: it drops the token, cancels a fetch in progress (its waiters
// get [ErrClosed]) and waits for the cache's goroutines to end, so that no goroutine of
// the cache outlives Close, with two exceptions that Close cannot help. A credential
// that ignores its context cannot be stopped: Close waits for a call it has just
// cancelled for at most half a second, and not at all for a call already abandoned
// after the fetch timeout; such a call's goroutine ends when the credential returns,
// without touching the cache. And Close does not wait for an event handler that is
// running on a cache goroutine (it may be the caller of Close); that goroutine ends when
// the handler returns. Close may be called from an event handler. It is idempotent and
// always returns nil.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.cur.Store(nil)
		if f := c.inflight; f != nil && !f.finished {
			c.finishLocked(f, azcore.AccessToken{}, ErrClosed, true)
		}
		if c.cancel != nil { // nil in a Cache not made by NewCache
			c.cancel()
		}
	}
	if c.running-c.inHandler-c.hung <= 0 {
		return nil
	}
	over := false
	t := time.AfterFunc(closeGrace, func() {
		c.mu.Lock()
		over = true
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	for c.running-c.inHandler-c.hung > 0 && !over {
		c.cond.Wait()
	}
	return nil
}

func (c *Cache) emit(ev Event) {
	if c.opts.onEvent != nil {
		ev.Scope = c.scope
		c.opts.onEvent(ev)
	}
}

func (c *Cache) emitPtr(ev *Event) {
	if ev != nil {
		c.emit(*ev)
	}
}

// drop forgets the cached token if it is still tok, so that the next call fetches.
// Only the driver's user-name lookup needs it (through internal/tokenx): it reads a
// management-scope token once, and a second identity of the same credential must not
// be answered from the first one's token.
func (c *Cache) drop(tok string) {
	if e := c.cur.Load(); e != nil && tok != "" && e.tok.Token == tok {
		c.cur.CompareAndSwap(e, nil)
	}
}
