// Package pgtest runs a throwaway, real PostgreSQL server for the duration of a
// test binary, benchmark, example or emulator run.
//
// Integration tests in this module need a real server to prove that an Entra
// token really ends up as the password of a physical connection. pgtest gives
// each test binary its own cluster: initdb into a fresh temp dir, a free TCP
// port on 127.0.0.1 that demands a password, a unix socket with trust auth for
// administration, and pg_ctl to start, stop and restart it. It works both as
// root (through `runuser -u postgres --`) and as an ordinary user.
//
// Typical use, one cluster per test package:
//
//	var pg pgtest.Lazy
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		c := pg.Get(t) // skips (or fails when CI=true) without PostgreSQL
//		_ = c.TCPDSN("alice", "postgres")
//	}
//
// This is test support: it is never imported by the driver or token packages.
package pgtest
