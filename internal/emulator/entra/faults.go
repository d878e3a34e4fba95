package entra

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fault is what a server does to one token request instead of (or before)
// answering normally. The zero Fault means "answer normally".
type Fault struct {
	// Status, if non-zero, answers with this HTTP status (429, 500, 503, …)
	// and an error body in the endpoint's format instead of a token.
	Status int
	// Delay waits this long before answering (or before Status), cut short
	// if the client gives up or the server closes.
	Delay time.Duration
	// Hang never answers: the handler blocks until the client's request
	// context ends or the server is closed.
	Hang bool
	// Drop closes the TCP connection without any response.
	Drop bool
	// Lifetime, if positive, sets the lifetime of the token issued by this
	// request (when it succeeds).
	Lifetime time.Duration
	// RetryAfter, if positive, adds Retry-After (whole seconds, rounded up)
	// and retry-after-ms headers to a Status answer; azcore honours the
	// latter, capped by RetryOptions.MaxRetryDelay.
	RetryAfter time.Duration
	// SecondsOnly sends RetryAfter as the Retry-After header alone (whole seconds),
	// without retry-after-ms: what a throttling gateway in front of IMDS answers.
	SecondsOnly bool
}

// Throttled is IMDS (or App Service) throttling a client: 429 Too Many Requests with
// "Retry-After: <seconds>" and no other hint. azcore's retry policy gives up at once
// on a Retry-After beyond its cap (25 s for managed identity), so the error reaches
// the caller of GetToken, which must honour the wait itself; Throttled(time.Minute)
// is the case of issue 14 ("asked for a minute's silence").
func Throttled(retryAfter time.Duration) Fault {
	return Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter, SecondsOnly: true}
}

// faults is the per-server fault script: a queue consumed one fault per token
// request, then a standing default.
type faults struct {
	mu    sync.Mutex
	queue []Fault
	def   Fault
}

func (f *faults) script(fs []Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, fs...)
}

func (f *faults) setDefault(d Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.def = d
}

func (f *faults) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queue)
}

func (f *faults) next() Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return f.def
	}
	n := f.queue[0]
	f.queue = f.queue[1:]
	return n
}

// apply carries out the disruptive part of fault. It returns true when the
// request has been dealt with (hung, dropped, abandoned or answered with an
// error by writeErr) and the handler must not answer it.
func (fl Fault) apply(w http.ResponseWriter, r *http.Request, closing <-chan struct{}, writeErr func(http.ResponseWriter, int)) bool {
	if fl.Delay > 0 {
		tm := time.NewTimer(fl.Delay)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-r.Context().Done():
			return true
		case <-closing:
			return true
		}
	}
	switch {
	case fl.Hang:
		select {
		case <-r.Context().Done():
		case <-closing:
		}
		return true
	case fl.Drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		// Not reachable with httptest's HTTP/1.1 servers; answer rather than hang.
		writeErr(w, http.StatusBadGateway)
		return true
	case fl.Status != 0:
		if fl.RetryAfter > 0 {
			secs := int64((fl.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			if !fl.SecondsOnly {
				w.Header().Set("retry-after-ms", strconv.FormatInt(fl.RetryAfter.Milliseconds(), 10))
			}
		}
		writeErr(w, fl.Status)
		return true
	}
	return false
}

// counters counts token requests, in total and per principal object ID.
type counters struct {
	mu    sync.Mutex
	total int
	per   map[string]int
}

func (c *counters) add(oid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	if oid != "" {
		if c.per == nil {
			c.per = map[string]int{}
		}
		c.per[oid]++
	}
}

func (c *counters) get(oid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if oid == "" {
		return c.total
	}
	return c.per[oid]
}

// closer is a channel closed when a server shuts down, releasing hung handlers.
type closer struct {
	once sync.Once
	ch   chan struct{}
}

func newCloser() *closer { return &closer{ch: make(chan struct{})} }

func (c *closer) close() { c.once.Do(func() { close(c.ch) }) }
