// Package reliability holds pgentra's reliability and security evidence
// (issue 6): end-to-end tests that run the real driver, the real token cache,
// real azidentity credentials and real lib/pq against the offline Azure
// emulator (internal/emulator) and a throwaway PostgreSQL.
//
// The suite proves, each claim by a named test (see RELIABILITY.md at the
// module root for the table and the figures of the last run):
//
//   - Load across token rotations: 64 workers opening, querying and closing
//     physical connections while the token rotates lose no operation, also on
//     a busy machine, and the identity endpoint sees about one request per
//     refresh, not one per connection (TestLoadAcrossRotations; a longer soak
//     with PGENTRA_SOAK=<duration>).
//   - Faults of the identity endpoint (429/500/503 bursts, slow and hanging
//     answers, down at start, down after a token was cached), a backend
//     restart, a server refusing a cached token, and clock skew between Entra
//     and the client are survived or reported with a clear error
//     (TestFault*, TestBackendRestart, TestCachedTokenRefused*, TestClockSkew*).
//   - A burst of 500 connects against a failing or hanging credential makes a
//     handful of token requests, every caller gets the shared error, and no
//     caller waits past its context (TestBurst*).
//   - Malformed, oversized and non-JWT tokens give clear errors, never panics
//     (TestBadTokens).
//   - Tokens, client secrets and certificate passwords never appear in errors,
//     debug logs or the printed form of returned values (TestNoSecretLeaks).
//   - The token is never sent to a server that fails verification under the
//     default sslmode, and cleartext to a remote host is refused before any
//     dial (TestTLS*).
//   - No goroutine of the driver or the token cache outlives Connector.Close,
//     sql.DB.Close or Cache.Close, even with a hanging credential
//     (TestNoGoroutineLeak*).
//
// The package has only tests; it is never imported.
package reliability
