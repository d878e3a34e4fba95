package reliability_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/pgentra/pgentra/internal/emulator"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/internal/pgtest"
)

// pg is the throwaway PostgreSQL shared by the tests of this binary (one
// test that stops its server uses a dedicated cluster instead).
var pg pgtest.Lazy

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// startEnv starts an emulator on the shared cluster whose tokens live
// lifetime (0: entra.ShortTestLifetime — every test starts its own tenant, and
// MSAL caches longer-lived managed-identity tokens process-wide).
func startEnv(t testing.TB, lifetime time.Duration) *emulator.Env {
	t.Helper()
	return startEnvOn(t, pg.Get(t), lifetime)
}

func startEnvOn(t testing.TB, c *pgtest.Cluster, lifetime time.Duration) *emulator.Env {
	t.Helper()
	if lifetime == 0 {
		lifetime = entra.ShortTestLifetime
	}
	env, err := emulator.Start(context.Background(), emulator.Options{PG: c, TokenLifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	return env
}

// roleSeq makes role names unique across the tests of one binary: roles are
// cluster-wide and the cluster is shared.
var roleSeq atomic.Int64

// newIdentity adds a user-assigned managed identity to the tenant and
// creates its role, as an Entra administrator would. It returns the
// principal; its Name is the role.
func newIdentity(t testing.TB, env *emulator.Env, prefix string) entra.Principal {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, roleSeq.Add(1))
	p, err := env.Tenant.AddUserAssignedIdentity(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePrincipal(context.Background(), p, false); err != nil {
		t.Fatal(err)
	}
	return p
}

// miCred is the real azidentity managed-identity credential for p, talking
// to the emulator's IMDS with fast retries (3 retries, 10–100 ms).
func miCred(t testing.TB, env *emulator.Env, p entra.Principal) *countingCred {
	t.Helper()
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: env.ClientOptions(), ID: azidentity.ClientID(p.AppID)})
	if err != nil {
		t.Fatal(err)
	}
	return &countingCred{inner: cred}
}

// countingCred counts the GetToken calls that reach a credential and their
// outcomes.
type countingCred struct {
	inner azcore.TokenCredential
	calls atomic.Int64
	fails atomic.Int64

	mu     sync.Mutex
	tokens []string // every token returned, for leak scans
}

func (c *countingCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	tok, err := c.inner.GetToken(ctx, o)
	if err != nil {
		c.fails.Add(1)
	} else {
		c.mu.Lock()
		if len(c.tokens) < 100 {
			c.tokens = append(c.tokens, tok.Token)
		}
		c.mu.Unlock()
	}
	return tok, err
}

func (c *countingCred) issued() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.tokens...)
}

// credFunc adapts a function to azcore.TokenCredential.
type credFunc func(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error)

func (f credFunc) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return f(ctx, o)
}

// hangingCred blocks every GetToken until its context ends.
func hangingCred() *countingCred {
	return &countingCred{inner: credFunc(func(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
		<-ctx.Done()
		return azcore.AccessToken{}, ctx.Err()
	})}
}

// staticCred returns tok, valid for an hour, on every call.
func staticCred(tok string) *countingCred {
	return &countingCred{inner: credFunc(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
	})}
}

// load runs workers goroutines that each repeat op until ctx ends, and
// counts successes and failures.
type load struct {
	ops, fails atomic.Int64
	maxLatency atomic.Int64 // ns
	mu         sync.Mutex
	errs       []string       // the first few failures
	kinds      map[string]int // failures by message, tokens and IDs left out
	lastOK     atomic.Int64
	firstFail  atomic.Int64
}

// runPaced runs op on workers goroutines until ctx ends, with a random pause in [0, 2*think) after each operation,
// so that the offered load stays below what the machine can serve and the
// connect latency stays well inside a short token's lifetime.
func (l *load) runPaced(ctx context.Context, workers int, think time.Duration, op func(context.Context) error) {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if think > 0 { // stagger the start
				select {
				case <-ctx.Done():
				case <-time.After(rand.N(think)):
				}
			}
			for ctx.Err() == nil {
				start := time.Now()
				err := op(ctx)
				if ctx.Err() != nil && err != nil {
					return // the run ended mid-operation: not a failure
				}
				lat := time.Since(start)
				for {
					cur := l.maxLatency.Load()
					if int64(lat) <= cur || l.maxLatency.CompareAndSwap(cur, int64(lat)) {
						break
					}
				}
				if err != nil {
					l.fails.Add(1)
					l.firstFail.CompareAndSwap(0, time.Now().UnixNano())
					l.mu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
					if l.kinds == nil {
						l.kinds = map[string]int{}
					}
					l.kinds[errKind(err)]++
					l.mu.Unlock()
					time.Sleep(5 * time.Millisecond) // don't spin on a persistent failure
					continue
				}
				l.ops.Add(1)
				l.lastOK.Store(time.Now().UnixNano())
				if think > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(rand.N(2 * think)):
					}
				}
			}
		}()
	}
	wg.Wait()
}

func (l *load) errors() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.errs, "\n") + fmt.Sprintf("\nby kind: %v", l.kinds)
}

// errKind shortens an error message to what distinguishes its cause.
func errKind(err error) string {
	s := err.Error()
	if i := strings.Index(s, "; hint:"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndex(s, "failed: "); i >= 0 {
		s = s[i+len("failed: "):]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// queryOnce runs "select 1" on db with its own deadline.
func queryOnce(db *sql.DB, timeout time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var one int
		if err := db.QueryRowContext(ctx, "select 1").Scan(&one); err != nil {
			return err
		}
		if one != 1 {
			return errors.New("select 1 returned " + fmt.Sprint(one))
		}
		return nil
	}
}

// frontStats accumulates what an emulator's front saw: distinct passwords
// (token rotations) and refused logins by message. Poll drains the front's
// recorder so that long runs don't keep every token in memory.
type frontStats struct {
	tokens  map[[32]byte]bool
	logins  int
	refused map[string]int
}

func newFrontStats() *frontStats {
	return &frontStats{tokens: map[[32]byte]bool{}, refused: map[string]int{}}
}

func (s *frontStats) poll(env *emulator.Env) {
	pws, logins := env.Front.Drain()
	for _, pw := range pws {
		s.tokens[sha256.Sum256([]byte(pw))] = true
	}
	for _, l := range logins {
		s.logins++
		if !l.OK {
			s.refused[l.Code+" "+l.Message]++
		}
	}
}

func (s *frontStats) refusals() int {
	n := 0
	for _, v := range s.refused {
		n += v
	}
	return n
}

// runFor returns a context that is cancelled (not timed out) after d: an
// in-flight dial then fails only after ctx.Err() is set, whereas a deadline
// can fail a socket operation a moment before the context reports it.
func runFor(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	tm := time.AfterFunc(d, cancel)
	return ctx, func() { tm.Stop(); cancel() }
}

// pollEvery polls env's front until ctx ends, then once more.
func (s *frontStats) pollEvery(ctx context.Context, env *emulator.Env, d time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(d)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				s.poll(env)
			}
		}
	}()
	return func() { <-done; s.poll(env) }
}

// soakDuration is PGENTRA_SOAK as a duration ("1" or "true" mean 10m),
// or 0 when unset.
func soakDuration(t testing.TB) time.Duration {
	v := os.Getenv("PGENTRA_SOAK")
	switch v {
	case "", "0", "false":
		return 0
	case "1", "true":
		return 10 * time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("PGENTRA_SOAK=%q: want a duration such as 10m, or 1", v)
	}
	return d
}

// within reports whether d is at most limit, for timing assertions that
// leave room for a loaded 2-core machine under -race.
func within(d, limit time.Duration) bool { return d <= limit }
