package driver

import (
	"context"
	"net"
	"sync"
	"time"
)

// connectDialer is a pq.DialerContext that bounds a whole connection attempt
// — dial, TLS handshake and authentication — by the caller's context.
//
// pq hands the context to the dial only: without connect_timeout, a server
// that accepts and then stalls (or a middlebox that black-holes the TLS
// handshake) would hang Connect forever. Each dialed conn gets a
// context.AfterFunc that closes it when ctx ends, which makes pq's pending
// read or write fail at once. finish disarms them when Connect returns, so
// the pooled conn is not affected by the caller's context afterwards.
//
// Closing, not a deadline in the past: a TLS write failed by a deadline has
// already used up its record's sequence number, and tls.Conn.Close would then
// send close_notify under the next one, which the server reports as
// "tls: bad record MAC". A closed socket sends nothing more.
type connectDialer struct {
	ctx context.Context // the caller's ctx, not the per-dial one pq derives

	mu    sync.Mutex
	done  bool
	fired bool
	stop  func() bool   // the first dial's watcher: one dial is the common case
	stops []func() bool // further dials (multi-host, sslmode prefer/allow)
}

// dialer is shared: net.Dialer is safe for concurrent use, and a per-connect
// copy would cost an allocation on every connect.
var dialer net.Dialer

func (d *connectDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(d.ctx, network, address)
}

func (d *connectDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d *connectDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := dialer.DialContext(ctx, network, address)
	if err != nil || d.ctx.Done() == nil {
		return c, err
	}
	d.mu.Lock()
	finished := d.done
	d.mu.Unlock()
	if finished {
		// pq keeps the dialer for its cancel requests, long after Connect
		// returned: they have their own timeout and must not watch the
		// caller's old context.
		return c, nil
	}
	stop := context.AfterFunc(d.ctx, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.done {
			d.fired = true
			_ = c.Close()
		}
	})
	d.mu.Lock()
	if d.stop == nil {
		d.stop = stop
	} else {
		d.stops = append(d.stops, stop)
	}
	d.mu.Unlock()
	return c, nil
}

// finish disarms every watcher and reports whether one fired, in which case
// the connection (if any) is closed and must be discarded.
func (d *connectDialer) finish() (fired bool) {
	d.mu.Lock()
	d.done = true
	fired = d.fired
	first, stops := d.stop, d.stops
	d.mu.Unlock()
	if first != nil {
		first()
	}
	for _, stop := range stops {
		stop()
	}
	return fired
}
