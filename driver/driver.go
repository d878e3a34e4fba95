package driver

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

// DriverName is the name pgentra registers with database/sql:
// sql.Open(DriverName, dsn).
const DriverName = "pgentra"

func init() {
	sql.Register(DriverName, &Driver{})
}

// Driver is the database/sql driver registered as "pgentra". database/sql
// uses it through OpenConnector, so a DSN is parsed once per sql.DB — not
// once per connection — and pools whose DSNs name the same identity share
// one credential and token cache (see NewConnector).
type Driver struct{}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

// OpenConnector parses name (see NewConnector) for database/sql. It is what
// sql.Open("pgentra", name) calls.
func (d *Driver) OpenConnector(name string) (driver.Connector, error) {
	return NewConnector(name)
}

// Open opens one connection without a pool. database/sql never calls it for
// this driver (it uses OpenConnector); it exists for code that drives
// database/sql/driver by hand. Each call builds and discards a credential
// (unless an open Connector of the same identity lends its own), so prefer
// NewConnector for anything that opens more than one connection.
func (d *Driver) Open(name string) (driver.Conn, error) {
	c, err := NewConnector(name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Connect(context.Background())
}
