package emulator_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgentra/pgentra/driver"
)

// TestScenarioAbandonedLoginNoBadRecordMAC: a Connect whose context ends
// just as the server asks for the password (a load test's end, a caller's
// deadline) must end the TLS session cleanly: the server may see an
// abandoned login, never "tls: bad record MAC".
//
// When the driver abandoned a login by moving the socket's deadline into the
// past, lib/pq's password write failed before sending anything, after
// crypto/tls had sealed the record (its sequence number used up); closing
// the TLS conn then sent close_notify with the next sequence number, which
// the server cannot authenticate (see pgfront.TestAbandonedLoginBadRecordMAC
// for the mechanism alone).
//
// A TLS-record-aware proxy cancels each Connect's context right after it has
// relayed the server's first record following the client's StartupMessage —
// the password request — so the cancellation races the password write.
func TestScenarioAbandonedLoginNoBadRecordMAC(t *testing.T) {
	env := startEnv(t)
	p := e67Principal(t, env, "id-abandon", true)
	c, err := driver.NewConnector(e67MIDSN(env, p, ""), driver.WithClientOptions(env.ClientOptions()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Warm the token cache and the role lookup: from here every Connect goes
	// straight to the server.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	conn, err := c.Connect(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()

	px := startRecordProxy(t, env.Front.Addr())
	pc, err := driver.NewConnector(strings.Replace(e67MIDSN(env, p, p.Name),
		fmt.Sprintf("port=%d", env.Front.Port()), fmt.Sprintf("port=%d", px.port()), 1),
		driver.WithTokenCache(c.TokenCache()))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	env.Front.Reset()

	const attempts = 200
	abandoned := 0
	for range attempts {
		ctx, cancel := context.WithCancel(context.Background())
		px.arm(cancel, time.Duration(rand.N(50))*time.Microsecond)
		conn, err := pc.Connect(ctx)
		cancel()
		if err == nil {
			conn.Close() // the password got through before the cancellation
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Connect: %v; want it to wrap context.Canceled", err)
		}
		abandoned++
	}
	mac, beforePassword := 0, 0
	deadline := time.Now().Add(20 * time.Second)
	var logins []string
	for {
		// The front records a login once it has read the client's answer: wait
		// until every attempt is accounted for.
		ls := env.Front.Logins()
		if len(ls) >= attempts || time.Now().After(deadline) {
			logins = logins[:0]
			for _, l := range ls {
				if !l.OK {
					logins = append(logins, l.Code+" "+l.Message)
				}
				if strings.Contains(l.Message, "bad record MAC") {
					mac++
				}
				if strings.HasPrefix(l.Message, "expected password response") {
					beforePassword++
				}
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d connects: %d abandoned by the context, %d abandoned before the password reached the front, %d bad record MAC at the front",
		attempts, abandoned, beforePassword, mac)
	if mac != 0 {
		t.Errorf("the front saw %d TLS records it could not authenticate (bad record MAC) from abandoned logins:\n%s", mac, strings.Join(logins, "\n"))
	}
	// The cancellation must have hit the password exchange, or this proves nothing.
	if beforePassword == 0 {
		t.Errorf("no login was abandoned before its password was sent: the race was not exercised\n%s", strings.Join(logins, "\n"))
	}
}

// recordProxy relays TCP connections to a PostgreSQL front and watches the
// TLS records (5-byte headers) going both ways. Once the client has sent its
// second encrypted record (TLS 1.3: Finished, then StartupMessage), the next
// server record is the password request: after relaying it, the proxy calls
// the armed cancel function after the armed delay.
type recordProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	cancel context.CancelFunc
	delay  time.Duration
}

func startRecordProxy(t *testing.T, target string) *recordProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &recordProxy{ln: ln, target: target}
	px.wg.Add(1)
	go px.accept()
	t.Cleanup(func() { ln.Close(); px.wg.Wait() })
	return px
}

func (px *recordProxy) port() int { return px.ln.Addr().(*net.TCPAddr).Port }

// arm sets the cancel function for the next connection.
func (px *recordProxy) arm(cancel context.CancelFunc, delay time.Duration) {
	px.mu.Lock()
	px.cancel, px.delay = cancel, delay
	px.mu.Unlock()
}

func (px *recordProxy) accept() {
	defer px.wg.Done()
	for {
		cc, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		cancel, delay := px.cancel, px.delay
		px.cancel = nil
		px.mu.Unlock()
		px.wg.Add(1)
		go func() {
			defer px.wg.Done()
			px.relay(cc, cancel, delay)
		}()
	}
}

func (px *recordProxy) relay(cc net.Conn, cancel context.CancelFunc, delay time.Duration) {
	defer cc.Close()
	sc, err := net.DialTimeout("tcp", px.target, 10*time.Second)
	if err != nil {
		return
	}
	defer sc.Close()
	var clientRecords atomic.Int32 // encrypted (type 23) records from the client
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyRecords(sc, cc, func(typ byte) {
			if typ == 23 {
				clientRecords.Add(1)
			}
		})
		sc.(*net.TCPConn).CloseWrite()
	}()
	fired := false
	copyRecords(cc, sc, func(typ byte) {
		if !fired && cancel != nil && typ == 23 && clientRecords.Load() >= 2 {
			fired = true
			if delay > 0 {
				time.Sleep(delay)
			}
			cancel()
		}
	})
	cc.(*net.TCPConn).CloseWrite()
	<-done
}

// copyRecords copies src to dst. The first byte (the answer to SSLRequest,
// or the request itself) goes alone; then whole TLS records, after each of
// which relayed is called with the record's type.
func copyRecords(dst io.Writer, src io.Reader, relayed func(typ byte)) {
	// The client's SSLRequest is 8 bytes, the server's answer 1.
	first := make([]byte, 1)
	if _, err := io.ReadFull(src, first); err != nil {
		return
	}
	if _, err := dst.Write(first); err != nil {
		return
	}
	if first[0] == 0 { // the client's SSLRequest: length 8, 7 bytes left
		rest := make([]byte, 7)
		if _, err := io.ReadFull(src, rest); err != nil {
			return
		}
		if _, err := dst.Write(rest); err != nil {
			return
		}
	}
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(src, hdr); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:5]))
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		if _, err := dst.Write(append(hdr, body...)); err != nil {
			return
		}
		relayed(hdr[0])
	}
}
