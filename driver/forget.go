package driver

import (
	"database/sql/driver"
	"reflect"
	"unsafe"

	"github.com/lib/pq"
)

// forgetPassword blanks the password that pq keeps in a connection it has
// logged in, and reports whether it found it.
//
// Why: pq copies its whole Config, password included, into the *conn it
// returns and keeps it for the connection's life, though it needs the
// password only during login (a cancel request reuses host and TLS settings,
// never the password). With pgentra that password is an access token, so
// printing a raw connection (sql.Conn.Raw) with %+v would show it. Wrapping
// the connection would hide it too, but pq.SetNotificationHandler,
// pq.ConnectorWithNotificationHandler and the notice handlers type-assert
// pq's own type and would panic on a wrapper.
//
// pq exports no way to do this, so the unexported field is found by name and
// type with reflect and changed in place. It runs before the connection is
// handed to database/sql, while no other goroutine can see it. If a pq
// release renames the field, nothing is changed and TestForgetPassword fails,
// so an upgrade cannot bring the exposure back unnoticed.
func forgetPassword(c driver.Conn) bool {
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
