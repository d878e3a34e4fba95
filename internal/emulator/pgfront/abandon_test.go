package pgfront_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgentra/pgentra/internal/emulator/pgfront"
)

// TestAbandonedLoginBadRecordMAC explains the "08P01 expected password
// response: local error: tls: bad record MAC" that the front logs when a
// client gives up a login while it is about to send its password.
//
// A client that abandons a connect by moving the socket's deadline into the
// past (what a context watcher does) makes its next TLS write fail before a
// byte is sent — but crypto/tls has already sealed that record, using up its
// sequence number. tls.Conn.Close then resets the write deadline and sends
// close_notify sealed with the next sequence number; the server, still
// expecting the lost record's number, cannot authenticate it: "bad record
// MAC". Nothing was corrupted; the login was abandoned by the client. Closing
// the socket instead makes Close send nothing, and the server sees a plain
// end of stream.
func TestAbandonedLoginBadRecordMAC(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name    string
		abandon func(raw net.Conn)
		want    string // in the front's refusal
		notWant string
	}{
		{"deadline_in_the_past", func(raw net.Conn) { _ = raw.SetDeadline(time.Unix(1, 0)) }, "bad record MAC", ""},
		{"socket_closed", func(raw net.Conn) { _ = raw.Close() }, "EOF", "bad record MAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.front.Reset()
			werr := abandonBeforePassword(t, e, tc.abandon)
			if werr == nil {
				t.Fatal("the password was written after the login was abandoned")
			}
			l := waitLogin(t, e.front)
			t.Logf("client's write: %v; front: %s %s", werr, l.Code, l.Message)
			if l.OK || l.Code != pgfront.CodeProtocolViolation || !strings.Contains(l.Message, tc.want) {
				t.Errorf("front recorded %+v; want %s with %q", l, pgfront.CodeProtocolViolation, tc.want)
			}
			if tc.notWant != "" && strings.Contains(l.Message, tc.notWant) {
				t.Errorf("front recorded %q", l.Message)
			}
			if n := len(e.front.Passwords()); n != 0 {
				t.Errorf("the front received %d passwords from an abandoned login", n)
			}
		})
	}
}

// abandonBeforePassword logs in over TLS up to the password request, calls
// abandon on the TCP conn, then tries to send a password and closes the TLS
// conn as lib/pq does when a connect fails. It returns the write's error.
func abandonBeforePassword(t *testing.T, e *env, abandon func(raw net.Conn)) error {
	t.Helper()
	raw, err := net.DialTimeout("tcp", e.front.Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	fe := pgproto3.NewFrontend(raw, raw)
	fe.Send(&pgproto3.SSLRequest{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(raw, b); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest answered %q (%v)", b, err)
	}
	pemCA, err := os.ReadFile(e.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemCA)
	tc := tls.Client(raw, &tls.Config{ServerName: "localhost", RootCAs: roots})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	fe = pgproto3.NewFrontend(tc, tc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "abandoned", "database": "postgres"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := msg.(*pgproto3.AuthenticationCleartextPassword); !ok {
		t.Fatalf("front sent %T; want a password request", msg)
	}
	abandon(raw)
	fe.Send(&pgproto3.PasswordMessage{Password: "never-sent"})
	werr := fe.Flush()
	_ = tc.Close()
	return werr
}

// waitLogin waits for the front to record one login and returns it.
func waitLogin(t *testing.T, f *pgfront.Front) pgfront.Login {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l := f.Logins(); len(l) > 0 {
			if len(l) != 1 {
				t.Errorf("front recorded %d logins; want 1", len(l))
			}
			return l[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("the front recorded no login")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
