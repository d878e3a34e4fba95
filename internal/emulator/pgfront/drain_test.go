package pgfront

import (
	"sync"
	"testing"
)

// TestDrainLosesNothing: logins and passwords recorded while a test drains
// the recorder are all seen, once. Reading with Logins and then calling
// Reset loses those recorded in between (a load test counted 942 logins for
// 946 operations that way).
func TestDrainLosesNothing(t *testing.T) {
	f := &Front{cfg: Config{Logf: func(string, ...any) {}}}
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				f.recordPassword("p")
				f.recordLogin(Login{OK: true})
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	pws, logins := 0, 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		p, l := f.Drain()
		pws += len(p)
		logins += len(l)
	}
	if want := writers * each; pws != want || logins != want {
		t.Fatalf("drained %d passwords and %d logins, want %d each", pws, logins, want)
	}
}
