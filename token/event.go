package token

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// EventKind says what happened in a [Cache]; see [Event].
type EventKind int

// The kinds of [Event]. Their String forms are stable snake_case names for logs and
// metric labels.
const (
	// CacheHit: a caller got the cached token (also while a background refresh runs).
	CacheHit EventKind = iota + 1
	// CacheMiss: a caller found no valid token and started a fetch it waits for.
	CacheMiss
	// FetchStart: a foreground fetch (callers waiting) calls GetToken.
	FetchStart
	// FetchEnd: GetToken returned a token; Latency and ExpiresOn are set.
	FetchEnd
	// FetchFailed: GetToken failed (or returned an unusable token); Err and Latency
	// are set. Background refresh failures are reported as this kind too.
	FetchFailed
	// RefreshStart: the cached token passed its refresh point and one background
	// refresh started; callers keep getting the cached token meanwhile.
	RefreshStart
	// BackoffWait: a caller got the last fetch error at once because the cache is
	// pausing after a failure and has no valid token; Err is that error.
	BackoffWait
)

var eventKindNames = [...]string{
	CacheHit:     "cache_hit",
	CacheMiss:    "cache_miss",
	FetchStart:   "fetch_start",
	FetchEnd:     "fetch_end",
	FetchFailed:  "fetch_failed",
	RefreshStart: "refresh_start",
	BackoffWait:  "backoff_wait",
}

// String returns the kind's snake_case name, e.g. "fetch_end".
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event describes one thing a [Cache] did, for observability (see [WithEventHandler]).
// An Event never carries the token string, so it is safe to log as a whole: it
// implements [slog.LogValuer] and [fmt.Stringer].
type Event struct {
	Kind  EventKind
	Scope string
	// Latency is how long GetToken took (FetchEnd, FetchFailed).
	Latency time.Duration
	// ExpiresOn is the expiry of the token involved, when there is one.
	ExpiresOn time.Time
	// Err is the failure (FetchFailed, BackoffWait).
	Err error
	// Background is true for the fetch events of a background refresh, which no
	// caller waits for.
	Background bool
	// Refresh is true for the fetch events of a fetch started by [Cache.Refresh]
	// (a login refused with a cached token), which asks the credential to bypass
	// its own cache.
	Refresh bool
	// Abandoned is true for the FetchFailed of a fetch whose GetToken call did
	// not return within the fetch timeout.
	Abandoned bool
	// Context is, for the fetch events (FetchStart, FetchEnd, FetchFailed) when
	// [WithFetchContext] is set, the context its function returned for this
	// fetch: a tracer finds its span there. Nil otherwise.
	Context context.Context
}

// LogValue renders the event as a slog group with only the fields that are set, so the
// driver can log it with slog.Any("event", ev).
func (e Event) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("kind", e.Kind.String()), slog.String("scope", e.Scope))
	if e.Latency != 0 {
		attrs = append(attrs, slog.Duration("latency", e.Latency))
	}
	if !e.ExpiresOn.IsZero() {
		attrs = append(attrs, slog.Time("expires_on", e.ExpiresOn))
	}
	if e.Background {
		attrs = append(attrs, slog.Bool("background", true))
	}
	if e.Refresh {
		attrs = append(attrs, slog.Bool("refresh", true))
	}
	if e.Abandoned {
		attrs = append(attrs, slog.Bool("abandoned", true))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	return slog.GroupValue(attrs...)
}

// String renders the event on one line, e.g.
// `fetch_end scope="https://…/.default" latency=12ms expires_on=2025-…`.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s scope=%q", e.Kind, e.Scope)
	if e.Latency != 0 {
		fmt.Fprintf(&b, " latency=%s", e.Latency)
	}
	if !e.ExpiresOn.IsZero() {
		fmt.Fprintf(&b, " expires_on=%s", e.ExpiresOn.UTC().Format(time.RFC3339))
	}
	if e.Background {
		b.WriteString(" background=true")
	}
	if e.Refresh {
		b.WriteString(" refresh=true")
	}
	if e.Abandoned {
		b.WriteString(" abandoned=true")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " error=%q", e.Err.Error())
	}
	return b.String()
}

// WithFetchContext sets a function called when a fetch starts (FetchStart, a
// background refresh included), on the goroutine of the caller whose call
// started it, with that caller's context. The values (never the deadline or
// cancellation) of the context it returns are those of the context the
// credential's GetToken call gets, and the fetch's events carry it in
// [Event.Context]: a tracer starts a span there, as a child of the caller's,
// so that the credential's own HTTP spans nest under it, and ends it at
// FetchEnd or FetchFailed. A caller that joins a fetch another caller has just
// started may, rarely, launch it before fn has returned: that fetch's
// GetToken call then does not see fn's values (its events still carry them).
// A fetch cancelled by Close reports no end event. A nil fn is ignored.
func WithFetchContext(fn func(ctx context.Context, start Event) context.Context) Option {
	return func(o *options) {
		if fn != nil {
			o.fetchContext = fn
		}
	}
}

// ExpiresOn returns the expiry of the token the cache holds, and false when it
// holds none (before the first fetch, after Close). It
// never returns the token: a metric of the time left until expiry reads it.
func (c *Cache) ExpiresOn() (time.Time, bool) {
	e := c.cur.Load()
	if e == nil {
		return time.Time{}, false
	}
	return e.tok.ExpiresOn, true
}

// valuesContext is a fetch's context: the cache's deadline and cancellation,
// the values of the context WithFetchContext returned.
type valuesContext struct {
	context.Context
	values context.Context
}

func (v valuesContext) Value(key any) any { return v.values.Value(key) }
