package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
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
	var mu sync.Mutex
	var returned, after, others int
	stopped := false
	s := f.subscribe(func(token.Event) {
		mu.Lock()
		if stopped {
			after++
		}
		mu.Unlock()
		select {
		case entered <- struct{}{}:
			<-release
		default:
		}
		mu.Lock()
		returned++
		mu.Unlock()
	})
	f.subscribe(func(token.Event) {
		mu.Lock()
		others++
		mu.Unlock()
	})
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
