// Listen shows LISTEN/NOTIFY on pgentra that survives a lost connection.
//
//	cd examples && go run ./listen    # offline emulator (scripted demo), or PGHOST=... for Azure
//
// pq.NewListener reconnects by itself with the password in its DSN: with
// Entra that is an access token, and once it has expired the next dropped
// connection (fail-over, pg_terminate_backend, a network blip, a server
// restart) can never be re-established. driver.NewListener is the same
// Listener — one line to change — that logs in with a token from pgentra's
// cache on every (re)connect:
//
//	l := pq.NewListener(dsn, time.Second, time.Minute, cb)          // before
//	l, err := driver.NewListener(dsn, time.Second, time.Minute, cb) // after
//
// After a reconnect it LISTENs again by itself and sends a nil on Notify:
// notifications sent while no connection was listening are lost, as with any
// LISTEN client, so re-read state then if you need every event.
//
// Copy run() for cache invalidation, job queues and the like. Against
// Azure, send notifications from psql: select pg_notify('events', 'hi');
// a payload of "stop" ends the program.
package main

import (
	"context"
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
	Channel string // the LISTEN channel
	// MinReconnect and MaxReconnect bound the back-off between reconnect
	// attempts, as for pq.NewListener.
	MinReconnect, MaxReconnect time.Duration
	// Ping is how often to check an idle connection (pq's advice: a dead
	// connection is noticed at the next read, which may be long coming).
	Ping time.Duration
	// Listening, when set, is called each time the Listener is listening:
	// after the first Listen and after every reconnect.
	Listening func()
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
	cfg := config{Channel: "events", MinReconnect: 100 * time.Millisecond, MaxReconnect: 10 * time.Second, Ping: time.Minute}
	if target.Emulated() {
		cfg.Listening = demo(ctx, target)
	} else {
		fmt.Fprintln(os.Stderr, `send with: select pg_notify('events', 'hi');  ('stop' ends the program)`)
	}
	return run(ctx, os.Stdout, target.DSN, cfg)
}

// demo plays the other side on the emulator: a notification, the
// connection killed by the server, a notification after the reconnect.
func demo(ctx context.Context, target *exenv.Target) func() {
	db := target.Env.AdminDB
	notify := func(payload string) { db.ExecContext(ctx, "select pg_notify('events', $1)", payload) }
	listens := 0
	return func() {
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

// run listens until ctx ends or a "stop" payload arrives; the Listener
// reconnects by itself whenever the connection is lost.
func run(ctx context.Context, out io.Writer, dsn string, cfg config) error {
	l, err := driver.NewListener(dsn, cfg.MinReconnect, cfg.MaxReconnect, func(ev pq.ListenerEventType, err error) {
		// Runs on the Listener's goroutine: keep it short.
		switch ev {
		case pq.ListenerEventReconnected:
			fmt.Fprintln(out, "reconnected")
			if cfg.Listening != nil {
				cfg.Listening()
			}
		case pq.ListenerEventDisconnected:
			fmt.Fprintf(out, "connection lost (%v); reconnecting\n", err)
		case pq.ListenerEventConnectionAttemptFailed:
			fmt.Fprintf(out, "connection attempt failed: %v\n", err)
		}
	})
	if err != nil {
		return err
	}
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() }) // ends a Listen still waiting
	defer stop()

	if err := l.Listen(cfg.Channel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	fmt.Fprintf(out, "listening on %q\n", cfg.Channel)
	if cfg.Listening != nil {
		cfg.Listening()
	}
	ping := time.NewTicker(cfg.Ping)
	defer ping.Stop()
	for {
		select {
		case n, ok := <-l.Notify:
			switch {
			case !ok: // closed: ctx ended
				return nil
			case n == nil:
				fmt.Fprintln(out, "listening again; notifications sent meanwhile are lost: re-read state here")
			default:
				fmt.Fprintf(out, "notification on %q: %s\n", n.Channel, n.Extra)
				if n.Extra == "stop" {
					fmt.Fprintln(out, "stopped")
					return nil
				}
			}
		case <-ping.C:
			go l.Ping() // an error means the Listener is already reconnecting
		case <-ctx.Done():
			return nil
		}
	}
}
