package driver

import (
	"context"
	"testing"
	"time"

	"github.com/lib/pq"
)

// BenchmarkListenerNotify is the notification latency of issue 12: one
// NOTIFY from another session, then the wait until it arrives on the
// Listener's Notify channel — pq.NewListener (static password) against
// driver.NewListener (token from a cache) on the same server in the same
// run. pq's ListenerConn does the work in both, so they should agree within
// noise. Run it with:
//
//	go test -run '^$' -bench '^BenchmarkListenerNotify$' -benchtime 2000x -count 6 ./driver
func BenchmarkListenerNotify(b *testing.B) {
	e := setupBench(b)
	for _, name := range benchDrivers("pq", "pgentra") {
		b.Run("driver="+name, func(b *testing.B) {
			var (
				notify <-chan *pq.Notification
				listen func(string) error
			)
			switch name {
			case "pq":
				l := pq.NewListener(e.dsn(benchJWT), time.Second, time.Minute, nil)
				b.Cleanup(func() { l.Close() })
				notify, listen = l.Notify, l.Listen
			default:
				l, err := NewListener(e.dsn(""), time.Second, time.Minute, nil, WithCredential(&benchCredential{}))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { l.Close() })
				notify, listen = l.Notify, l.Listen
			}
			if err := listen("bench"); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			sender, err := e.admin.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer sender.Close()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sender.ExecContext(ctx, "NOTIFY bench"); err != nil {
					b.Fatal(err)
				}
				for n := range notify {
					if n != nil {
						break
					}
				}
			}
		})
	}
}

// BenchmarkListenerNotifyPaired measures both Listeners on the same
// notifications: a pq.Listener and a pgentra Listener LISTEN on one channel,
// each NOTIFY reaches both, and each one's time from just before the NOTIFY
// to its arrival on Notify is reported (pq-ns/notify, pgentra-ns/notify), so
// both see the same moment of a loaded machine. The server signals its
// listening backends one after the other; benchDrivers' order (reversed by
// PGENTRA_BENCH_REVERSE) decides which Listener connects first, so alternate
// it between runs.
//
//	go test -run '^$' -bench '^BenchmarkListenerNotifyPaired$' -benchtime 3000x ./driver
func BenchmarkListenerNotifyPaired(b *testing.B) {
	e := setupBench(b)
	got := map[string]chan time.Time{}
	for _, name := range benchDrivers("pq", "pgentra") {
		var notify <-chan *pq.Notification
		switch name {
		case "pq":
			l := pq.NewListener(e.dsn(benchJWT), time.Second, time.Minute, nil)
			b.Cleanup(func() { l.Close() })
			if err := l.Listen("paired"); err != nil {
				b.Fatal(err)
			}
			notify = l.Notify
		default:
			l, err := NewListener(e.dsn(""), time.Second, time.Minute, nil, WithCredential(&benchCredential{}))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { l.Close() })
			if err := l.Listen("paired"); err != nil {
				b.Fatal(err)
			}
			notify = l.Notify
		}
		ch := make(chan time.Time, 1)
		got[name] = ch
		go func() {
			for n := range notify {
				if n != nil {
					ch <- time.Now()
				}
			}
		}()
	}
	ctx := context.Background()
	sender, err := e.admin.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer sender.Close()
	var pqTotal, pgTotal time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := sender.ExecContext(ctx, "NOTIFY paired"); err != nil {
			b.Fatal(err)
		}
		pqTotal += (<-got["pq"]).Sub(t0)
		pgTotal += (<-got["pgentra"]).Sub(t0)
	}
	b.ReportMetric(float64(pqTotal.Nanoseconds())/float64(b.N), "pq-ns/notify")
	b.ReportMetric(float64(pgTotal.Nanoseconds())/float64(b.N), "pgentra-ns/notify")
	b.ReportMetric(float64(pgTotal)/float64(pqTotal), "pgentra/pq")
}
