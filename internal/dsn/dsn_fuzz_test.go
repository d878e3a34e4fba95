package dsn

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lib/pq"
)

// fuzzSeeds are the inputs the issue names: unicode white space that pq
// splits on (U+00A0, U+0085, U+2028, U+3000), quotes, backslash escapes,
// percent-escapes, IPv6 zones, multi-host lists, options= and service=.
// testdata/fuzz/FuzzParse holds them (and finds) as corpus files too.
var fuzzSeeds = []struct{ base, val string }{
	{"host=h user=u azure_client_id=x", "v"},
	{"application_name='x\u00a0host=evil.example.invalid' host=127.0.0.1", "a b"},
	{"application_name=a\u00a0password=hunter2", ""},
	{"password\u00a0=hunter2 host=h", "x"},
	{"host=h\u0085user=u\u2028dbname=d\u3000sslmode=require", "\u00a0"},
	{`application_name='it\'s' options='-c search_path=a\\b' dbname=d\ b`, `q'\`},
	{"host=a,b,,c port=1,2,3,4 hostaddr=127.0.0.1,::1,,fe80::1%eth0 target_session_attrs=read-write", "v"},
	{"options='-c statement_timeout=5s -c search_path=x' service=", "v"},
	{"service=nosuchservice host=h", "v"},
	{"postgres://u@h/db?azure_scope=s&sslmode=require", "https://x/.default"},
	{"postgres://u@[fe80::1%25eth0]:5433/d%20b?application_name=a%C2%A0host%3Devil&user=", "%41"},
	{"postgresql://u:pw@h1,h2/db?port=1,2&options=-c%20a%3Db#frag", "&x=y"},
	{"postgres://h/db?azure_client_id=aaa&AZURE_CLIENT_ID=bbb", "v"},
	{"AZURE_CLIENT_ID=a azure_client_id=b", "v"},
	{"=x host=h", "v"},
	{" postgres://u:pw@h/db?sslmode=require&azure_scope=s", "v"},
	{"host=h user=alice application_name='x\x00user\x00bob'", "v"},
	{"postgres://alice@h/d%00user%00bob?azure_scope=s", "v"},
	{"", ""},
}

// FuzzParse is the differential test against pq (run by CI as
// -fuzz=FuzzParse). For an input base that pq accepts, pgentra's keys are
// put into it (first in key=value form, first in a URL's query) and Parse
// of the result must give exactly pq's own parse of base: the config pq
// would dial and send with, nothing added and nothing lost, and the key's
// value back. Parse of base itself must agree with pq too, minus the
// azure_* keys pq would have sent to the server.
func FuzzParse(f *testing.F) {
	noPGEnv(f)
	for _, s := range fuzzSeeds {
		f.Add(s.base, s.val)
	}
	f.Fuzz(func(t *testing.T, base, val string) {
		ref, refErr := pq.NewConfig(base)
		got, err := Parse(base)
		if refErr != nil {
			if err == nil {
				t.Fatalf("pq rejects %q (%v) but Parse accepts it", base, refErr)
			}
			return
		}
		if err != nil {
			// pq accepted it: only pgentra's stricter rules for its own keys
			// may refuse it.
			var dup *DuplicateKeyError
			if !errors.As(err, &dup) && !errors.Is(err, ErrURLKey) && !errors.Is(err, ErrParamName) && !(errors.Is(err, ErrNULByte) && (strings.Contains(base, "\x00") || strings.Contains(base, "%00"))) &&
				!(errors.Is(err, ErrURLPassword) && urlAtOrHash(base)) && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNestedService) && len(base) <= MaxLen {
				t.Fatalf("pq accepts %q but Parse says: %v", base, err)
			}
			if errors.Is(err, ErrParamName) {
				bad := false
				for k := range ref.Runtime {
					bad = bad || !strings.HasPrefix(strings.ToLower(k), AzurePrefix) && !paramName(k)
				}
				if !bad {
					t.Fatalf("Parse(%q): %v, but pq's run-time parameters %q are all names", base, err, SortedKeys(ref.Runtime))
				}
			}
			return
		}
		wantAzure := map[string]string{}
		for k, v := range ref.Runtime {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, AzurePrefix) {
				wantAzure[lk] = v
				delete(ref.Runtime, k)
			}
		}
		if !reflect.DeepEqual(got.Config, ref) {
			t.Fatalf("Parse(%q).Config differs from pq's parse without azure keys:\n got %+v\nwant %+v", base, got.Config, ref)
		}
		for k, v := range wantAzure {
			if got.Azure[k] != v {
				t.Fatalf("Parse(%q): Azure[%q] = %q, pq read %q", base, k, got.Azure[k], v)
			}
		}
		for k := range got.Config.Runtime {
			if strings.HasPrefix(strings.ToLower(k), AzurePrefix) {
				t.Fatalf("Parse(%q) leaves %q for pq to send to the server", base, k)
			}
		}
		if got.UserGiven && got.Config.User == "" {
			t.Fatalf("Parse(%q): UserGiven with an empty user", base)
		}
		other := got.Config
		other.Password = "pw-" + got.Config.Password + "-other"
		if Describe(other, true) != Describe(got.Config, true) {
			t.Fatalf("Describe depends on the password for %q", base)
		}

		// Put pgentra's key in; pq's view of everything else must not move.
		if len(got.Azure) > 0 || !utf8.ValidString(val) || len(base)+len(val)*3 > MaxLen-64 {
			return
		}
		in := inject(base, "azure_scope", val)
		got2, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q) (%q with azure_scope added): %v", in, base, err)
		}
		if !reflect.DeepEqual(got2.Config, ref) {
			t.Fatalf("adding azure_scope=%q to %q changed what pq reads:\n got %+v\nwant %+v", val, base, got2.Config, ref)
		}
		if got2.Azure["azure_scope"] != val || len(got2.Azure) != 1 {
			t.Fatalf("Parse(%q).Azure = %q, want azure_scope=%q", in, got2.Azure, val)
		}
	})
}

// urlAtOrHash reports a postgres:// URL with a "#", or an "@" after the
// end of its host part (the first "/" or "?"): the only URLs pq accepts
// that may be refused as ErrURLPassword.
func urlAtOrHash(s string) bool {
	_, rest, ok := strings.Cut(s, "://")
	if !ok || !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return false
	}
	if strings.Contains(rest, "#") {
		return true
	}
	i := strings.IndexAny(rest, "/?")
	return i >= 0 && strings.Contains(rest[i:], "@")
}

// inject puts key=val into s where it cannot change how the rest is read:
// first in a key=value string (quoted), first in a URL's query.
func inject(s, key, val string) string {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return key + "=" + QuoteValue(val) + " " + s
	}
	kv := key + "=" + url.QueryEscape(val)
	switch i := strings.IndexAny(s, "?#"); {
	case i < 0:
		return s + "?" + kv
	case s[i] == '?':
		return s[:i+1] + kv + "&" + s[i+1:]
	default:
		return s[:i] + "?" + kv + s[i:]
	}
}

// FuzzQuoteValue: any valid UTF-8 value quoted by QuoteValue comes back
// from pq unchanged, and is never split into another key.
func FuzzQuoteValue(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.val)
		f.Add(s.base)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) || len(v) > MaxLen/2 {
			return
		}
		cfg, err := pq.NewConfig("host=h application_name=" + QuoteValue(v) + " dbname=d")
		if err != nil {
			t.Fatalf("pq rejects quoted %q: %v", v, err)
		}
		if cfg.ApplicationName != v || cfg.Host != "h" || cfg.Database != "d" || len(cfg.Runtime) != 0 {
			t.Fatalf("QuoteValue(%q) = %q: pq reads application_name=%q host=%q dbname=%q runtime=%v",
				v, QuoteValue(v), cfg.ApplicationName, cfg.Host, cfg.Database, cfg.Runtime)
		}
	})
}
