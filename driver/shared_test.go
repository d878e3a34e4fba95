package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"
	"github.com/pgentra/pgentra/internal/emulator/entra"
	"github.com/pgentra/pgentra/token"
)

// sharedTestEnv is an emulated tenant and authority with one service
// principal, reached by azidentity's client secret credential through co.
// Nothing is dialed but the authority: these tests are about credentials
// and caches.
type sharedTestEnv struct {
	tenant *entra.Tenant
	auth   *entra.Authority
	co     azcore.ClientOptions
	sp     entra.Principal
	vars   map[string]string // what getenv sees
}

func newSharedTestEnv(t *testing.T) *sharedTestEnv {
	t.Helper()
	// Below MSAL's 5-minute threshold: every GetToken of a credential
	// reaches the authority, so its request count is the credentials' calls.
	tn, err := entra.NewTenant(entra.TenantOptions{TokenLifetime: entra.ShortTestLifetime})
	if err != nil {
		t.Fatal(err)
	}
	auth := entra.NewAuthority(tn)
	t.Cleanup(auth.Close)
	sp, err := tn.AddServicePrincipal("orders-api-shared")
	if err != nil {
		t.Fatal(err)
	}
	co := auth.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "PGUSER"} {
		t.Setenv(k, "")
	}
	// Empty is not unset for this one: the default chain is managed identity.
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
	return &sharedTestEnv{tenant: tn, auth: auth, co: co, sp: sp, vars: map[string]string{
		"AZURE_CLIENT_SECRET": sp.ClientSecret, "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential"}}
}

func (e *sharedTestEnv) getenv(k string) string { return e.vars[k] }

// dsn is a client-secret DSN for e's service principal (extra keys appended).
func (e *sharedTestEnv) dsn(extra ...string) string {
	return strings.Join(append([]string{"host=srv.postgres.database.azure.com user=orders-api",
		"azure_credential=client_secret", "azure_client_id=" + e.sp.AppID, "azure_tenant_id=" + e.tenant.ID()}, extra...), " ")
}

// open builds a Connector with e's getenv and, unless opts give it a
// credential or a cache (client options would then conflict), e's client
// options, closed at the end of the test.
func (e *sharedTestEnv) open(t *testing.T, dsn string, opts ...Option) *Connector {
	t.Helper()
	var given options
	for _, o := range opts {
		o(&given)
	}
	first := []Option{withGetenv(e.getenv)}
	if given.credential == nil && given.cache == nil {
		first = append(first, WithClientOptions(e.co))
	}
	c, err := NewConnector(dsn, append(first, opts...)...)
	if err != nil {
		t.Fatalf("NewConnector(%q): %v", dsn, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkSharedCount fails unless the registry holds want identities.
func checkSharedCount(t *testing.T, want int) {
	t.Helper()
	if got := sharedIdentities(); got != want {
		t.Errorf("registered identities = %d, want %d", got, want)
	}
}

type nopTransport struct{ name string }

func (*nopTransport) Do(*http.Request) (*http.Response, error) {
	return nil, errors.New("nopTransport: no request may be sent")
}

// TestSharedIdentityKey (issue 21 item 6): Connectors share a credential and
// cache exactly when everything that shapes them is the same; a different
// identity, secret, scope, option or environment gets its own; a Connector
// given WithCredential, WithTokenCache or WithTokenCacheOptions keeps its own.
func TestSharedIdentityKey(t *testing.T) {
	e := newSharedTestEnv(t)
	before := sharedIdentities()
	base := e.dsn()
	other := "0c0ffee0-0000-4000-8000-00000000beef"
	type pair struct {
		name   string
		a, b   func(t *testing.T) *Connector
		shared bool
	}
	same := func(dsn string, opts ...Option) func(t *testing.T) *Connector {
		return func(t *testing.T) *Connector { return e.open(t, dsn, opts...) }
	}
	withVars := func(vars map[string]string, dsn string) func(t *testing.T) *Connector {
		return func(t *testing.T) *Connector {
			c, err := NewConnector(dsn, WithClientOptions(e.co), withGetenv(func(k string) string {
				if v, ok := vars[k]; ok {
					return v
				}
				return e.vars[k]
			}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
	}
	cred := &fakeCredential{claims: spClaims()}
	tokOpt := token.WithFetchTimeout(time.Minute)
	co2 := e.co
	co2.Transport = &nopTransport{"two"}
	coFunc := e.co
	coFunc.Retry.ShouldRetry = func(*http.Response, error) bool { return false }
	tests := []pair{
		{"same DSN", same(base), same(base), true},
		{"same identity, another server and database", same(base), same(strings.Replace(base, "host=srv.", "host=other.", 1) + " dbname=x"), true},
		{"same identity, user and sslmode differ", same(base), same(strings.Replace(base, "user=orders-api", "user=someone", 1) + " sslmode=verify-ca"), true},
		{"same identity, TLS policy and scope as written differ", same(base),
			same(base + " azure_allow_insecure_tls=true azure_scope=https://ossrdbms-aad.database.windows.net/.default"), true},
		{"another client id", same(base), same(e.dsn("azure_client_id=" + other)), false},
		{"another tenant", same(base), same(e.dsn("azure_tenant_id=" + other)), false},
		{"another secret", same(base), withVars(map[string]string{"AZURE_CLIENT_SECRET": "another-secret"}, base), false},
		{"another scope", same(base), same(base + " azure_scope=https://ossrdbms-aad.database.chinacloudapi.cn/.default"), false},
		{"another refresh margin", same(base), same(base + " azure_refresh_margin=10m"), false},
		{"instance discovery off", same(base), same(base, WithDisableInstanceDiscovery()), false},
		{"another transport", same(base), same(base, WithClientOptions(co2)), false},
		{"client options with a function", same(base, WithClientOptions(coFunc)), same(base, WithClientOptions(coFunc)), false},
		{"WithTokenCacheOptions", same(base, WithTokenCacheOptions(tokOpt)), same(base, WithTokenCacheOptions(tokOpt)), false},
		{"WithCredential, the same credential", same(base, WithCredential(cred)), same(base, WithCredential(cred)), false},
		{"WithCredential beside a built one", same(base), same(base, WithCredential(cred)), false},
		{"managed identity: client id vs object id", same("host=h user=u azure_credential=managed_identity azure_client_id=" + other),
			same("host=h user=u azure_credential=managed_identity azure_object_id=" + other), false},
		{"managed identity vs default chain, same client id", same("host=h user=u azure_credential=managed_identity azure_client_id=" + other),
			same("host=h user=u azure_client_id=" + other), false},
		{"default chain, another AZURE_CLIENT_ID", withVars(map[string]string{"AZURE_CLIENT_ID": other}, "host=h user=u"),
			withVars(map[string]string{"AZURE_CLIENT_ID": e.sp.AppID}, "host=h user=u"), false},
		{"default chain, same AZURE_CLIENT_ID", withVars(map[string]string{"AZURE_CLIENT_ID": other}, "host=h user=u"),
			withVars(map[string]string{"AZURE_CLIENT_ID": other}, "host=h user=u"), true},
		{"workload identity, another token file", same("host=h user=u azure_credential=workload_identity azure_client_id=" + other + " azure_tenant_id=" + other + " azure_federated_token_file=/a"),
			same("host=h user=u azure_credential=workload_identity azure_client_id=" + other + " azure_tenant_id=" + other + " azure_federated_token_file=/b"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.a(t), tt.b(t)
			if got := a.TokenCache() == b.TokenCache(); got != tt.shared {
				t.Errorf("one cache for both = %v, want %v", got, tt.shared)
			}
			if tt.shared && a.cred != b.cred {
				t.Error("sharing a cache but not the credential")
			}
			if tt.shared && a.lookup != b.lookup {
				t.Error("sharing a cache but not the user-name lookup")
			}
		})
	}
	checkSharedCount(t, before)

	// From the environment azidentity reads itself: a different
	// AZURE_CLIENT_SECRET for azure_credential=environment is another
	// identity's credential.
	t.Run("environment credential, os environment", func(t *testing.T) {
		dsn := "host=h user=u azure_credential=environment"
		t.Setenv("AZURE_TENANT_ID", e.tenant.ID())
		t.Setenv("AZURE_CLIENT_ID", e.sp.AppID)
		t.Setenv("AZURE_CLIENT_SECRET", "one")
		a, err := NewConnector(dsn, WithClientOptions(e.co))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := NewConnector(dsn, WithClientOptions(e.co))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		t.Setenv("AZURE_CLIENT_SECRET", "two")
		c, err := NewConnector(dsn, WithClientOptions(e.co))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if a.TokenCache() != b.TokenCache() {
			t.Error("same environment: want one cache")
		}
		if a.TokenCache() == c.TokenCache() {
			t.Error("AZURE_CLIENT_SECRET changed: want another cache")
		}
	})

	// WithTokenCache: exactly the cache given, never registered.
	t.Run("WithTokenCache", func(t *testing.T) {
		n := sharedIdentities()
		tc := token.NewCache(cred, token.ScopePublic)
		defer tc.Close()
		a := e.open(t, base, WithTokenCache(tc))
		if a.TokenCache() != tc {
			t.Error("WithTokenCache: the Connector uses another cache")
		}
		checkSharedCount(t, n)
	})
}

// TestSharedKeyHidesSecret: the key holds a digest, never the secret, and
// prints as nothing.
func TestSharedKeyHidesSecret(t *testing.T) {
	const secret = "SUPERSECRETVALUE-1234"
	s := settings{credential: credClientSecret, clientID: "c", tenantID: "t", clientSecretEnv: envClientSecret}
	getenv := func(k string) string {
		if k == envClientSecret {
			return secret
		}
		return ""
	}
	k, ok := identityKey(s, token.ScopePublic, &options{}, getenv)
	if !ok {
		t.Fatal("no key for a plain client secret DSN")
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		if out := fmt.Sprintf(f, k); strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", k.digest[:4])) {
			t.Errorf("Sprintf(%q, key) = %q: shows the secret or the digest", f, out)
		}
	}
	k2, _ := identityKey(s, token.ScopePublic, &options{}, func(k string) string {
		if k == envClientSecret {
			return secret + "x"
		}
		return ""
	})
	if k.equal(k2) {
		t.Error("another secret, same key")
	}
	k3, _ := identityKey(s, token.ScopePublic, &options{}, getenv)
	if !k.equal(k3) {
		t.Error("same settings, another key")
	}
}

// TestSharedIdentityRefcount (issue 21 item 6): three Connectors of one
// service principal make one token request between them; closing two keeps
// the third working; closing the last closes the cache.
func TestSharedIdentityRefcount(t *testing.T) {
	e := newSharedTestEnv(t)
	before := sharedIdentities()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cs []*Connector
	for range 3 {
		c, err := NewConnector(e.dsn(), WithClientOptions(e.co), withGetenv(e.getenv))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for i, c := range cs {
		if _, err := c.TokenCache().Token(ctx); err != nil {
			t.Fatalf("connector %d: %v", i, err)
		}
	}
	if n := e.auth.RequestsFor(e.sp); n != 1 {
		t.Errorf("authority token requests = %d for 3 Connectors of one identity, want 1", n)
	}
	checkSharedCount(t, before+1)
	cache := cs[2].TokenCache()
	cs[0].Close()
	cs[1].Close()
	cs[1].Close() // twice: must not drop the third Connector's reference
	if _, err := cache.Token(ctx); err != nil {
		t.Fatalf("after closing 2 of 3: %v", err)
	}
	// A new Connector of the same identity joins the live cache.
	d, err := NewConnector(e.dsn(), WithClientOptions(e.co), withGetenv(e.getenv))
	if err != nil {
		t.Fatal(err)
	}
	if d.TokenCache() != cache {
		t.Error("a Connector opened while one of its identity lives got another cache")
	}
	d.Close()
	if _, err := cache.Token(ctx); err != nil {
		t.Fatalf("after closing the latecomer: %v", err)
	}
	cs[2].Close()
	if _, err := cache.Token(ctx); !errors.Is(err, token.ErrClosed) {
		t.Errorf("after closing all: Token = %v, want token.ErrClosed", err)
	}
	checkSharedCount(t, before)
	// The next Connector builds a new credential and cache.
	f := e.open(t, e.dsn())
	if f.TokenCache() == cache {
		t.Error("a closed cache was handed out again")
	}
	if _, err := f.TokenCache().Token(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.auth.RequestsFor(e.sp); n != 2 {
		t.Errorf("authority token requests = %d, want 2 (one per cache)", n)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSharedIdentityLoggers: each Connector's logger gets the shared
// cache's events while the Connector is open, and none after its Close.
func TestSharedIdentityLoggers(t *testing.T) {
	e := newSharedTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logA, logB syncBuffer
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	a := e.open(t, e.dsn(), WithLogger(slog.New(slog.NewTextHandler(&logA, debug))))
	b := e.open(t, e.dsn(), WithLogger(slog.New(slog.NewTextHandler(&logB, debug))))
	plain := e.open(t, e.dsn()) // no logger: no subscription
	if a.TokenCache() != b.TokenCache() || b.TokenCache() != plain.TokenCache() {
		t.Fatal("want one cache")
	}
	tok, err := plain.TokenCache().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*syncBuffer{"A": &logA, "B": &logB} {
		if got := strings.Count(l.String(), "fetch_end"); got != 1 {
			t.Errorf("logger %s: %d fetch_end events, want 1:\n%s", name, got, l)
		}
		if strings.Contains(l.String(), tok.Token) {
			t.Errorf("logger %s shows the token", name)
		}
	}
	a.Close()
	before := logA.String()
	if _, err := b.TokenCache().Refresh(ctx, tok.Token); err != nil { // a fetch
		t.Fatal(err)
	}
	if logA.String() != before {
		t.Errorf("logger A got events after its Connector's Close:\n%s", strings.TrimPrefix(logA.String(), before))
	}
	if got := strings.Count(logB.String(), "fetch_end"); got != 2 {
		t.Errorf("logger B: %d fetch_end events, want 2:\n%s", got, &logB)
	}
}

// TestEventFanoutUnsubscribeWaits: when unsubscribe returns, the handler it
// removed has returned and is not called again; the other subscribers go on.
func TestEventFanoutUnsubscribeWaits(t *testing.T) {
	defer func(g time.Duration) { eventStopGrace = g }(eventStopGrace)
	eventStopGrace = time.Minute // a busy machine must not make unsubscribe give up
	var f eventFanout
	entered, release := make(chan struct{}), make(chan struct{})
	var block sync.Once
	var mu sync.Mutex
	var returned, after, others int
	stopped := false
	s := f.subscribe(func(token.Event) {
		mu.Lock()
		if stopped {
			after++
		}
		mu.Unlock()
		// The first call blocks until released, whenever it runs: a
		// non-blocking send here was lost when emit ran before the test
		// waited for it (a busy machine), and the test hung.
		block.Do(func() { close(entered); <-release })
		mu.Lock()
		returned++
		mu.Unlock()
	}, nil, nil)
	f.subscribe(func(token.Event) {
		mu.Lock()
		others++
		mu.Unlock()
	}, nil, nil)
	emitted := make(chan struct{})
	go func() {
		f.emit(token.Event{Kind: token.CacheHit})
		close(emitted)
	}()
	<-entered
	done := make(chan struct{})
	go func() {
		f.unsubscribe(s)
		mu.Lock()
		stopped = true
		if returned != 1 {
			t.Errorf("unsubscribe returned while the handler ran (%d returned)", returned)
		}
		mu.Unlock()
		close(done)
	}()
	// Release the handler only once unsubscribe waits for it.
	for {
		s.mu.Lock()
		waiting := s.stopped
		s.mu.Unlock()
		if waiting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	<-done
	<-emitted
	f.emit(token.Event{Kind: token.CacheHit})
	mu.Lock()
	defer mu.Unlock()
	if after != 0 {
		t.Errorf("handler called %d times after unsubscribe", after)
	}
	if others != 2 {
		t.Errorf("the other subscriber got %d events, want 2", others)
	}
}

// TestSharedKeyCertificateContents: a certificate file rewritten in place
// (rotated) is another credential; the same contents are the same one.
func TestSharedKeyCertificateContents(t *testing.T) {
	path := t.TempDir() + "/cert.pem"
	s := settings{credential: credClientCertificate, clientID: "c", tenantID: "t", certificatePath: path, clientSecretEnv: envClientSecret}
	none := func(string) string { return "" }
	key := func(contents string) sharedKey {
		t.Helper()
		if err := os.WriteFile(path, []byte(contents), 0o600); err != nil {
			t.Fatal(err)
		}
		k, ok := identityKey(s, token.ScopePublic, &options{}, none)
		if !ok {
			t.Fatal("no key")
		}
		return k
	}
	a, b, a2 := key("one"), key("two"), key("one")
	if a.equal(b) {
		t.Error("another certificate in the same file, same key")
	}
	if !a.equal(a2) {
		t.Error("same certificate, another key")
	}
}

// fetchRecTracer records the token fetches a Tracer sees: for each start,
// the caller's mark (callerKey) and the kind; for each end, whether it got
// this tracer's own start context back, and the outcome.
type fetchRecTracer struct {
	recTracer
	name   string
	fmu    sync.Mutex
	starts []string
	ends   []string
}

type callerKey struct{}

// spanKey holds the name of the tracer whose TraceTokenStart made the context.
type spanKey struct{}

func (f *fetchRecTracer) TraceTokenStart(ctx context.Context, d TokenStartData) context.Context {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	f.starts = append(f.starts, fmt.Sprintf("caller=%v kind=%s cache=%t scope=%s cred=%s", ctx.Value(callerKey{}), d.Kind, d.Cache != nil, d.Scope, d.Credential))
	return context.WithValue(ctx, spanKey{}, f.name)
}

func (f *fetchRecTracer) TraceTokenEnd(ctx context.Context, d TokenEndData) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	f.ends = append(f.ends, fmt.Sprintf("own=%t outcome=%s caller=%v", ctx.Value(spanKey{}) == f.name, d.Outcome, ctx.Value(callerKey{})))
}

func (f *fetchRecTracer) seen() (starts, ends []string) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	return slices.Clone(f.starts), slices.Clone(f.ends)
}

// ctxPolicy records, for each token request, which tracer's token-start
// context the request's context carries (the values GetToken got), and may
// delay it.
type ctxPolicy struct {
	mu    sync.Mutex
	spans []any
	delay time.Duration
}

func (p *ctxPolicy) Do(req *policy.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.Raw().URL.Path, "/oauth2/v2.0/token") {
		return req.Next()
	}
	p.mu.Lock()
	p.spans = append(p.spans, req.Raw().Context().Value(spanKey{}))
	p.mu.Unlock()
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	return req.Next()
}

func (p *ctxPolicy) seen() []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.spans)
}

// TestSharedIdentityTracers (issues 19 and 21 item 6): Connectors given a
// tracer share the identity's cache like the others: four of them (two
// tracers, and one without) make one token request, and each tracer sees
// exactly one token start and one end for it, with the context of the
// connect that started it as the parent; the credential's call sees the
// starting Connector's tracer's context.
func TestSharedIdentityTracers(t *testing.T) {
	e := newSharedTestEnv(t)
	pol := &ctxPolicy{}
	e.co.PerCallPolicies = append(e.co.PerCallPolicies, pol)
	before := sharedIdentities()
	t1, t2 := &fetchRecTracer{name: "t1"}, &fetchRecTracer{name: "t2"}
	a := e.open(t, e.dsn(), WithTracer(t1))
	b := e.open(t, e.dsn(), WithTracer(t1))
	c := e.open(t, e.dsn(), WithTracer(t2))
	d := e.open(t, e.dsn())
	for i, x := range []*Connector{b, c, d} {
		if x.TokenCache() != a.TokenCache() {
			t.Fatalf("connector %d has a cache of its own: Connectors with tracers must share the identity's", i+1)
		}
	}
	checkSharedCount(t, before+1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// c's connect starts the fetch; the others then find the token cached.
	for _, x := range []struct {
		name string
		c    *Connector
	}{{"c", c}, {"a", a}, {"b", b}, {"d", d}, {"a", a}} {
		if err := x.c.withLogin(context.WithValue(ctx, callerKey{}, x.name), (&scriptedLogins{}).attempt); err != nil {
			t.Fatalf("connect through %s: %v", x.name, err)
		}
	}
	if n := e.auth.RequestsFor(e.sp); n != 1 {
		t.Errorf("authority token requests = %d for 4 Connectors of one identity, want 1", n)
	}
	wantStart := "caller=c kind=blocking cache=true scope=https://ossrdbms-aad.database.windows.net/.default cred=client_secret"
	for _, tr := range []*fetchRecTracer{t1, t2} {
		starts, ends := tr.seen()
		if len(starts) != 1 || starts[0] != wantStart {
			t.Errorf("tracer %s: token starts %q, want exactly [%q]", tr.name, starts, wantStart)
		}
		if len(ends) != 1 || ends[0] != "own=true outcome=ok caller=c" {
			t.Errorf("tracer %s: token ends %q, want exactly one, with its own start's context", tr.name, ends)
		}
	}
	if got := pol.seen(); len(got) != 1 || got[0] != "t2" {
		t.Errorf("the credential's request saw the token span of %v, want t2's (the tracer of the Connector whose connect started the fetch)", got)
	}
	// t2's only Connector closes: the next fetch (a's login refused with the
	// cached token: a retry with a new one) is t1's alone.
	c.Close()
	if err := a.withLogin(context.WithValue(ctx, callerKey{}, "a"), (&scriptedLogins{script: []error{errNoRole}}).attempt); err != nil {
		t.Fatalf("connect through a, retried: %v", err)
	}
	if n := e.auth.RequestsFor(e.sp); n != 2 {
		t.Errorf("authority token requests = %d, want 2", n)
	}
	starts, ends := t1.seen()
	if len(starts) != 2 || !strings.HasPrefix(starts[1], "caller=a kind=retry ") || len(ends) != 2 || ends[1] != "own=true outcome=ok caller=a" {
		t.Errorf("tracer t1 after the retry: starts %q, ends %q; want a second pair, kind retry, under a's connect", starts, ends)
	}
	if starts, ends := t2.seen(); len(starts) != 1 || len(ends) != 1 {
		t.Errorf("tracer t2 of a closed Connector: starts %q, ends %q; want no more", starts, ends)
	}
	if got := pol.seen(); len(got) != 2 || got[1] != "t1" {
		t.Errorf("the credential's requests saw the token spans of %v, want [t2 t1]", got)
	}
}

// uncomparableTracer is a Tracer whose value can't be compared (==
// panics): a Connector given it keeps a cache of its own.
type uncomparableTracer struct {
	rec  *recTracer
	tags []string
}

func (u uncomparableTracer) TraceConnectStart(ctx context.Context, d ConnectStartData) context.Context {
	return u.rec.TraceConnectStart(ctx, d)
}
func (u uncomparableTracer) TraceConnectEnd(ctx context.Context, d ConnectEndData) {
	u.rec.TraceConnectEnd(ctx, d)
}
func (u uncomparableTracer) TraceLoginStart(ctx context.Context, d LoginStartData) context.Context {
	return u.rec.TraceLoginStart(ctx, d)
}
func (u uncomparableTracer) TraceLoginEnd(ctx context.Context, d LoginEndData) {
	u.rec.TraceLoginEnd(ctx, d)
}
func (u uncomparableTracer) TraceTokenStart(ctx context.Context, d TokenStartData) context.Context {
	return u.rec.TraceTokenStart(ctx, d)
}
func (u uncomparableTracer) TraceTokenEnd(ctx context.Context, d TokenEndData) {
	u.rec.TraceTokenEnd(ctx, d)
}

// TestSharedIdentityUncomparableTracer: a tracer value that can't be
// compared is not shared (the shared cache tells tracers apart with ==),
// and its own cache traces its fetch once, without a panic.
func TestSharedIdentityUncomparableTracer(t *testing.T) {
	e := newSharedTestEnv(t)
	before := sharedIdentities()
	rec := &recTracer{}
	u := uncomparableTracer{rec: rec, tags: []string{"x"}}
	a := e.open(t, e.dsn(), WithTracer(u))
	b := e.open(t, e.dsn(), WithTracer(u))
	if a.TokenCache() == b.TokenCache() || a.shared != nil {
		t.Fatal("Connectors with a tracer that can't be compared share a cache")
	}
	checkSharedCount(t, before)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.withLogin(ctx, (&scriptedLogins{}).attempt); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.toks) != 1 || rec.toks[0].Outcome != FetchOK {
		t.Errorf("token ends %+v, want one ok", rec.toks)
	}
}

// TestSharedSlowFetchWarnsOnce: a slow fetch of a cache that Connectors
// share is warned about once per logger, not once per Connector: three on
// slog.Default() and one with its own logger give one warning each place.
func TestSharedSlowFetchWarnsOnce(t *testing.T) {
	buf := captureDefault(t)
	old := slowFetchAfter
	slowFetchAfter = 10 * time.Millisecond
	defer func() { slowFetchAfter = old }()
	e := newSharedTestEnv(t)
	e.co.PerCallPolicies = append(e.co.PerCallPolicies, &ctxPolicy{delay: 500 * time.Millisecond})
	var own syncBuffer
	cs := []*Connector{e.open(t, e.dsn()), e.open(t, e.dsn()), e.open(t, e.dsn()),
		e.open(t, e.dsn(), WithLogger(slog.New(slog.NewTextHandler(&own, nil))))}
	for _, c := range cs[1:] {
		if c.TokenCache() != cs[0].TokenCache() {
			t.Fatal("want one cache")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cs[0].withLogin(ctx, (&scriptedLogins{}).attempt); err != nil {
		t.Fatal(err)
	}
	const warning = "still waiting for an access token"
	if n := strings.Count(buf.String(), warning); n != 1 {
		t.Errorf("slog.Default(): %d slow-fetch warnings for one fetch of 3 Connectors, want 1:\n%s", n, buf.String())
	}
	if n := strings.Count(own.String(), warning); n != 1 {
		t.Errorf("WithLogger's logger: %d slow-fetch warnings, want 1:\n%s", n, own.String())
	}
}

// TestSharedWarmTokenAllocs: a warm Token of a cache shared by Connectors
// with tracers and loggers allocates nothing (the event fan-out included).
func TestSharedWarmTokenAllocs(t *testing.T) {
	e := newSharedTestEnv(t)
	tr := &fetchRecTracer{name: "t"}
	a := e.open(t, e.dsn(), WithTracer(tr))
	b := e.open(t, e.dsn(), WithTracer(tr), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if a.TokenCache() != b.TokenCache() {
		t.Fatal("want one cache")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cache := a.TokenCache()
	if _, err := cache.Token(ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	if allocs := testing.AllocsPerRun(1000, func() { _, err = cache.Token(ctx) }); allocs != 0 || err != nil {
		t.Errorf("warm Token of a shared cache: %v allocs (err %v), want 0", allocs, err)
	}
}

// TestSharedIdentityTracingProvider: client options with an azcore
// TracingProvider (how azidentity's spans reach OpenTelemetry, through
// azotel) still share — it holds a function, so only whether one is set is
// in the key — and not with Connectors without one.
func TestSharedIdentityTracingProvider(t *testing.T) {
	e := newSharedTestEnv(t)
	before := sharedIdentities()
	provider := func() tracing.Provider {
		return tracing.NewProvider(func(string, string) tracing.Tracer { return tracing.Tracer{} }, nil)
	}
	traced := e.co
	traced.TracingProvider = provider()
	a := e.open(t, e.dsn(), WithClientOptions(traced))
	b := e.open(t, e.dsn(), WithClientOptions(traced))
	other := traced
	other.TracingProvider = provider() // another instance, as a second NewTracingProvider call makes
	c := e.open(t, e.dsn(), WithClientOptions(other))
	plain := e.open(t, e.dsn())
	if a.TokenCache() != b.TokenCache() || a.TokenCache() != c.TokenCache() {
		t.Fatal("Connectors whose client options set a TracingProvider do not share the identity's cache")
	}
	if plain.TokenCache() == a.TokenCache() {
		t.Error("a Connector without a TracingProvider shares with those with one")
	}
	checkSharedCount(t, before+2)
}
