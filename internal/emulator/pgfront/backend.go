package pgfront

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maxBackendLoginMsg caps a message from the backend before AuthenticationOk.
const maxBackendLoginMsg = 1 << 20

// backendLogin dials the backend and logs role in with the client's other startup
// parameters, pinned to protocol 3.0. It returns the backend conn (tracked: the
// caller must untrack it) and a reader holding whatever the backend sent after
// AuthenticationOk, which the relay must forward first.
func (f *Front) backendLogin(params map[string]string, role string) (net.Conn, *bufio.Reader, *loginError) {
	d := net.Dialer{Timeout: 10 * time.Second}
	bc, err := d.DialContext(f.ctx, f.cfg.BackendNetwork, f.cfg.BackendAddr)
	if err != nil {
		f.cfg.Logf("pgfront: dial backend %s %s: %v", f.cfg.BackendNetwork, f.cfg.BackendAddr, err)
		return nil, nil, refuse(CodeInternalError, "the emulator could not reach its backend server")
	}
	if !f.track(bc) {
		return nil, nil, refuse(CodeInternalError, "the emulator is shutting down")
	}
	br, lerr := f.startBackend(bc, params, role)
	if lerr != nil {
		f.untrack(bc)
		return nil, nil, lerr
	}
	return bc, br, nil
}

func (f *Front) startBackend(bc net.Conn, params map[string]string, role string) (*bufio.Reader, *loginError) {
	_ = bc.SetDeadline(time.Now().Add(handshakeTimeout))
	sp := make(map[string]string, len(params))
	for k, v := range params {
		// Protocol extensions would make the backend answer NegotiateProtocolVersion.
		if !strings.HasPrefix(k, "_pq_.") {
			sp[k] = v
		}
	}
	sp["user"] = role
	startup, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: sp}).Encode(nil)
	if err != nil {
		return nil, refuse(CodeInternalError, "encode backend startup message: "+err.Error())
	}
	if _, err := bc.Write(startup); err != nil {
		f.cfg.Logf("pgfront: send startup to backend: %v", err)
		return nil, refuse(CodeInternalError, "the emulator's backend server closed the connection")
	}
	br := bufio.NewReader(bc)
	typ, body, err := readMessage(br)
	if err != nil {
		f.cfg.Logf("pgfront: read backend login response: %v", err)
		return nil, refuse(CodeInternalError, "the emulator's backend server closed the connection")
	}
	switch {
	case typ == 'R' && len(body) >= 4 && binary.BigEndian.Uint32(body) == pgproto3.AuthTypeOk:
		_ = bc.SetDeadline(time.Time{})
		return br, nil
	case typ == 'E':
		var e pgproto3.ErrorResponse
		if err := e.Decode(body); err != nil {
			return nil, refuse(CodeInternalError, "decode backend error: "+err.Error())
		}
		return nil, refuse(e.Code, e.Message)
	case typ == 'R' && len(body) >= 4:
		return nil, refuse(CodeInternalError, fmt.Sprintf(
			"the emulator's backend asked for authentication type %d; it must trust the front's socket", binary.BigEndian.Uint32(body)))
	default:
		return nil, refuse(CodeInternalError, fmt.Sprintf("unexpected backend message %q during login", typ))
	}
}

// readMessage reads one typed protocol message.
func readMessage(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n-4 > maxBackendLoginMsg {
		return 0, nil, fmt.Errorf("invalid message length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

// relay copies bytes both ways until either side closes, then closes both. The
// client side cannot hold buffered bytes: a client sends nothing after its password
// until it has heard back.
func (f *Front) relay(client net.Conn, backend net.Conn, fromBackend *bufio.Reader) {
	done := make(chan struct{})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		_, _ = io.Copy(backend, client)
		_ = backend.Close()
	}()
	_, _ = io.Copy(client, fromBackend)
	_ = client.Close()
	_ = backend.Close()
	<-done
}

// forwardCancel sends the client's CancelRequest unchanged to the backend. The client
// got the backend's own BackendKeyData through the relay, so the pair names the
// backend process. Like PostgreSQL, it answers nothing: the caller closes the conn.
func (f *Front) forwardCancel(m *pgproto3.CancelRequest) {
	f.countCancel()
	msg, err := m.Encode(nil)
	if err != nil {
		f.cfg.Logf("pgfront: encode cancel request: %v", err)
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	bc, err := d.DialContext(f.ctx, f.cfg.BackendNetwork, f.cfg.BackendAddr)
	if err != nil {
		f.cfg.Logf("pgfront: dial backend to cancel: %v", err)
		return
	}
	if !f.track(bc) {
		return
	}
	defer f.untrack(bc)
	_ = bc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bc.Write(msg); err != nil {
		f.cfg.Logf("pgfront: forward cancel request: %v", err)
		return
	}
	// The backend closes once it has read the request.
	if _, err := io.Copy(io.Discard, bc); err != nil && !errors.Is(err, net.ErrClosed) {
		f.cfg.Logf("pgfront: wait for backend after cancel: %v", err)
	}
}
