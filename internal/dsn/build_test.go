package dsn

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
)

// buildEnv makes pq.NewConfig independent of the machine: no PG* variable
// (pq reads them all) and the test's own service file.
func buildEnv(tb testing.TB) {
	tb.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "SSLPG") {
			tb.Setenv(k, "") // restores it afterwards
			os.Unsetenv(k)   // an empty PGHOST would count as set
		}
	}
	abs, err := filepath.Abs("testdata/build_pg_service.conf")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("PGSERVICEFILE", abs)
	tb.Setenv("USER", "osuser")
}

// newConfig is pq.NewConfig that turns pq's own panics (it indexes out of
// range on some mismatched host/hostaddr lists) into errors.
func newConfig(s string) (cfg pq.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("pq.NewConfig panicked")
		}
	}()
	return pq.NewConfig(s)
}

// roundTrip checks pq.NewConfig(Build(cfg)) == cfg.
func roundTrip(t *testing.T, cfg pq.Config) string {
	t.Helper()
	s, err := Build(cfg)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	got, err := pq.NewConfig(s)
	if err != nil {
		t.Fatalf("pq.NewConfig(%q): %v", s, err)
	}
	if d := ConfigDiff(cfg, got); d != "" {
		t.Fatalf("round trip differs in %s:\n built %q\n  want %#v\n   got %#v", d, s, reflect.ValueOf(cfg).FieldByName(d), reflect.ValueOf(got).FieldByName(d))
	}
	return s
}

var buildSeeds = []string{
	"host=db.example.com user=app dbname=postgres",
	"application_name='x\u00a0host=evil.example.com'",
	"application_name='a\u0085b\u2028c\u3000d' user='o\\'brien'",
	`options='-c search_path=a\\ b' password='it\'s\\'`,
	"options=-csearch_path=x",
	"host=::1 port=5433",
	"hostaddr=fe80::1%eth0 host=h",
	"hostaddr=fe80::1%'e th0' host=h",
	"host=h1,h2,,h4 port=1,2,3,4 hostaddr=127.0.0.1,,::1,10.0.0.1",
	"host=,h2 port=5432",
	"hostaddr=127.0.0.1,127.0.0.2 port=1,2",
	"host='' hostaddr=127.0.0.1,127.0.0.2,::ffff:1.2.3.4",
	"host=/tmp sslmode=require",
	"host=@abstract",
	"sslmode=verify-full sslrootcert=system sslsni=0 sslinline=1 sslcert=c sslkey=k",
	"sslrootcert=system",
	"sslnegotiation=direct sslmode=require ssl_min_protocol_version=TLSv1.2 ssl_max_protocol_version=TLSv1.3",
	"connect_timeout=5 binary_parameters=yes disable_prepared_binary_result=on",
	"connect_timeout=-3",
	"connect_timeout=99999999999999",
	"connect_timeout=9223372036854775807",
	"target_session_attrs=read-write load_balance_hosts=random min_protocol_version=3.0 max_protocol_version=3.2",
	"fallback_application_name=fb",
	"fallback_application_name=fb application_name=''",
	"work_mem=12345kB search_path='a,b' =empty-key -=dash 'q=x",
	"database=old",
	"client_encoding=utf-8 datestyle='ISO, MDY' tz=UTC geqo=on krbsrvname=k krbspn=s",
	"user= password= dbname=",
	"service=svc",
	"service=svc host=override",
	"passfile=/nonexistent",
	"postgres://u%20x:p%27w@[::1]:5433/d%C2%A0b?application_name=a%E2%80%A8b&sslmode=disable",
	"postgres://h1,h2/db?port=1,2&options=-c%20x%3Dy",
	"postgres://h/db?%ff=%fe",
	"postgres://h/db?user=",
}

func FuzzBuild(f *testing.F) {
	buildEnv(f)
	for _, s := range buildSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := newConfig(in)
		if err != nil {
			return // pq refuses it: nothing to build
		}
		roundTrip(t, cfg)
		// As pgentra uses it: a token as the password, a role as the user.
		cfg.Password, cfg.User = "eyJ0eXAi.J'\\ x", "role\u00a0x"
		roundTrip(t, cfg)
	})
}

func TestBuildSeeds(t *testing.T) {
	buildEnv(t)
	ok := 0
	for _, s := range buildSeeds {
		cfg, err := newConfig(s)
		if err != nil {
			t.Logf("pq refuses seed %q: %v", s, err)
			continue
		}
		ok++
		roundTrip(t, cfg)
	}
	if ok < len(buildSeeds)-3 {
		t.Errorf("only %d of %d seeds parse", ok, len(buildSeeds))
	}
}

func TestBuildQuotesEveryValue(t *testing.T) {
	buildEnv(t)
	cfg, err := pq.NewConfig("host=h application_name='x\u00a0host=evil.example.com' work_mem=1MB")
	if err != nil {
		t.Fatal(err)
	}
	s := roundTrip(t, cfg)
	for _, want := range []string{
		"host='h'", "port='5432'", "application_name='x\u00a0host=evil.example.com'",
		"work_mem='1MB'", "connect_timeout='0'", "service=''", "password=''",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
	// Every key=value pair is key='...': split on "' " outside quotes
	// is what pq does; check that no value is written bare.
	if strings.Contains(s, "=h ") || strings.Contains(s, "=5432") {
		t.Errorf("a bare value in %q", s)
	}
	got, _ := pq.NewConfig(s)
	if got.Host != "h" || got.ApplicationName != "x\u00a0host=evil.example.com" {
		t.Errorf("host %q application_name %q", got.Host, got.ApplicationName)
	}
}

func TestBuildEscapes(t *testing.T) {
	buildEnv(t)
	cfg, err := pq.NewConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = `a'b\c 'd\`
	cfg.Options = `-c search_path=x\ y`
	s := roundTrip(t, cfg)
	if !strings.Contains(s, `password='a\'b\\c \'d\\'`) {
		t.Errorf("password not escaped as expected in %q", s)
	}
}

// The environment doesn't change what the string means: every key pq reads
// from a PG* variable is written.
func TestBuildOverridesEnvironment(t *testing.T) {
	buildEnv(t)
	cfg, err := pq.NewConfig("host=h port=1 user=u dbname=d")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"PGDATABASE": "other", "PGUSER": "other", "PGPASSWORD": "pw", "PGAPPNAME": "other",
		"PGOPTIONS": "-c x=y", "PGCONNECT_TIMEOUT": "9", "PGSERVICE": "svc", "PGSSLSNI": "0",
		"PGTZ": "UTC", "PGSSLROOTCERT": "/x", "PGHOST": "elsewhere", "PGPORT": "2",
		"PGPASSFILE": "/pw", "PGGEQO": "off", "PGSSLCERT": "/c", "PGSSLKEY": "/k",
	} {
		t.Setenv(k, v)
	}
	got, err := pq.NewConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if d := ConfigDiff(cfg, got); d != "" {
		t.Errorf("with PG* variables set, %s differs", d)
	}
}

func TestBuildNotExpressible(t *testing.T) {
	buildEnv(t)
	base, err := pq.NewConfig("host=h")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		change func(*pq.Config)
		field  string
	}{
		"comma in host":       {func(c *pq.Config) { c.Host = "a,b" }, "host 1"},
		"comma in multi host": {func(c *pq.Config) { c.Multi = []pq.ConfigMultihost{{Host: "x,y", Port: 1}} }, "host 2"},
		"second hostaddr only": {func(c *pq.Config) {
			c.Multi = []pq.ConfigMultihost{{Host: "x", Port: 1, Hostaddr: netip.MustParseAddr("::1")}}
		}, "hostaddr"},
		"mixed empty hosts": {func(c *pq.Config) {
			c.Hostaddr = netip.MustParseAddr("::1")
			c.Multi = []pq.ConfigMultihost{{Host: "", Port: 1}, {Host: "x", Port: 1}}
		}, "host"},
		"runtime key with space": {func(c *pq.Config) { c.Runtime = map[string]string{"a b": "1"} }, `"a b"`},
		"runtime key with =":     {func(c *pq.Config) { c.Runtime = map[string]string{"a=b": "1"} }, `"a=b"`},
		"runtime key pq's":       {func(c *pq.Config) { c.Runtime = map[string]string{"dbname": "1"} }, `"dbname"`},
		"invalid UTF-8":          {func(c *pq.Config) { c.ApplicationName = "\xff" }, "application_name"},
		"invalid UTF-8 password": {func(c *pq.Config) { c.Password = "secret\xff" }, "password"},
		"fractional timeout":     {func(c *pq.Config) { c.ConnectTimeout = 1500 * time.Millisecond }, "connect_timeout"},
		"client_encoding":        {func(c *pq.Config) { c.ClientEncoding = "LATIN1" }, "client_encoding"},
		"empty protocol":         {func(c *pq.Config) { c.MinProtocolVersion = "" }, "min_protocol_version"},
		"unix with TLS":          {func(c *pq.Config) { c.Host, c.SSLMode = "/tmp", pq.SSLModeVerifyFull }, "sslmode"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base.Clone()
			tc.change(&cfg)
			_, err := Build(cfg)
			if !errors.Is(err, ErrNotExpressible) {
				t.Fatalf("Build: %v, want ErrNotExpressible", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q doesn't name %s", err, tc.field)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the value", err)
			}
		})
	}
}

// A connect_timeout whose seconds overflowed in pq is written so that pq
// arrives at the same wrapped Duration.
func TestBuildWrappedTimeout(t *testing.T) {
	buildEnv(t)
	cfg, err := pq.NewConfig("connect_timeout=99999999999999")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnectTimeout%time.Second == 0 {
		t.Fatalf("the seed no longer overflows: %v", cfg.ConnectTimeout)
	}
	roundTrip(t, cfg)
}

// TestBuildKnowsEveryField fails when a pq upgrade adds a Config field that
// Build doesn't write: add it to Build, then here.
func TestBuildKnowsEveryField(t *testing.T) {
	known := map[string]bool{}
	for _, f := range strings.Fields(`Host Hostaddr Port Database User Password Passfile Options
		ApplicationName FallbackApplicationName SSLMode SSLNegotiation SSLCert SSLKey SSLRootCert SSLSNI
		SSLMinProtocolVersion SSLMaxProtocolVersion SSLInline KrbSrvname KrbSpn ConnectTimeout
		BinaryParameters DisablePreparedBinaryResult ClientEncoding Datestyle TZ Geqo
		TargetSessionAttrs LoadBalanceHosts MinProtocolVersion MaxProtocolVersion Service ServiceFile
		Runtime Multi`) {
		known[f] = true
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[pq.Config]()) {
		if f.IsExported() && !known[f.Name] {
			t.Errorf("pq.Config has a field Build doesn't know: %s", f.Name)
		}
	}
}

func TestConfigDiff(t *testing.T) {
	buildEnv(t)
	a, err := pq.NewConfig("host=h work_mem=1")
	if err != nil {
		t.Fatal(err)
	}
	b := a.Clone()
	if d := ConfigDiff(a, b); d != "" {
		t.Fatalf("clone differs in %s", d)
	}
	b.Runtime["work_mem"] = "2"
	if d := ConfigDiff(a, b); d != "Runtime" {
		t.Errorf("ConfigDiff = %q, want Runtime", d)
	}
	b = a.Clone()
	b.Password = "secret"
	if d := ConfigDiff(a, b); d != "Password" {
		t.Errorf("ConfigDiff = %q, want Password", d)
	}
	b = a.Clone()
	b.Service = "x"
	if d := ConfigDiff(a, b); d != "" {
		t.Errorf("ConfigDiff = %q, want Service ignored", d)
	}
}
