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

// ErrClosed is returned by [Cache.Token] and [Cache.Acquire] after [Cache.Close], and to
// callers still waiting for a fetch when Close is called.
var ErrClosed = errors.New("pgentra: token cache closed")

// Source says where a token returned by [Cache.Acquire] came from.
type Source int

const (
	// FromCache: the token was already cached when the call came in, so a login
	// failure with it may be cured by [Cache.Invalidate] and one retry.
	FromCache Source = iota
	// Fetched: the token was obtained from the credential while this call waited, so
	// it is as fresh as it gets and retrying with another one is pointless.
	Fetched
)

// String returns "cache" or "fetched".
func (s Source) String() string {
	switch s {
	case FromCache:
		return "cache"
	case Fetched:
		return "fetched"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// entry is an immutable cached token with its precomputed deadlines.
type entry struct {
	tok azcore.AccessToken
	// refreshAt: from here a background refresh is due (the token is still served).
	refreshAt time.Time
	// expireAt: from here the token is treated as expired and callers must wait.
	expireAt time.Time
}

// newEntry computes the deadlines of tok obtained at now (DESIGN §7). The caller
// guarantees tok.ExpiresOn is after now.
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
	return &entry{tok: tok, refreshAt: refreshAt, expireAt: expireAt}
}

// flight is one GetToken call; its result fields are written before done is closed.
type flight struct {
	done       chan struct{}
	background bool
	bypass     bool // asks the credential to skip its own cache (Refresh)
	tok        azcore.AccessToken
	err        error
}

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

	ctx       context.Context // the fetches' parent; cancelled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // fetch goroutines
	closeOnce sync.Once

	mu          sync.Mutex
	closed      bool
	inflight    *flight
	lastErr     error     // of the last failed fetch, until a success
	retryAt     time.Time // no fetch before this (back-off)
	nextBackoff time.Duration

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
	return &Cache{
		cred:        cred,
		scope:       scope,
		opts:        o,
		ctx:         ctx,
		cancel:      cancel,
		nextBackoff: o.backoffInitial,
	}
}

// Scope returns the scope the cache requests tokens for.
func (c *Cache) Scope() string { return c.scope }

// Token returns a valid token, from the cache when possible; see [Cache.Acquire]. Use
// its Token field as the PostgreSQL password of a new connection.
func (c *Cache) Token(ctx context.Context) (azcore.AccessToken, error) {
	tok, _, err := c.Acquire(ctx)
	return tok, err
}

// Acquire returns a valid token and where it came from. The driver uses the [Source] to
// decide whether a login failure is worth one retry: only a token that came [FromCache]
// can be stale (revoked, or rejected by a server whose clock differs), so only then is
// it worth [Cache.Invalidate] and another Acquire.
//
// A cached token before its refresh point is returned at once, lock-free and without
// allocating. Past the refresh point it is still returned while one background refresh
// runs. Without a usable token the caller waits for the single fetch in progress, which
// runs on the cache's own context bounded by the fetch timeout: when ctx ends first,
// the caller gets an error wrapping ctx.Err() while the fetch goes on for the others.
// After a failed fetch and without a usable token, callers get the last error at once
// until the back-off pause ends. The Source is meaningful only when err is nil.
func (c *Cache) Acquire(ctx context.Context) (azcore.AccessToken, Source, error) {
	if e := c.cur.Load(); e != nil && c.opts.clock.Now().Before(e.refreshAt) {
		if c.opts.onEvent != nil {
			c.emit(Event{Kind: CacheHit, ExpiresOn: e.tok.ExpiresOn})
		}
		return e.tok, FromCache, nil
	}
	return c.acquireSlow(ctx)
}

func (c *Cache) acquireSlow(ctx context.Context) (azcore.AccessToken, Source, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return azcore.AccessToken{}, FromCache, c.ctxError(err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return azcore.AccessToken{}, FromCache, ErrClosed
	}
	if c.cred == nil {
		c.mu.Unlock()
		return azcore.AccessToken{}, FromCache, fmt.Errorf("pgentra: token cache for scope %q has no credential", c.scope)
	}
	now := c.opts.clock.Now()
	e := c.cur.Load()
	if e != nil && now.Before(e.expireAt) {
		// Fresh (another caller refreshed meanwhile) or stale-but-valid.
		var f *flight
		if !now.Before(e.refreshAt) && c.inflight == nil && !now.Before(c.retryAt) {
			f = c.startLocked(true)
		}
		c.mu.Unlock()
		if f != nil {
			c.emit(Event{Kind: RefreshStart, ExpiresOn: e.tok.ExpiresOn, Background: true})
			go c.fetch(f)
		}
		c.emit(Event{Kind: CacheHit, ExpiresOn: e.tok.ExpiresOn})
		return e.tok, FromCache, nil
	}
	// No usable token: join the fetch in progress, start one, or refuse during back-off.
	f := c.inflight
	started := false
	if f == nil {
		if c.lastErr != nil && now.Before(c.retryAt) {
			err, wait := c.lastErr, c.retryAt.Sub(now)
			c.mu.Unlock()
			c.emit(Event{Kind: BackoffWait, Err: err})
			return azcore.AccessToken{}, FromCache,
				fmt.Errorf("%w (next attempt in %s)", err, wait.Round(time.Millisecond))
		}
		f = c.startLocked(false)
		started = true
	}
	c.mu.Unlock()
	c.emit(Event{Kind: CacheMiss})
	if started {
		c.emit(Event{Kind: FetchStart})
		go c.fetch(f)
	}
	return c.wait(ctx, f)
}

// startLocked registers a new flight; c.mu must be held and c.closed false, so that
// wg.Add never races with Close's wg.Wait.
func (c *Cache) startLocked(background bool) *flight {
	f := &flight{done: make(chan struct{}), background: background}
	c.inflight = f
	c.wg.Add(1)
	return f
}

func (c *Cache) wait(ctx context.Context, f *flight) (azcore.AccessToken, Source, error) {
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case <-f.done:
		if f.err != nil {
			return azcore.AccessToken{}, FromCache, f.err
		}
		return f.tok, Fetched, nil
	case <-ctx.Done():
		return azcore.AccessToken{}, FromCache, c.ctxError(ctx.Err())
	case <-c.ctx.Done():
		return azcore.AccessToken{}, FromCache, ErrClosed
	}
}

func (c *Cache) ctxError(err error) error {
	return fmt.Errorf("pgentra: waiting for a token for scope %q: %w", c.scope, err)
}

// fetch runs one GetToken call for f, stores the outcome and wakes f's waiters.
func (c *Cache) fetch(f *flight) {
	defer c.wg.Done()
	var (
		tok     azcore.AccessToken
		err     error
		latency time.Duration
	)
	if c.ctx.Err() != nil {
		err = ErrClosed
	} else {
		start := time.Now()
		tok, err = c.getToken(f.bypass)
		latency = time.Since(start)
	}
	now := c.opts.clock.Now()
	if err == nil {
		err = c.checkToken(tok, now)
	}

	var backoff time.Duration
	c.mu.Lock()
	if c.closed {
		err = ErrClosed // never store a token after Close
	}
	if err == nil {
		c.cur.Store(newEntry(tok, now, c.opts.margin))
		c.lastErr, c.retryAt, c.nextBackoff = nil, time.Time{}, c.opts.backoffInitial
	} else if err != ErrClosed {
		backoff = jitter(c.nextBackoff)
		c.lastErr, c.retryAt = err, now.Add(backoff)
		c.nextBackoff = min(2*c.nextBackoff, c.opts.backoffMax)
	}
	c.inflight = nil
	c.mu.Unlock()

	if err == nil {
		f.tok = tok
		c.emit(Event{Kind: FetchEnd, Latency: latency, ExpiresOn: tok.ExpiresOn, Background: f.background})
	} else {
		f.err = err
		if err != ErrClosed {
			c.emit(Event{Kind: FetchFailed, Latency: latency, Err: err, Background: f.background})
		}
	}
	close(f.done)
}

// getToken calls the credential on the cache's context bounded by the fetch timeout and
// turns its failures, including a panic, into the cache's error.
func (c *Cache) getToken(bypass bool) (tok azcore.AccessToken, err error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.fetchTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			tok, err = azcore.AccessToken{}, fmt.Errorf("pgentra: acquiring token for scope %q: credential panicked: %v", c.scope, p)
		}
	}()
	tro := c.opts.tro
	tro.Scopes = []string{c.scope} // fresh slice: a credential may keep or modify it
	if bypass && tro.Claims == "" && honoursClaims(c.cred) {
		tro.Claims = bypassClaims(c.opts.clock.Now())
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

// Invalidate drops the cached token if it is still the current one, so that the next
// call fetches a new token. The driver calls it with the token a login was refused with;
// when a newer token has been cached meanwhile, nothing happens, so a slow retry never
// throws away a good token.
func (c *Cache) Invalidate(token string) {
	e := c.cur.Load()
	if e == nil || token == "" || e.tok.Token != token {
		return
	}
	if c.cur.CompareAndSwap(e, nil) {
		c.emit(Event{Kind: Invalidated, ExpiresOn: e.tok.ExpiresOn})
	}
}

// Close stops the cache: it drops the token, cancels a fetch in progress (its waiters
// get [ErrClosed]) and waits for the fetch goroutine to return, so no goroutine of the
// cache outlives Close. A credential that ignores its context delays Close until it
// returns (azidentity credentials honour it). Close is idempotent and always returns nil.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.cur.Store(nil)
		c.mu.Unlock()
		c.cancel()
	})
	c.wg.Wait()
	return nil
}

func (c *Cache) emit(ev Event) {
	if c.opts.onEvent != nil {
		ev.Scope = c.scope
		c.opts.onEvent(ev)
	}
}
