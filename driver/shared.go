package driver

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"log/slog"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"
	"github.com/pgentra/pgentra/token"
)

// One credential and token cache per identity and scope in the process, not
// per pool: Connectors built from DSNs whose credential settings are the same
// share them, reference-counted. azidentity's Azure CLI credential caches
// nothing (an `az` process per token) and its client secret, certificate
// and workload identity credentials cache per instance, so without this N
// pools would make N token requests per token lifetime.
//
// The registry below is the package's only mutable global besides the
// driver's registration.
var registry struct {
	mu  sync.Mutex
	ids map[[sha256.Size]byte][]*sharedIdentity
}

// sharedIdentity is what Connectors with equal sharedKeys share. refs is
// guarded by registry.mu; the rest is set once.
type sharedIdentity struct {
	key    sharedKey
	refs   int
	cred   azcore.TokenCredential
	cache  *token.Cache
	lookup *userLookup // the user-name lookup: its management-scope token cache and memo
	events eventFanout // the cache's events, to each Connector's logger
	trace  fetchTracer // the cache's fetches, to the subscribers' tracers
	slow   slowFetch   // the slow-fetch warning: one per fetch, to each distinct logger
}

// sharedKey says which identity a credential pgentra builds stands for. It
// holds a SHA-256 digest of everything that shapes the credential and its
// cache — never a setting or a secret in clear — and the objects of the
// client options (transport, policies), which only the very same object
// matches. It is never printed.
type sharedKey struct {
	digest [sha256.Size]byte
	objs   []any // each of a comparable type (checked when the key is built)
}

// String hides the key: it is derived from secrets.
func (sharedKey) String() string { return "pgentra.sharedKey{…}" }

// GoString hides the key, as String does.
func (k sharedKey) GoString() string { return k.String() }

func (k sharedKey) equal(o sharedKey) (eq bool) {
	if k.digest != o.digest || len(k.objs) != len(o.objs) {
		return false
	}
	defer func() {
		if recover() != nil { // not reachable: every obj is comparable
			eq = false
		}
	}()
	for i := range k.objs {
		if k.objs[i] != o.objs[i] {
			return false
		}
	}
	return true
}

// keyEnvPrefixes and keyEnvNames select the environment variables hashed
// into a key: azidentity and MSAL read these themselves (AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, IDENTITY_ENDPOINT, MSI_ENDPOINT, AZURE_CONFIG_DIR
// for az, …), PATH and HOME decide which az / azd runs and which login
// profile it reads. Any difference means another credential, never a shared
// one.
var (
	keyEnvPrefixes = []string{"AZURE", "IDENTITY_", "MSI_", "IMDS_", "AZD_", "MSAL_"}
	keyEnvNames    = []string{"PATH", "HOME", "DEFAULT_IDENTITY_CLIENT_ID"}
	// keyGetenvNames are read through the Connector's getenv too (tests
	// replace it): what pgentra itself reads.
	keyGetenvNames = []string{
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", envClientSecret, "AZURE_CLIENT_CERTIFICATE_PATH", envCertPassword,
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS",
		envConnectionString, envSCClientID, envSCClientSecret, envSCTenantID,
	}
)

// identityKey returns the key of the credential and cache NewConnector
// would build for s and scope; ok is false when they must not be shared.
//
// In the key: every pgentra setting (credential kind, client/object/resource
// ID, tenant, certificate path, federated token file, refresh margin, the
// name of the secret's variable, …), the scope, instance discovery, the
// client options (values, and the identity of their transport and
// policies; of a TracingProvider only whether one is set), the environment
// variables that azidentity, MSAL and the developer CLIs read (values
// hashed: AZURE_CLIENT_SECRET is one of them), and the contents of the
// certificate files named (a rotated certificate is another credential).
// Not shared at all: a Connector given WithCredential or WithTokenCache (it
// keeps what it was given), WithTokenCacheOptions (options are functions: they
// can't be compared), WithTracer with a value that can't be compared (the
// shared cache tells tracers apart with ==), or client options holding
// another function or a value that can't be compared. The tracer is not in
// the key: Connectors with different tracers share, and each tracer sees
// every fetch of the cache once.
func identityKey(s settings, scope string, o *options, getenv func(string) string) (sharedKey, bool) {
	if o.credential != nil || o.cache != nil || len(o.tokenOptions) > 0 {
		return sharedKey{}, false
	}
	if o.tracer != nil && !reflect.ValueOf(o.tracer).Comparable() {
		return sharedKey{}, false
	}
	w := keyWriter{h: sha256.New()}
	w.str("pgentra shared identity v1")
	// Every setting but the two that don't shape the credential: the TLS
	// policy, and the scope as written (the scope in force follows).
	ks := s
	ks.allowInsecureTLS, ks.scope = false, ""
	if !w.value(reflect.ValueOf(ks)) {
		return sharedKey{}, false
	}
	w.str(scope)
	w.bool(o.disableInstanceDiscovery)
	// azcore's TracingProvider holds a function, which can't be compared:
	// only whether one is set goes in the key, so that pools wired to
	// OpenTelemetry (azotel) share too. The shared credential reports its
	// spans through the first Connector's provider; they still nest under
	// the fetch's span, which the caller's context carries.
	co := o.clientOptions
	w.bool(reflect.ValueOf(co.TracingProvider).IsZero())
	co.TracingProvider = tracing.Provider{}
	if !w.value(reflect.ValueOf(co)) {
		return sharedKey{}, false
	}
	names := slices.Clone(keyEnvNames)
	names = append(names, keyGetenvNames...)
	names = append(names, s.clientSecretEnv)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, p := range keyEnvPrefixes {
			if strings.HasPrefix(name, p) {
				names = append(names, name)
				break
			}
		}
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		w.str(name)
		w.str(os.Getenv(name))
		w.str(getenv(name))
	}
	for _, path := range []string{s.certificatePath, getenv("AZURE_CLIENT_CERTIFICATE_PATH"), os.Getenv("AZURE_CLIENT_CERTIFICATE_PATH")} {
		if path == "" {
			continue
		}
		data, err := os.ReadFile(path)
		w.str(path)
		w.str(string(data))
		w.bool(err != nil)
	}
	var k sharedKey
	w.h.Sum(k.digest[:0])
	k.objs = w.objs
	return k, true
}

// keyWriter feeds a key's parts to the hash, each length-prefixed, so that
// no two different sequences of parts give the same stream.
type keyWriter struct {
	h    hash.Hash
	objs []any
}

func (w *keyWriter) str(s string) {
	w.uint(uint64(len(s)))
	w.h.Write([]byte(s))
}

func (w *keyWriter) uint(u uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], u)
	w.h.Write(b[:])
}

func (w *keyWriter) bool(b bool) {
	if b {
		w.uint(1)
	} else {
		w.uint(0)
	}
}

// value writes v, walking structs, slices and maps with string keys. A
// pointer or interface value is compared by identity: it goes to objs (if
// its type is comparable); a non-nil function or channel can't be compared,
// so ok is false and nothing is shared. New fields of settings or of
// azcore.ClientOptions are covered without a change here.
func (w *keyWriter) value(v reflect.Value) (ok bool) {
	w.uint(uint64(v.Kind()))
	switch v.Kind() {
	case reflect.Invalid:
	case reflect.Bool:
		w.bool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.uint(uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		w.uint(v.Uint())
	case reflect.Float32, reflect.Float64:
		w.uint(math.Float64bits(v.Float()))
	case reflect.String:
		w.str(v.String())
	case reflect.Struct:
		w.str(v.Type().String())
		for i := range v.NumField() {
			w.str(v.Type().Field(i).Name)
			if !w.value(v.Field(i)) {
				return false
			}
		}
	case reflect.Array:
		w.uint(uint64(v.Len()))
		for i := range v.Len() {
			if !w.value(v.Index(i)) {
				return false
			}
		}
	case reflect.Slice:
		w.bool(v.IsNil())
		w.uint(uint64(v.Len()))
		for i := range v.Len() {
			if !w.value(v.Index(i)) {
				return false
			}
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return v.IsNil()
		}
		w.bool(v.IsNil())
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		w.uint(uint64(len(keys)))
		for _, k := range keys {
			w.str(k.String())
			if !w.value(v.MapIndex(k)) {
				return false
			}
		}
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			w.bool(true)
			return true
		}
		w.bool(false)
		if !v.CanInterface() {
			return false // inside an unexported field: can't be compared from here
		}
		x := v.Interface()
		if !reflect.ValueOf(x).Comparable() {
			return false
		}
		w.str(reflect.TypeOf(x).String())
		w.uint(uint64(len(w.objs)))
		w.objs = append(w.objs, x)
	default: // Func, Chan, UnsafePointer, Complex: only the zero value is shared
		return v.IsZero()
	}
	return true
}

// acquireIdentity returns the identity registered under key, one more
// reference to it, or registers a new one: build makes its credential,
// scope and margin are its cache's. build runs with the registry
// locked, so that concurrent NewConnector calls make one credential; it
// does no network I/O (azidentity's constructors don't).
func acquireIdentity(key sharedKey, scope, credKind string, margin time.Duration, build func() (azcore.TokenCredential, error)) (*sharedIdentity, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for _, id := range registry.ids[key.digest] {
		if id.key.equal(key) {
			id.refs++
			return id, nil
		}
	}
	cred, err := build()
	if err != nil {
		return nil, err
	}
	id := &sharedIdentity{key: key, refs: 1, cred: cred, lookup: &userLookup{}}
	id.trace = fetchTracer{scope: scope, credKind: credKind}
	id.slow = slowFetch{cred: cred, credKind: credKind, warn: id.warnSlow}
	id.cache = token.NewCache(cred, scope, token.WithRefreshMargin(margin), token.WithEventHandler(id.handle), token.WithFetchContext(id.fetchContext))
	id.trace.cache = id.cache
	if registry.ids == nil {
		registry.ids = make(map[[sha256.Size]byte][]*sharedIdentity)
	}
	registry.ids[key.digest] = append(registry.ids[key.digest], id)
	return id, nil
}

// release drops one reference; the last one closes the cache and the user
// lookup (their goroutines end) and forgets the identity, so a later
// Connector builds a new credential.
func (id *sharedIdentity) release() error {
	registry.mu.Lock()
	id.refs--
	last := id.refs == 0
	if last {
		list := slices.DeleteFunc(registry.ids[id.key.digest], func(x *sharedIdentity) bool { return x == id })
		if len(list) == 0 {
			delete(registry.ids, id.key.digest)
		} else {
			registry.ids[id.key.digest] = list
		}
	}
	registry.mu.Unlock()
	if !last {
		return nil
	}
	id.lookup.close()
	err := id.cache.Close()
	id.slow.stop() // after the cache's Close: no fetch can arm it again
	return err
}

// handle is the shared cache's event handler: the fetch's end to the
// tracers its start reached, the slow-fetch warning once per fetch, and the
// event to each subscribed Connector (debug logs).
func (id *sharedIdentity) handle(ev token.Event) {
	switch ev.Kind {
	case token.FetchStart:
		id.slow.arm(ev)
	case token.FetchEnd, token.FetchFailed:
		id.slow.stop()
		id.trace.end(ev)
	}
	id.events.emit(ev)
}

// fetchContext is the shared cache's WithFetchContext function: the
// fetch's start to each distinct tracer of the subscribed Connectors (all
// comparable: identityKey shares no other), once.
func (id *sharedIdentity) fetchContext(ctx context.Context, ev token.Event) context.Context {
	subs := id.events.snapshot()
	var tracers []Tracer
	for _, s := range subs {
		if s.tracer != nil && !slices.Contains(tracers, s.tracer) {
			tracers = append(tracers, s.tracer)
		}
	}
	return id.trace.start(ctx, ev, tracers)
}

// warnSlow logs the slow-fetch warning once to each distinct logger of the
// subscribed Connectors, through their subscriptions: a Connector's Close
// waits for it, and its logger gets nothing after.
func (id *sharedIdentity) warnSlow(log func(*slog.Logger)) {
	subs := id.events.snapshot()
	seen := make([]*slog.Logger, 0, 1)
	for _, s := range subs {
		if s.logger == nil || slices.Contains(seen, s.logger) {
			continue
		}
		seen = append(seen, s.logger)
		s.run(func() { log(s.logger) })
	}
}

// sharedIdentities returns how many identities are registered, for tests.
func sharedIdentities() int {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	n := 0
	for _, list := range registry.ids {
		n += len(list)
	}
	return n
}

// eventFanout hands a shared cache's events to the handlers of the
// Connectors that share it. Its zero value has no subscribers.
type eventFanout struct {
	mu   sync.Mutex
	subs []*eventSub // replaced on change, never modified in place
}

// eventSub is one Connector's subscription: its event handler, its tracer
// (nil: none) and its logger.
type eventSub struct {
	fn      func(token.Event)
	tracer  Tracer
	logger  *slog.Logger
	mu      sync.Mutex
	cond    sync.Cond // on mu: stop waits for running to reach 0
	stopped bool
	running int
}

func (f *eventFanout) emit(ev token.Event) {
	for _, s := range f.snapshot() {
		s.deliver(ev)
	}
}

// snapshot returns the current subscribers (not to be modified).
func (f *eventFanout) snapshot() []*eventSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

func (f *eventFanout) subscribe(fn func(token.Event), tracer Tracer, logger *slog.Logger) *eventSub {
	s := &eventSub{fn: fn, tracer: tracer, logger: logger}
	s.cond.L = &s.mu
	f.mu.Lock()
	f.subs = append(slices.Clip(f.subs), s)
	f.mu.Unlock()
	return s
}

// unsubscribe removes s; when it returns, s's handler is not running and
// will not be called again — unless it has been running for longer than
// closeGrace (it may be the caller: a handler that closes its own
// Connector), as token.Cache.Close does not wait for its handler either.
func (f *eventFanout) unsubscribe(s *eventSub) {
	f.mu.Lock()
	f.subs = slices.DeleteFunc(slices.Clone(f.subs), func(x *eventSub) bool { return x == s })
	f.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.running == 0 {
		return
	}
	over := false
	t := time.AfterFunc(eventStopGrace, func() {
		s.mu.Lock()
		over = true
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	for s.running > 0 && !over {
		s.cond.Wait()
	}
}

// eventStopGrace bounds how long Close waits for its Connector's event
// handler to return (a variable for tests).
var eventStopGrace = 500 * time.Millisecond

func (s *eventSub) deliver(ev token.Event) { s.run(func() { s.fn(ev) }) }

// run calls fn unless s is unsubscribed, counted as a running handler
// (unsubscribe waits for it).
func (s *eventSub) run(fn func()) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.running++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		if s.running == 0 {
			s.cond.Broadcast()
		}
		s.mu.Unlock()
	}()
	fn()
}

// useShared gives c the credential, cache and user lookup registered for
// key, building them if this is the first Connector of that identity.
func (c *Connector) useShared(key sharedKey, s settings, scope string, o *options) error {
	id, err := acquireIdentity(key, scope, c.credKind, s.refreshMargin, func() (azcore.TokenCredential, error) {
		return newCredential(s, scope, o, o.getenv)
	})
	if err != nil {
		return err
	}
	c.shared, c.cred, c.cache, c.lookup = id, id.cred, id.cache, id.lookup
	c.sub = id.events.subscribe(c.logEvent, c.tracer, c.logger) // c.logger is never nil: slog.Default without WithLogger
	return nil
}
