package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lib/pq"
)

// AdminDSN is a lib/pq key=value DSN for the superuser over the unix socket
// (trust auth, no password), sslmode=disable. Use it to set up roles, tables
// and data without going through the password-checked TCP listener. dbname
// defaults to "postgres".
func (c *Cluster) AdminDSN(dbname string) string {
	return c.dsn(c.SocketDir, c.SuperUser, dbname)
}

// TCPDSN is a key=value DSN over TCP to 127.0.0.1 for user, with no password
// and sslmode=disable: the connection under test supplies the password (the
// pgentra driver puts a token there). dbname defaults to "postgres". Note that
// lib/pq still honours PGPASSWORD and ~/.pgpass from the environment.
func (c *Cluster) TCPDSN(user, dbname string) string {
	return c.dsn(c.Host, user, dbname)
}

// dsn builds a key=value DSN with every value quoted as needed.
func (c *Cluster) dsn(host, user, dbname string) string {
	if dbname == "" {
		dbname = "postgres"
	}
	return "host=" + dsnQuote(host) + " port=" + strconv.Itoa(c.Port) +
		" user=" + dsnQuote(user) + " dbname=" + dsnQuote(dbname) + " sslmode=disable"
}

// openAdmin opens a one-connection superuser pool on dbname over the socket.
func (c *Cluster) openAdmin(dbname string) (*sql.DB, error) {
	conn, err := pq.NewConnector(c.AdminDSN(dbname))
	if err != nil {
		return nil, fmt.Errorf("pgentra: pgtest: admin connector: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db, nil
}

// Exec runs the SQL statements in order, as superuser in dbname ("postgres"
// when ""), on one session, so SET and temporary objects carry over between
// them. It stops at the first failing statement. Errors name the statement's
// position but never its text, which may hold a password.
func (c *Cluster) Exec(ctx context.Context, dbname string, sql ...string) error {
	db, err := c.openAdmin(dbname)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("pgentra: pgtest: connect as %s to %q: %w", c.SuperUser, dbname, err)
	}
	defer conn.Close()
	for i, stmt := range sql {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("pgentra: pgtest: exec statement %d of %d in %q: %w", i+1, len(sql), dbname, err)
		}
	}
	return nil
}

// CreateRole creates the LOGIN role name with password, or, when it exists,
// makes it LOGIN and sets its password. The password may be a ~2 KB JWT: it is
// quoted with pq.QuoteLiteral and never appears in an error.
func (c *Cluster) CreateRole(ctx context.Context, name, password string) error {
	if name == "" {
		return errors.New("pgentra: pgtest: CreateRole: empty role name")
	}
	db, err := c.openAdmin("")
	if err != nil {
		return err
	}
	defer db.Close()
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pgentra: pgtest: look up role %q: %w", name, err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	if _, err := db.ExecContext(ctx, verb+" ROLE "+pq.QuoteIdentifier(name)+" LOGIN PASSWORD "+pq.QuoteLiteral(password)); err != nil {
		return fmt.Errorf("pgentra: pgtest: %s role %q: %w", verb, name, err)
	}
	return nil
}

// SetPassword changes the password of the existing role name, e.g. to a new
// token so a test can prove the driver fetched and sent it. The password
// never appears in an error.
func (c *Cluster) SetPassword(ctx context.Context, name, password string) error {
	if err := c.Exec(ctx, "", "ALTER ROLE "+pq.QuoteIdentifier(name)+" PASSWORD "+pq.QuoteLiteral(password)); err != nil {
		return fmt.Errorf("pgentra: pgtest: set password of role %q: %w", name, err)
	}
	return nil
}

// Terminate runs pg_terminate_backend for every backend of role (except the
// calling session) and waits, bounded by ctx, until they have exited, so that
// the next use of a killed connection fails deterministically. It returns how
// many backends were signalled.
func (c *Cluster) Terminate(ctx context.Context, role string) (int, error) {
	db, err := c.openAdmin("")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	// OFFSET 0 fences the subquery so the planner cannot evaluate
	// pg_terminate_backend before the filter that spares this session.
	rows, err := db.QueryContext(ctx, `SELECT pid FROM (
		SELECT pid FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid() OFFSET 0
	) s WHERE pg_terminate_backend(pid)`, role)
	if err != nil {
		return 0, fmt.Errorf("pgentra: pgtest: terminate backends of %q: %w", role, err)
	}
	var pids []int64
	for rows.Next() {
		var pid int64
		if err := rows.Scan(&pid); err != nil {
			rows.Close()
			return 0, fmt.Errorf("pgentra: pgtest: terminate backends of %q: %w", role, err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("pgentra: pgtest: terminate backends of %q: %w", role, err)
	}
	rows.Close()
	if len(pids) == 0 {
		return 0, nil
	}
	for {
		var left int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pq.Array(pids)).Scan(&left); err != nil {
			return len(pids), fmt.Errorf("pgentra: pgtest: wait for terminated backends of %q: %w", role, err)
		}
		if left == 0 {
			return len(pids), nil
		}
		select {
		case <-ctx.Done():
			return len(pids), fmt.Errorf("pgentra: pgtest: %d backends of %q still running: %w", left, role, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
