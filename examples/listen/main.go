// Listen shows LISTEN/NOTIFY on pgentra that survives a lost connection.
//
//	cd examples && go run ./listen    # offline emulator (scripted demo), or PGHOST=... for Azure
//
// pq.NewListener takes a DSN and dials by itself, so it cannot use
// pgentra's token. Instead this program wraps pgentra's Connector with
// pq.ConnectorWithNotificationHandler, takes one dedicated *sql.Conn from
// the pool and runs LISTEN on it. pq delivers notifications only while it
// reads from the connection, so the program pings the connection every
// poll interval; that ping is also how it notices the connection died
// (fail-over, pg_terminate_backend, network). Then it takes a new
// connection — a new login, with a token from the cache, fresh if the old
// one expired — and LISTENs again. Notifications sent while no connection
// was listening are lost, as with any LISTEN client: re-read state after
// "listening" if you need every event.
//
// Copy listen() for cache invalidation, job queues and the like. Against
// Azure, send notifications from psql: select pg_notify('events', 'hi');
// a payload of "stop" ends the program.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/lib/pq"

	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/examples/internal/exenv"
)

// config says what to listen to and how.
type config struct {
	Channel string        // the LISTEN channel
	Poll    time.Duration // how often to read from the idle connection
	// Listening, when set, is called each time LISTEN succeeded, with the
	// server process ID of the connection.
	Listening func(pid int)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context) error {
	target, err := exenv.FromEnvironment(ctx, os.Stderr, "app-listen")
	if err != nil {
		return err
	}
	defer target.Close()
	cfg := config{Channel: "events", Poll: 500 * time.Millisecond}
	if target.Emulated() {
		cfg.Listening = demo(ctx, target)
	} else {
		fmt.Fprintln(os.Stderr, `send with: select pg_notify('events', 'hi');  ('stop' ends the program)`)
	}
	return run(ctx, os.Stdout, target.DSN, cfg)
}

// demo plays the other side on the emulator: a notification, the
// connection killed by the server, a notification after the reconnect.
func demo(ctx context.Context, target *exenv.Target) func(int) {
	db := target.Env.AdminDB
	notify := func(payload string) { db.ExecContext(ctx, "select pg_notify('events', $1)", payload) }
	listens := 0
	return func(int) {
		listens++
		switch listens {
		case 1:
			go func() {
				notify("hello")
				time.Sleep(time.Second)
				fmt.Fprintln(os.Stderr, "(demo) pg_terminate_backend on the listening connection")
				target.Env.PG.Terminate(ctx, target.Role)
			}()
		case 2:
			go func() { notify("after the reconnect"); notify("stop") }()
		}
	}
}

var errStop = errors.New("stop requested")

// run listens until ctx ends or a "stop" payload arrives, reconnecting
// whenever the connection is lost.
func run(ctx context.Context, out io.Writer, dsn string, cfg config) error {
	connector, err := driver.NewConnector(dsn)
	if err != nil {
		return err
	}
	notes := make(chan *pq.Notification, 128)
	// Every connection of this pool gets the handler; only the dedicated
	// one LISTENs. The handler runs inside pq's read loop: don't block it.
	db := sql.OpenDB(pq.ConnectorWithNotificationHandler(connector, func(n *pq.Notification) {
		select {
		case notes <- n:
		default: // the consumer is stuck; drop rather than stall the connection
		}
	}))
	defer db.Close()

	backoff := 100 * time.Millisecond
	for {
		err := listen(ctx, out, db, notes, cfg)
		switch {
		case errors.Is(err, errStop):
			fmt.Fprintln(out, "stopped")
			return nil
		case ctx.Err() != nil:
			return nil
		}
		fmt.Fprintf(out, "connection lost (%v); reconnecting\n", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// listen runs LISTEN on a dedicated connection and reports notifications
// until the connection fails, ctx ends or "stop" arrives.
func listen(ctx context.Context, out io.Writer, db *sql.DB, notes <-chan *pq.Notification, cfg config) error {
	conn, err := db.Conn(ctx) // a new physical connection: a login with a token
	if err != nil {
		return err
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "LISTEN "+pq.QuoteIdentifier(cfg.Channel)); err != nil {
		return err
	}
	fmt.Fprintf(out, "listening on %q (server pid %d)\n", cfg.Channel, pid)
	if cfg.Listening != nil {
		cfg.Listening(pid)
	}
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case n := <-notes:
			if n.BePid == 0 || n.Channel != cfg.Channel {
				continue
			}
			fmt.Fprintf(out, "notification on %q: %s\n", n.Channel, n.Extra)
			if n.Extra == "stop" {
				return errStop
			}
		case <-tick.C:
			// Reading is what delivers pending notifications; a dead
			// connection fails here, and database/sql discards it.
			if err := conn.PingContext(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
