package driver

// Benchmarks for issue 5: pgentra against plain pq on the same server in the
// same run. Every pair is named .../driver=pq and
// .../driver=pgentra so that `benchstat -col /driver` lines them up; pq runs
// first (benchstat's baseline column) unless PGENTRA_BENCH_REVERSE is set, see
// benchDrivers. scripts/bench runs them and BENCHMARKS.md records the numbers.
//
// Nothing here runs in a plain `go test ./...`: it is benchmarks only.

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/pgtest"
)

// benchDrivers returns the drivers to compare, pq first — unless
// PGENTRA_BENCH_REVERSE is set: scripts/bench alternates the order between
// rounds so that neither driver always gets the warmer (or colder) slot. Its
// first round is in the normal order, so pq stays benchstat's baseline column.
func benchDrivers(names ...string) []string {
	if os.Getenv("PGENTRA_BENCH_REVERSE") != "" {
		names = slices.Clone(names)
		slices.Reverse(names)
	}
	return names
}

// benchRole is the role both drivers log in as; its password is benchJWT.
const benchRole = "bench_entra"

// benchTokenLen is the size of the fake token: real Entra access tokens for
// the database scope are 1.3–2 KB.
const benchTokenLen = 1536

// benchJWT is a JWT-shaped token of benchTokenLen (+2) bytes: a JSON header
// and a realistic v1 claim set, base64url, and a 342-character signature part
// (an RS256 signature is 256 bytes). The aio claim pads it to the target
// length.
var benchJWT = func() string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	sig := make([]byte, 256)
	for i := range sig {
		sig[i] = byte(i * 37)
	}
	claims := userClaims()
	now := time.Now().Unix()
	claims["iat"], claims["nbf"], claims["exp"] = now, now, now+86400
	claims["scp"] = "user_impersonation"
	claims["name"] = "Carol Example"
	claims["amr"] = []string{"pwd", "mfa"}
	claims["aio"] = ""
	head := enc.EncodeToString(h) + "."
	tail := "." + enc.EncodeToString(sig)
	for pad := 0; ; pad++ {
		claims["aio"] = strings.Repeat("A", pad)
		p, _ := json.Marshal(claims)
		if tok := head + enc.EncodeToString(p) + tail; len(tok) >= benchTokenLen {
			return tok
		}
	}
}()

// benchCredential hands out benchJWT, valid for a day, after an optional
// delay, and counts its GetToken calls.
type benchCredential struct {
	delay time.Duration
	calls atomic.Int64
}

func (c *benchCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	if c.delay > 0 {
		t := time.NewTimer(c.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	}
	return azcore.AccessToken{Token: benchJWT, ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}

// benchEnv is the throwaway server with benchRole (password benchJWT) and an
// admin pool for waiting until backends are gone.
type benchEnv struct {
	pg    *pgtest.Cluster
	admin *sql.DB
}

var (
	benchOnce sync.Once
	benchErr  error
	benchE    *benchEnv
)

func setupBench(b *testing.B) *benchEnv {
	b.Helper()
	c := pg.Get(b)
	benchOnce.Do(func() {
		if n := len(benchJWT); n < benchTokenLen || n > benchTokenLen+2 {
			benchErr = fmt.Errorf("benchJWT is %d bytes, want %d", n, benchTokenLen)
			return
		}
		if benchErr = c.CreateRole(context.Background(), benchRole, benchJWT); benchErr != nil {
			return
		}
		var conn *pq.Connector
		if conn, benchErr = pq.NewConnector(c.AdminDSN("")); benchErr != nil {
			return
		}
		// Not closed: it lives as long as the cluster, which pg.Main closes
		// (terminating this session) after the benchmarks.
		admin := sql.OpenDB(conn)
		admin.SetMaxOpenConns(1)
		benchE = &benchEnv{pg: c, admin: admin}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchE
}

// dsn is a key=value DSN for benchRole over TCP; password is appended when set.
func (e *benchEnv) dsn(password string) string {
	d := e.pg.TCPDSN(benchRole, "postgres")
	if password != "" {
		d += " password=" + password
	}
	return d
}

// pq returns a pq connector with benchJWT as its static password.
func (e *benchEnv) pq(b *testing.B) *pq.Connector {
	b.Helper()
	c, err := pq.NewConnector(e.dsn(benchJWT))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// pgentra returns a pgentra connector whose token comes from cred; it is
// closed when the benchmark ends.
func (e *benchEnv) pgentra(b *testing.B, cred azcore.TokenCredential) *Connector {
	b.Helper()
	c, err := NewConnector(e.dsn(""), WithCredential(cred))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// waitIdle waits until the server has no backend of benchRole left, so that
// backends exiting from one round do not slow the next.
func (e *benchEnv) waitIdle(b *testing.B) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		var n int
		if err := e.admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", benchRole).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%d backends of %s still running", n, benchRole)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// benchConnect opens and closes one connection per op through conn.
func benchConnect(b *testing.B, ctx context.Context, conn sqldriver.Connector) {
	b.ReportAllocs()
	for b.Loop() {
		c, err := conn.Connect(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// connectContexts are the two kinds of ctx a Connector sees: Background (no
// Done channel: pgentra skips its connect watchdog) and a cancellable one (what
// database/sql's connection opener passes: pgentra arms its dialer).
var connectContexts = []struct {
	name string
	ctx  func() (context.Context, context.CancelFunc)
}{
	{"background", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }},
	{"deadline", func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), time.Hour)
	}},
}

// BenchmarkConnect is one serial connect + close straight to the throwaway
// PostgreSQL: pq with a static password against pgentra with a cached token
// (the same 1.5 KB string). Time is dominated by the server (fork of a
// backend, SCRAM verification of the cleartext password).
func BenchmarkConnect(b *testing.B) {
	e := setupBench(b)
	cred := &benchCredential{}
	pgc := e.pgentra(b, cred)
	if _, err := pgc.cache.Token(context.Background()); err != nil { // warm
		b.Fatal(err)
	}
	pqc := e.pq(b)
	benchConnectPairs(b, pqc, pgc)
	if n := cred.calls.Load(); n != 1 {
		b.Fatalf("GetToken calls = %d, want 1 (the warm-up)", n)
	}
}

// benchConnectPairs runs pq and pgentra side by side under each kind of ctx,
// named so that benchstat lines the pairs up (ctx=*/driver=*).
func benchConnectPairs(b *testing.B, pqc, pgc sqldriver.Connector) {
	for _, cc := range connectContexts {
		b.Run("ctx="+cc.name, func(b *testing.B) {
			ctx, cancel := cc.ctx()
			defer cancel()
			conns := map[string]sqldriver.Connector{"pq": pqc, "pgentra": pgc}
			for _, d := range benchDrivers("pq", "pgentra") {
				b.Run("driver="+d, func(b *testing.B) { benchConnect(b, ctx, conns[d]) })
			}
		})
	}
}

// BenchmarkConnectClient is BenchmarkConnect against a minimal in-process
// server that accepts any password at once, so the client's own work is
// not hidden by the server's fork + auth: it shows the absolute time and
// allocations pgentra adds per connect.
func BenchmarkConnectClient(b *testing.B) {
	addr := startNullServer(b)
	host, port, _ := net.SplitHostPort(addr)
	dsn := fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=disable", host, port, benchRole)
	pqc, err := pq.NewConnector(dsn + " password=" + benchJWT)
	if err != nil {
		b.Fatal(err)
	}
	cred := &benchCredential{}
	pgc, err := NewConnector(dsn, WithCredential(cred))
	if err != nil {
		b.Fatal(err)
	}
	defer pgc.Close()
	if _, err := pgc.cache.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchConnectPairs(b, pqc, pgc)
}

// startNullServer listens on 127.0.0.1 and speaks just enough of the
// protocol for a login: cleartext password (accepted, not checked),
// AuthenticationOk, ReadyForQuery; then it waits for Terminate. Stopped, with
// all its goroutines, when b ends.
func startNullServer(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					c.Close()
				}()
				nullSession(c)
			})
		}
	})
	b.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

func nullSession(c net.Conn) {
	be := pgproto3.NewBackend(c, c)
	be.SetMaxBodyLen(64 << 10)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if be.Flush() != nil || be.SetAuthType(pgproto3.AuthTypeCleartextPassword) != nil {
		return
	}
	if m, err := be.Receive(); err != nil {
		return
	} else if _, ok := m.(*pgproto3.PasswordMessage); !ok {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "17.0"})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		m, err := be.Receive()
		if err != nil {
			return
		}
		if _, ok := m.(*pgproto3.Terminate); ok {
			return
		}
	}
}

// BenchmarkQuery is the query path through a sql.DB of each driver, on one
// pooled connection: pgentra returns pq's own conn, so only the pool's
// Connector differs and it is not on this path at all.
func BenchmarkQuery(b *testing.B) {
	e := setupBench(b)
	pqDB := sql.OpenDB(e.pq(b))
	defer pqDB.Close()
	pgDB := sql.OpenDB(e.pgentra(b, &benchCredential{}))
	defer pgDB.Close()
	ctx := context.Background()
	for _, db := range []*sql.DB{pqDB, pgDB} {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		if err := db.PingContext(ctx); err != nil {
			b.Fatal(err)
		}
	}
	queries := []struct {
		name string
		run  func(b *testing.B, db *sql.DB)
	}{
		{"select1", func(b *testing.B, db *sql.DB) {
			var n int
			if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
				b.Fatal(n, err)
			}
		}},
		{"series1000", func(b *testing.B, db *sql.DB) {
			rows, err := db.QueryContext(ctx, "SELECT g FROM generate_series(1, 1000) g")
			if err != nil {
				b.Fatal(err)
			}
			defer rows.Close()
			var sum, g int64
			for rows.Next() {
				if err := rows.Scan(&g); err != nil {
					b.Fatal(err)
				}
				sum += g
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			if sum != 500500 {
				b.Fatalf("sum = %d", sum)
			}
		}},
	}
	for _, q := range queries {
		b.Run("q="+q.name, func(b *testing.B) {
			dbs := map[string]*sql.DB{"pq": pqDB, "pgentra": pgDB}
			for _, d := range benchDrivers("pq", "pgentra") {
				b.Run("driver="+d, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						q.run(b, dbs[d])
					}
				})
			}
		})
	}
}

// burstSize is how many goroutines connect at once; the cluster allows 400.
const burstSize = 256

// burst opens burstSize connections at once through conn and returns them.
func burst(ctx context.Context, conn sqldriver.Connector) ([]sqldriver.Conn, error) {
	conns := make([]sqldriver.Conn, burstSize)
	errs := make([]error, burstSize)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range conns {
		done.Go(func() {
			start.Wait()
			conns[i], errs[i] = conn.Connect(ctx)
		})
	}
	start.Done()
	done.Wait()
	return conns, errors.Join(errs...)
}

// closeAll closes every non-nil conn.
func closeAll(conns []sqldriver.Conn) error {
	var errs []error
	for _, c := range conns {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// BenchmarkBurst opens 256 connections at once. driver=pq and
// driver=pgentra (token already cached) are the fair pair;
// driver=pgentra-cold starts every burst with a new Connector whose credential
// takes 200 ms, so the burst waits for exactly one GetToken call
// (gettoken/op, checked) and then connects. The cold-minus-warm difference is
// the token fetch. Conns are closed, and the server's backends gone, outside
// the timed region.
func BenchmarkBurst(b *testing.B) {
	e := setupBench(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(b *testing.B, conn func() sqldriver.Connector) {
		e.waitIdle(b)
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			c := conn()
			b.StartTimer()
			conns, err := burst(ctx, c)
			b.StopTimer()
			if cerr := closeAll(conns); err == nil {
				err = cerr
			}
			if err != nil {
				b.Fatal(err)
			}
			e.waitIdle(b)
			b.StartTimer()
		}
	}
	subs := map[string]func(b *testing.B){}
	subs["pq"] = func(b *testing.B) {
		pqc := e.pq(b)
		run(b, func() sqldriver.Connector { return pqc })
	}
	subs["pgentra"] = func(b *testing.B) {
		cred := &benchCredential{}
		pgc := e.pgentra(b, cred)
		if _, err := pgc.cache.Token(ctx); err != nil {
			b.Fatal(err)
		}
		run(b, func() sqldriver.Connector { return pgc })
		if n := cred.calls.Load(); n != 1 {
			b.Fatalf("warm cache: GetToken calls = %d, want 1 (the warm-up)", n)
		}
		b.ReportMetric(0, "gettoken/op")
	}
	subs["pgentra-cold"] = func(b *testing.B) {
		cred := &benchCredential{delay: 200 * time.Millisecond}
		var last *Connector // the previous burst's, closed before the next
		defer func() {
			if last != nil {
				last.Close()
			}
		}()
		run(b, func() sqldriver.Connector {
			if last != nil {
				last.Close()
			}
			c, err := NewConnector(e.dsn(""), WithCredential(cred))
			if err != nil {
				b.Fatal(err)
			}
			last = c
			return c
		})
		if n := cred.calls.Load(); n != int64(b.N) {
			b.Fatalf("cold bursts: %d GetToken calls for %d bursts, want exactly 1 per burst", n, b.N)
		}
		b.ReportMetric(float64(cred.calls.Load())/float64(b.N), "gettoken/op")
	}
	for _, d := range benchDrivers("pq", "pgentra", "pgentra-cold") {
		b.Run("driver="+d, subs[d])
	}
}
