// Package pqinternal holds every access pgentra makes to lib/pq's unexported
// state, so that a pq upgrade has one place to check. Each reach was checked
// against github.com/lib/pq v1.12.3 (go.mod's version):
//
//   - ForgetPassword: the cfg field (a pq.Config) of pq's connection type.
//   - ForgetListenerPassword: ListenerConn's cn field (a pointer to that
//     connection type).
//   - SetKeys: pq.Config's set field (a []string).
//
// Each finds its field by name and type with reflect and does nothing when
// it is missing or has changed; the tests of this package fail then, so an
// upgrade cannot lose one unnoticed.
package pqinternal

import (
	"database/sql/driver"
	"reflect"
	"unsafe"

	"github.com/lib/pq"
)

// ForgetPassword blanks the password that pq keeps in a connection it has
// logged in, and reports whether it found it.
//
// Why: pq copies its whole Config, password included, into the connection it
// returns and keeps it for the connection's life, though it needs the
// password only during login (a cancel request reuses host and TLS settings,
// never the password). With pgentra that password is an access token, so
// printing a raw connection (sql.Conn.Raw) with %+v would show it. Wrapping
// the connection would hide it too, but pq.SetNotificationHandler,
// pq.ConnectorWithNotificationHandler and the notice handlers type-assert
// pq's own type and would panic on a wrapper.
//
// pq exports no way to do this, so the field is changed in place. Call it
// before the connection is handed to anyone else, while no other goroutine
// can see it. Anything that is not a pointer to a struct with a pq.Config
// field named cfg is left alone.
func ForgetPassword(c driver.Conn) bool {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	cfg := v.Elem().FieldByName("cfg")
	if !cfg.IsValid() || cfg.Type() != reflect.TypeFor[pq.Config]() {
		return false
	}
	(*pq.Config)(unsafe.Pointer(cfg.UnsafeAddr())).Password = ""
	return true
}

// ForgetListenerPassword blanks the password pq keeps in the connection
// inside a ListenerConn, as ForgetPassword does for a pool's connection, and
// reports whether it found it. Call it right after pq.NewListenerConn
// returns, before the ListenerConn is used.
func ForgetListenerPassword(lc *pq.ListenerConn) bool {
	if lc == nil {
		return false
	}
	f := reflect.ValueOf(lc).Elem().FieldByName("cn")
	if !f.IsValid() || f.Kind() != reflect.Pointer {
		return false
	}
	f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	c, ok := f.Interface().(driver.Conn)
	if !ok || f.IsNil() {
		return false
	}
	return ForgetPassword(c)
}

// SetKeys returns pq's record of the parameters cfg was given: one entry per
// source (environment, connection string, service file) that set a key, in
// pq's own names. ok is false when pq keeps no such record (then nothing
// can be said about where a value came from).
func SetKeys(cfg pq.Config) (keys []string, ok bool) {
	v := reflect.ValueOf(cfg).FieldByName("set")
	if !v.IsValid() || v.Kind() != reflect.Slice || v.Type().Elem().Kind() != reflect.String {
		return nil, false
	}
	out := make([]string, v.Len())
	for i := range out {
		out[i] = v.Index(i).String()
	}
	return out, true
}
