package token

import (
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
	// Invalidated: [Cache.Invalidate] dropped the current token.
	Invalidated
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
	Invalidated:  "invalidated",
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
}

// LogValue renders the event as a slog group with only the fields that are set, so the
// driver can log it with slog.Any("event", ev).
func (e Event) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 6)
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
	if e.Err != nil {
		fmt.Fprintf(&b, " error=%q", e.Err.Error())
	}
	return b.String()
}
