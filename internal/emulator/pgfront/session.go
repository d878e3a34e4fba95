package pgfront

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

const (
	// handshakeTimeout bounds everything before the relay starts (TLS, startup,
	// password, registry lookup, backend login), so a stalled client or backend
	// cannot pin a goroutine.
	handshakeTimeout = 30 * time.Second
	// maxBodyLen caps client messages during login. Entra tokens are a few KB.
	maxBodyLen = 64 << 10
)

// session is one client connection during login.
type session struct {
	f     *Front
	raw   net.Conn // the accepted TCP conn
	conn  net.Conn // raw, or the TLS conn on top of it
	be    *pgproto3.Backend
	login Login
}

// serve runs the login of one accepted connection and, when it succeeds, the relay.
func (f *Front) serve(raw net.Conn) {
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	s := &session{f: f, raw: raw, conn: raw}
	s.newBackend()

	params, ok := s.negotiate()
	if !ok {
		return
	}
	s.login.User = params["user"]
	s.login.Database = params["database"]
	role, lerr := s.authenticate(params)
	if lerr != nil {
		s.fail(lerr)
		return
	}
	bc, rest, lerr := f.backendLogin(params, role)
	if lerr != nil {
		s.fail(lerr)
		return
	}
	defer f.untrack(bc)
	// The client learns it is logged in only now, when the backend has accepted the
	// role; the backend's own messages (ParameterStatus, BackendKeyData,
	// ReadyForQuery, or a FATAL such as an unknown database) follow through the relay.
	s.be.Send(&pgproto3.AuthenticationOk{})
	if err := s.be.Flush(); err != nil {
		s.login.Code, s.login.Message = CodeInternalError, "send AuthenticationOk: "+err.Error()
		f.recordLogin(s.login)
		return
	}
	s.login.OK = true
	f.recordLogin(s.login)
	_ = raw.SetDeadline(time.Time{})
	f.relay(s.conn, bc, rest)
}

func (s *session) newBackend() {
	s.be = pgproto3.NewBackend(s.conn, s.conn)
	s.be.SetMaxBodyLen(maxBodyLen)
}

// negotiate handles SSLRequest, GSSEncRequest and CancelRequest until the client sends
// its StartupMessage, and returns a copy of the startup parameters (pgproto3 reuses
// the message). ok is false when the connection is done (cancel forwarded, error).
func (s *session) negotiate() (params map[string]string, ok bool) {
	for {
		msg, err := s.be.ReceiveStartupMessage()
		if err != nil {
			s.f.cfg.Logf("pgfront: read startup message from %s: %v", s.raw.RemoteAddr(), err)
			return nil, false
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if s.login.TLS {
				s.sendError(CodeProtocolViolation, "SSLRequest on an encrypted connection")
				return nil, false
			}
			if s.f.cfg.TLS == nil {
				if _, err := s.conn.Write([]byte{'N'}); err != nil {
					return nil, false
				}
				continue
			}
			if _, err := s.conn.Write([]byte{'S'}); err != nil {
				return nil, false
			}
			tc := tls.Server(s.raw, s.f.cfg.TLS)
			if err := tc.HandshakeContext(s.f.ctx); err != nil {
				s.f.cfg.Logf("pgfront: TLS handshake with %s: %v", s.raw.RemoteAddr(), err)
				return nil, false
			}
			s.conn = tc
			s.login.TLS = true
			s.login.ServerName = tc.ConnectionState().ServerName
			// The old Backend's reader wraps the raw conn: start over on the TLS conn.
			s.newBackend()
		case *pgproto3.GSSEncRequest:
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return nil, false
			}
		case *pgproto3.CancelRequest:
			s.f.forwardCancel(m)
			return nil, false
		case *pgproto3.StartupMessage:
			return maps.Clone(m.Parameters), true
		default:
			s.sendError(CodeProtocolViolation, fmt.Sprintf("unexpected startup message %T", msg))
			return nil, false
		}
	}
}

// authenticate asks for the password and checks it as Azure would; it returns the
// role to log in as.
func (s *session) authenticate(params map[string]string) (string, *loginError) {
	cfg := &s.f.cfg
	if s.login.User == "" {
		return "", refuse(CodeInvalidAuthorization, MsgNoUser)
	}
	if cfg.RequireTLS && !s.login.TLS {
		host, _, _ := net.SplitHostPort(s.raw.RemoteAddr().String())
		db := params["database"]
		if db == "" {
			db = s.login.User
		}
		return "", refuse(CodeInvalidAuthorization, MsgNoEncryption(host, s.login.User, db))
	}
	s.be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := s.be.Flush(); err != nil {
		return "", refuse(CodeInternalError, "send password request: "+err.Error())
	}
	if err := s.be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return "", refuse(CodeInternalError, err.Error())
	}
	msg, err := s.be.Receive()
	if err != nil {
		return "", refuse(CodeProtocolViolation, "expected password response: "+err.Error())
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return "", refuse(CodeProtocolViolation, fmt.Sprintf("expected password response, got %T", msg))
	}
	s.f.recordPassword(pw.Password)

	id, lerr := cfg.checkToken(pw.Password, cfg.Now())
	if lerr != nil {
		return "", lerr
	}
	ctx, cancel := context.WithTimeout(s.f.ctx, handshakeTimeout)
	defer cancel()
	m, found, err := lookupRole(ctx, cfg.AdminDB, s.login.User, id.oid)
	if err != nil {
		s.f.cfg.Logf("pgfront: %v", err)
		return "", refuse(CodeInternalError, "could not look up the Microsoft Entra principal registry")
	}
	if lerr := authorize(s.login.User, m, found, id); lerr != nil {
		return "", lerr
	}
	return s.login.User, nil
}

// fail records the refusal and sends it as a FATAL ErrorResponse.
func (s *session) fail(e *loginError) {
	s.login.Code, s.login.Message, s.login.Reason = e.code, e.msg, e.reason
	s.f.recordLogin(s.login)
	s.sendError(e.code, e.msg)
}

func (s *session) sendError(code, msg string) {
	s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
	if err := s.be.Flush(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.f.cfg.Logf("pgfront: send error to %s: %v", s.raw.RemoteAddr(), err)
	}
}
